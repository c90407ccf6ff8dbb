using System.IO.Compression;

namespace Serve.Archive;

/// <summary>
/// Unpacks a zip without trusting it: every entry must land inside the target directory (no absolute
/// paths, no <c>..</c>, no backslashes, no links), names are unique, and the entry count and the bytes
/// actually inflated are bounded. A truncated or corrupt zip is an <see cref="ArchiveException"/>.
/// </summary>
public static class SafeZip
{
    private const int UnixFileTypeMask = 0xF000;
    private const int UnixSymbolicLink = 0xA000;

    public static void Extract(string zipPath, string targetDirectory, ArchiveLimits limits)
    {
        var target = Path.GetFullPath(targetDirectory);
        Directory.CreateDirectory(target);
        try
        {
            using var zip = ZipFile.OpenRead(zipPath);
            if (zip.Entries.Count > limits.MaxEntries)
            {
                throw new ArchiveException($"the archive has {zip.Entries.Count} entries; at most {limits.MaxEntries} are allowed");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            long total = 0;
            foreach (var entry in zip.Entries)
            {
                var destination = Destination(target, entry);
                if (!seen.Add(destination))
                {
                    throw new ArchiveException($"the archive holds '{entry.FullName}' more than once");
                }

                if (entry.FullName.EndsWith('/'))
                {
                    Directory.CreateDirectory(destination);
                    continue;
                }

                if (total + entry.Length > limits.MaxTotalBytes)
                {
                    throw TooLarge(limits);
                }

                Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                using var source = entry.Open();
                using var file = new FileStream(destination, FileMode.CreateNew, FileAccess.Write);
                total += CopyAtMost(source, file, limits.MaxTotalBytes - total, limits);
            }
        }
        catch (InvalidDataException error)
        {
            throw new ArchiveException($"the archive is not a valid zip file (truncated or corrupt?): {error.Message}");
        }
    }

    private static string Destination(string target, ZipArchiveEntry entry)
    {
        var name = entry.FullName;
        if (name.Length == 0 || name.Contains('\\', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal)
            || Path.IsPathRooted(name) || name.Split('/').Any(part => part == ".."))
        {
            throw new ArchiveException($"the archive entry '{name}' would be written outside the model's directory");
        }

        if (((entry.ExternalAttributes >> 16) & UnixFileTypeMask) == UnixSymbolicLink)
        {
            throw new ArchiveException($"the archive entry '{name}' is a symbolic link; archives may hold only files and directories");
        }

        var destination = Path.GetFullPath(Path.Combine(target, name));
        return destination.StartsWith(target + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            ? destination.TrimEnd(Path.DirectorySeparatorChar)
            : throw new ArchiveException($"the archive entry '{name}' would be written outside the model's directory");
    }

    /// <summary>Copies, counting the bytes really inflated (an entry's declared size may lie).</summary>
    private static long CopyAtMost(Stream source, Stream destination, long allowed, ArchiveLimits limits)
    {
        var buffer = new byte[1 << 16];
        long copied = 0;
        int read;
        while ((read = source.Read(buffer)) > 0)
        {
            copied += read;
            if (copied > allowed)
            {
                throw TooLarge(limits);
            }

            destination.Write(buffer, 0, read);
        }

        return copied;
    }

    private static ArchiveException TooLarge(ArchiveLimits limits) =>
        new($"the archive unpacks to more than {limits.MaxTotalBytes} bytes, the most allowed");
}
