using System.IO.Compression;

namespace Serve.TestSupport;

/// <summary>What someone between an archive's signer and the server does to it.</summary>
public static class HostileArchives
{
    /// <summary>Flips one bit in the middle of one entry of a zip, leaving every other entry as it was.</summary>
    public static void FlipOneBit(string archive, string entryName)
    {
        using var zip = ZipFile.Open(archive, ZipArchiveMode.Update);
        var entry = zip.GetEntry(entryName) ?? throw new ArgumentException($"{archive} has no entry {entryName}", nameof(entryName));
        using var buffer = new MemoryStream();
        using (var source = entry.Open())
        {
            source.CopyTo(buffer);
        }

        var bytes = buffer.ToArray();
        bytes[bytes.Length / 2] ^= 0x01;
        entry.Delete();
        using var replaced = zip.CreateEntry(entryName).Open();
        replaced.Write(bytes);
    }
}
