using System.Globalization;
using System.IO.Compression;

namespace Serve.Archive;

/// <summary>What goes into a new archive: the TorchScript file, the handler, and optional config and extra files.</summary>
public sealed record ArchiveContents(
    string ModelName, string Version, string SerializedFile, string Handler, string? ConfigFile, IReadOnlyList<string> ExtraFiles);

/// <summary>
/// Writes TorchServe's .mar layout (a zip with the files flat at the root and MAR-INF/MANIFEST.json), so the
/// archive works with Serve and with TorchServe's own C++/TorchScript handler.
/// </summary>
public static class ArchiveWriter
{
    public const string Version = "serve-1";

    /// <summary>Writes a .mar at <paramref name="output"/> (through a temporary file, so a failure leaves nothing), reporting bytes written.</summary>
    public static void Write(string output, ArchiveContents contents, IProgress<long>? progress = null, bool overwrite = false)
    {
        var (files, manifest) = Prepare(output, contents, overwrite);
        var temporary = output + ".partial";
        try
        {
            long written = 0;
            using (var zip = ZipFile.Open(temporary, ZipArchiveMode.Create))
            {
                foreach (var file in files)
                {
                    using var destination = zip.CreateEntry(Path.GetFileName(file), CompressionLevel.Fastest).Open();
                    written = Copy(file, destination, written, progress);
                }

                using var writer = new StreamWriter(zip.CreateEntry(ArchiveManifest.RelativePath, CompressionLevel.Fastest).Open());
                writer.Write(manifest.ToJson());
            }

            File.Move(temporary, output, overwrite);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Writes the same layout unpacked, as a directory (TorchServe's no-archive format).</summary>
    public static void WriteDirectory(string output, ArchiveContents contents, IProgress<long>? progress = null, bool overwrite = false)
    {
        var (files, manifest) = Prepare(output, contents, overwrite);
        var temporary = output + ".partial";
        try
        {
            Directory.CreateDirectory(Path.Combine(temporary, "MAR-INF"));
            long written = 0;
            foreach (var file in files)
            {
                using var destination = File.Create(Path.Combine(temporary, Path.GetFileName(file)));
                written = Copy(file, destination, written, progress);
            }

            File.WriteAllText(Path.Combine(temporary, ArchiveManifest.RelativePath), manifest.ToJson());
            if (overwrite && Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }

            Directory.Move(temporary, output);
        }
        finally
        {
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
        }
    }

    /// <summary>The files to store (model first) and the manifest, once everything is checked.</summary>
    private static (List<string> Files, ArchiveManifest Manifest) Prepare(string output, ArchiveContents contents, bool overwrite)
    {
        var files = new List<string> { contents.SerializedFile };
        files.AddRange(contents.ExtraFiles);
        if (contents.ConfigFile is not null)
        {
            files.Add(contents.ConfigFile);
        }

        foreach (var group in files.GroupBy(Path.GetFileName, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            throw new ArchiveException($"two files would be stored as '{group.Key}' in the archive: {string.Join(", ", group)}");
        }

        foreach (var file in files.Where(f => !File.Exists(f)))
        {
            throw new ArchiveException($"{file} does not exist");
        }

        if (contents.ConfigFile is not null)
        {
            ArchiveSettings.Parse(File.ReadAllText(contents.ConfigFile), Path.GetFileName(contents.ConfigFile));
        }

        if ((File.Exists(output) || Directory.Exists(output)) && !overwrite)
        {
            throw new ArchiveException($"{output} exists; use --force to replace it");
        }

        var manifest = new ArchiveManifest
        {
            CreatedOn = DateTime.UtcNow.ToString("dd/MM/yyyy HH:mm:ss", CultureInfo.InvariantCulture),
            Runtime = "python",
            ArchiverVersion = Version,
            Model = new ManifestModel
            {
                ModelName = contents.ModelName,
                ModelVersion = contents.Version,
                SerializedFile = Path.GetFileName(contents.SerializedFile),
                Handler = contents.Handler,
                ConfigFile = contents.ConfigFile is null ? null : Path.GetFileName(contents.ConfigFile),
            },
        };
        return (files, manifest);
    }

    private static long Copy(string file, Stream destination, long written, IProgress<long>? progress)
    {
        using var source = File.OpenRead(file);
        var buffer = new byte[1 << 20];
        int read;
        while ((read = source.Read(buffer)) > 0)
        {
            destination.Write(buffer, 0, read);
            written += read;
            progress?.Report(written);
        }

        return written;
    }
}
