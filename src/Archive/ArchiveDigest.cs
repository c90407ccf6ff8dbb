using System.Security.Cryptography;
using System.Text;

namespace Serve.Archive;

/// <summary>
/// The canonical digest of an archive's content, which its signature signs: SHA-256 over, for every file
/// except <see cref="ArchiveSignature.RelativePath"/> in ordinal order of its path ('/' separators), the
/// UTF-8 line <c>path\n</c> and the line <c>hex SHA-256 of its bytes\n</c>. The same for a .mar and the
/// directory it unpacks to; computed over the unpacked files, so what is verified is what is served.
/// </summary>
public static class ArchiveDigest
{
    /// <summary>The digest over files given as (path inside the archive, SHA-256 of the bytes).</summary>
    public static byte[] Of(IEnumerable<(string Path, byte[] Sha256)> files)
    {
        using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (path, sha256) in files.Where(f => f.Path != ArchiveSignature.RelativePath).OrderBy(f => f.Path, StringComparer.Ordinal))
        {
            // A control character in a name could make two different archives read as the same lines.
            if (path.Any(char.IsControl))
            {
                throw new ArchiveException($"the archive entry '{path.ReplaceLineEndings(" ")}' has a control character in its name; signed archives cannot hold it");
            }

            digest.AppendData(Encoding.UTF8.GetBytes($"{path}\n{Convert.ToHexStringLower(sha256)}\n"));
        }

        return digest.GetHashAndReset();
    }

    /// <summary>The digest over the files of an unpacked archive; a symbolic link in it is an <see cref="ArchiveException"/>.</summary>
    public static byte[] OfDirectory(string directory)
    {
        var root = new DirectoryInfo(directory);
        // Hidden files count too: whatever lies in the directory is covered by the signature.
        var everything = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false };
        var files = new List<(string, byte[])>();
        foreach (var entry in root.EnumerateFileSystemInfos("*", everything))
        {
            var path = Path.GetRelativePath(root.FullName, entry.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (entry.LinkTarget is not null)
            {
                throw new ArchiveException($"the archive entry '{path}' is a symbolic link; archives may hold only files and directories");
            }

            if (entry is FileInfo file)
            {
                using var stream = file.OpenRead();
                files.Add((path, SHA256.HashData(stream)));
            }
        }

        return Of(files);
    }
}
