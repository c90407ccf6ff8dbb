using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serve.Archive;

/// <summary>
/// MAR-INF/SIGNATURE.json: who signed the archive (<see cref="KeyId"/>, the hex SHA-256 of the signer's
/// SubjectPublicKeyInfo DER), how (<see cref="Algorithm"/>, one of <see cref="SignatureAlgorithms.All"/>) and
/// the signature over the archive's <see cref="ArchiveDigest"/> (base64; ECDSA in IEEE P1363 form, r‖s).
/// </summary>
public sealed record ArchiveSignature
{
    public const string RelativePath = "MAR-INF/SIGNATURE.json";

    /// <summary>A real signature file is a few hundred bytes; anything far larger is not one.</summary>
    private const int MaxBytes = 64 << 10;

    private static readonly JsonSerializerOptions Options = new()
    {
        MaxDepth = 4,
        RespectNullableAnnotations = true,
        WriteIndented = true,
        // base64's '+' written as '+', not \u002B: the file is read by people and other tools, never put in HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    [JsonPropertyName("algorithm")] public required string Algorithm { get; init; }

    [JsonPropertyName("keyId")] public required string KeyId { get; init; }

    [JsonPropertyName("signature")] public required string Signature { get; init; }

    /// <summary>The signature file of the unpacked archive at <paramref name="directory"/>; null when it has none.</summary>
    public static ArchiveSignature? Read(string directory)
    {
        var file = new FileInfo(Path.Combine(directory, RelativePath));
        if (!file.Exists)
        {
            return null;
        }

        return file.Length > MaxBytes
            ? throw new ArchiveException($"{RelativePath} is {file.Length} bytes, too large to be a signature (at most {MaxBytes})")
            : Parse(File.ReadAllText(file.FullName));
    }

    /// <summary>Reads and checks a signature file; anything malformed is an <see cref="ArchiveException"/> that says what.</summary>
    public static ArchiveSignature Parse(string json)
    {
        ArchiveSignature signature;
        try
        {
            signature = JsonSerializer.Deserialize<ArchiveSignature>(json, Options)
                        ?? throw new ArchiveException($"{RelativePath} is empty");
        }
        catch (JsonException error)
        {
            throw new ArchiveException($"{RelativePath} is not a valid signature file ({{\"algorithm\", \"keyId\", \"signature\"}}): {error.Message}");
        }

        if (!SignatureAlgorithms.All.Contains(signature.Algorithm, StringComparer.Ordinal))
        {
            throw new ArchiveException($"{RelativePath}: algorithm '{signature.Algorithm}' is not supported; Serve verifies {string.Join(", ", SignatureAlgorithms.All)}");
        }

        if (!SignatureAlgorithms.IsKeyId(signature.KeyId))
        {
            throw new ArchiveException($"{RelativePath}: keyId must be the hex SHA-256 of the signer's public key (64 hexadecimal digits), not '{signature.KeyId}'");
        }

        return signature.Bytes().Length > 0
            ? signature
            : throw new ArchiveException($"{RelativePath}: signature must be base64, not '{signature.Signature}'");
    }

    /// <summary>The signature itself; empty when <see cref="Signature"/> is not base64.</summary>
    public byte[] Bytes()
    {
        var buffer = new byte[Signature.Length];
        return Convert.TryFromBase64String(Signature, buffer, out var written) ? buffer[..written] : [];
    }

    public string ToJson() => JsonSerializer.Serialize(this, Options);
}
