using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

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

    /// <summary>
    /// Writes a .mar at <paramref name="output"/> (through a temporary file, so a failure leaves nothing), reporting
    /// bytes written, and signed with <paramref name="signer"/> when one is given.
    /// </summary>
    public static void Write(
        string output, ArchiveContents contents, IProgress<long>? progress = null, bool overwrite = false, SigningKey? signer = null)
    {
        var (files, manifest) = Prepare(output, contents, overwrite);
        var temporary = output + ".partial";
        try
        {
            var stored = new Stored(progress);
            using (var zip = ZipFile.Open(temporary, ZipArchiveMode.Create))
            {
                foreach (var file in files)
                {
                    using var destination = zip.CreateEntry(Path.GetFileName(file), CompressionLevel.Fastest).Open();
                    stored.Copy(file, Path.GetFileName(file), destination);
                }

                foreach (var (entry, bytes) in stored.Metadata(manifest, signer))
                {
                    using var destination = zip.CreateEntry(entry, CompressionLevel.Fastest).Open();
                    destination.Write(bytes);
                }
            }

            File.Move(temporary, output, overwrite);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Writes the same layout unpacked, as a directory (TorchServe's no-archive format), signed as <see cref="Write"/>.</summary>
    public static void WriteDirectory(
        string output, ArchiveContents contents, IProgress<long>? progress = null, bool overwrite = false, SigningKey? signer = null)
    {
        var (files, manifest) = Prepare(output, contents, overwrite);
        var temporary = output + ".partial";
        try
        {
            Directory.CreateDirectory(Path.Combine(temporary, "MAR-INF"));
            var stored = new Stored(progress);
            foreach (var file in files)
            {
                using var destination = File.Create(Path.Combine(temporary, Path.GetFileName(file)));
                stored.Copy(file, Path.GetFileName(file), destination);
            }

            foreach (var (entry, bytes) in stored.Metadata(manifest, signer))
            {
                File.WriteAllBytes(Path.Combine(temporary, entry), bytes);
            }

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

    /// <summary>What has been stored so far: bytes for progress, and each entry's SHA-256 for the signature.</summary>
    private sealed class Stored(IProgress<long>? progress)
    {
        private readonly List<(string Path, byte[] Sha256)> _hashes = [];
        private long _written;

        public void Copy(string file, string entry, Stream destination)
        {
            using var source = File.OpenRead(file);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 20];
            int read;
            while ((read = source.Read(buffer)) > 0)
            {
                destination.Write(buffer, 0, read);
                hash.AppendData(buffer, 0, read);
                _written += read;
                progress?.Report(_written);
            }

            _hashes.Add((entry, hash.GetHashAndReset()));
        }

        /// <summary>The manifest, then the signature over everything stored (when signing), as (entry, bytes).</summary>
        public IEnumerable<(string Entry, byte[] Bytes)> Metadata(ArchiveManifest manifest, SigningKey? signer)
        {
            var json = Encoding.UTF8.GetBytes(manifest.ToJson());
            _hashes.Add((ArchiveManifest.RelativePath, SHA256.HashData(json)));
            yield return (ArchiveManifest.RelativePath, json);
            if (signer is not null)
            {
                yield return (ArchiveSignature.RelativePath, Encoding.UTF8.GetBytes(signer.Sign(ArchiveDigest.Of(_hashes)).ToJson()));
            }
        }
    }
}
