using System.Security.Cryptography;

namespace Serve.Archive;

/// <summary>
/// A SHA-256 pin: the hash a model file or .mar must have, given by whoever registers it (the register
/// call's <c>sha256</c>), so a file replaced or corrupted on its way is refused before it is unpacked or used.
/// It vouches for the file to the registrant, not to the server: a pin is no signature.
/// </summary>
public static class ArchivePin
{
    /// <summary>64 hexadecimal digits, either case.</summary>
    public static bool IsValid(string pin) => SignatureAlgorithms.IsKeyId(pin);

    /// <summary>The file's SHA-256 in lowercase hex.</summary>
    public static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The file's SHA-256; an <see cref="ArchiveException"/> with both hashes when <paramref name="pin"/> is given and differs.</summary>
    public static string Check(string file, string? pin)
    {
        var actual = Sha256(file);
        return pin is null || actual.Equals(pin, StringComparison.OrdinalIgnoreCase)
            ? actual
            : throw new ArchiveException($"the file does not match the sha256 given for it: its SHA-256 is {actual}, the sha256 given is " +
                                         $"{pin.ToLowerInvariant()}; it is not the file that was pinned (replaced or corrupted?)");
    }
}
