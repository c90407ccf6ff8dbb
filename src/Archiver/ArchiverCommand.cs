using System.Globalization;
using Serve.Actors.Protocol;
using Serve.Archive;

namespace Serve.Archiver;

/// <summary>
/// Serve's answer to torch-model-archiver, with its option names: makes a model archive from a TorchScript
/// file, a built-in handler, an optional model-config.yaml and extra files (e.g. index_to_name.json).
/// Refuses what Serve would refuse at registration (Python handlers, eager models, non-TorchScript files),
/// so a bad archive fails here rather than on a server.
/// </summary>
public static class ArchiverCommand
{
    private const string Usage = """
        usage: serve-archiver --model-name NAME --serialized-file MODEL.pt --handler HANDLER
                              [--version 1.0] [--config-file model-config.yaml] [--extra-files a.json,b.txt]
                              [--export-path DIR] [--archive-format default|no-archive] [-f|--force]
                              [--sign-key KEY.pem]
               serve-archiver keygen --out PREFIX [--algorithm ALGORITHM]

        Makes NAME.mar (TorchServe's archive layout) in the export path (default: the current directory).
        --serialized-file  a TorchScript file written by torch.jit.save (.pt, .pth, .ts)
        --handler          a built-in handler: HANDLERS
        --archive-format   default: a .mar zip; no-archive: a directory NAME with the same layout
        --sign-key         sign the archive (MAR-INF/SIGNATURE.json) with this private key (PEM: ECDSA P-256 or
                           P-384, or Ed25519); servers that trust its public key (Serve:Archives:TrustedKeys) verify it

        keygen writes a new key pair: PREFIX.key.pem (the private key, readable by its owner only; keep it
        with the signer) and PREFIX.pub.pem (the public key, for servers). ALGORITHM: ALGORITHMS.
        """;

    public static int Run(string[] args, TextWriter output, TextWriter errors, bool interactive)
    {
        if (args.Length == 0 || args.Contains("-h") || args.Contains("--help"))
        {
            output.WriteLine(Usage.Replace("HANDLERS", string.Join(", ", BuiltInHandlers.All), StringComparison.Ordinal)
                .Replace("ALGORITHMS", string.Join(", ", SignatureAlgorithms.All) + $" (default {SignatureAlgorithms.EcdsaP256})", StringComparison.Ordinal));
            return args.Length == 0 ? 2 : 0;
        }

        try
        {
            if (args[0] == "keygen")
            {
                KeyGen(Parse(args[1..], KeyGenOptions), output);
                return 0;
            }

            var options = Parse(args, Known);
            var contents = Check(options);
            // Read before anything is written: a bad key fails with no half-made archive.
            using var signer = options.GetValueOrDefault("--sign-key") is { } key ? SigningKey.Load(key) : null;
            var target = Path.Combine(options.GetValueOrDefault("--export-path") ?? ".",
                contents.ModelName + (options.GetValueOrDefault("--archive-format") == "no-archive" ? string.Empty : ".mar"));
            var force = options.ContainsKey("--force");
            var total = new[] { contents.SerializedFile, contents.ConfigFile }.OfType<string>().Concat(contents.ExtraFiles)
                .Where(File.Exists).Sum(f => new FileInfo(f).Length);
            var progress = new ConsoleProgress(errors, Path.GetFileName(target), total, interactive);
            if (options.GetValueOrDefault("--archive-format") == "no-archive")
            {
                ArchiveWriter.WriteDirectory(target, contents, progress, force, signer);
            }
            else
            {
                ArchiveWriter.Write(target, contents, progress, force, signer);
            }

            progress.Done();
            output.WriteLine(Path.GetFullPath(target));
            return 0;
        }
        catch (Exception error) when (error is ArchiveException or IOException or UnauthorizedAccessException)
        {
            errors.WriteLine($"serve-archiver: {error.Message}");
            return 1;
        }
    }

    private static readonly string[] Known =
    [
        "--model-name", "--version", "--serialized-file", "--handler", "--config-file", "--extra-files", "--export-path",
        "--archive-format", "--model-file", "--requirements-file", "--runtime", "--sign-key",
    ];

    private static readonly string[] KeyGenOptions = ["--out", "--algorithm"];

    private static Dictionary<string, string> Parse(string[] args, string[] known)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i] switch { "-v" => "--version", "-f" => "--force", "-c" => "--config-file", var other => other };
            if (name == "--force")
            {
                options[name] = "true";
                continue;
            }

            if (!known.Contains(name))
            {
                throw new ArchiveException($"unknown option '{args[i]}' (see --help)");
            }

            if (i + 1 >= args.Length)
            {
                throw new ArchiveException($"{name} needs a value");
            }

            options[name] = args[++i];
        }

        return options;
    }

    /// <summary>The archive's contents, or why Serve would refuse it.</summary>
    private static ArchiveContents Check(Dictionary<string, string> options)
    {
        if (options.GetValueOrDefault("--model-file") is { } eager)
        {
            throw new ArchiveException($"--model-file {eager}: Serve never runs Python from an archive, so eager models cannot be served; " +
                                       "export the model with torch.jit.script or torch.jit.trace and pass it as --serialized-file");
        }

        if (options.ContainsKey("--requirements-file"))
        {
            throw new ArchiveException("--requirements-file: Serve installs no Python packages; archives carry no code");
        }

        var name = Required(options, "--model-name");
        if (!ModelNames.IsValid(name))
        {
            throw new ArchiveException($"--model-name '{name}' is invalid: use {ModelNames.Rule}");
        }

        var version = options.GetValueOrDefault("--version") ?? "1.0";
        if (!ModelNames.IsValid(version))
        {
            throw new ArchiveException($"--version '{version}' is invalid: use {ModelNames.Rule}");
        }

        var handler = Required(options, "--handler");
        if (BuiltInHandlers.Problem(handler) is { } problem)
        {
            throw new ArchiveException($"--handler: {problem}");
        }

        var model = Required(options, "--serialized-file");
        if (!ModelArchive.ModelFileExtensions.Contains(Path.GetExtension(model), StringComparer.OrdinalIgnoreCase))
        {
            throw new ArchiveException($"--serialized-file {model} is not TorchScript ({string.Join(", ", ModelArchive.ModelFileExtensions)} written by torch.jit.save)");
        }

        if (options.GetValueOrDefault("--archive-format") is { } format && format is not ("default" or "no-archive"))
        {
            throw new ArchiveException($"--archive-format must be default or no-archive, not '{format}'");
        }

        var extra = (options.GetValueOrDefault("--extra-files") ?? string.Empty)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new ArchiveContents(name, version, model, handler, options.GetValueOrDefault("--config-file"), extra);
    }

    /// <summary>
    /// Writes a new key pair, never over an existing file; the private key is created owner-only (0600), so it
    /// is never readable by others, not even for a moment.
    /// </summary>
    private static void KeyGen(Dictionary<string, string> options, TextWriter output)
    {
        var prefix = Required(options, "--out");
        using var key = SigningKey.Create(options.GetValueOrDefault("--algorithm") ?? SignatureAlgorithms.EcdsaP256);
        var (privateFile, publicFile) = (prefix + ".key.pem", prefix + ".pub.pem");
        foreach (var file in new[] { privateFile, publicFile }.Where(f => File.Exists(f) || Directory.Exists(f)))
        {
            throw new ArchiveException($"{file} exists; keygen never replaces a key: choose another --out or remove it");
        }

        var ownerOnly = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            ownerOnly.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var writer = new StreamWriter(privateFile, ownerOnly))
        {
            writer.Write(key.PrivateKeyPem());
        }

        File.WriteAllText(publicFile, key.PublicKeyPem());
        output.WriteLine($"{Path.GetFullPath(privateFile)}: private key ({key.Algorithm}), for serve-archiver --sign-key; keep it secret");
        output.WriteLine($"{Path.GetFullPath(publicFile)}: public key {key.Id}, for servers' Serve:Archives:TrustedKeys");
    }

    private static string Required(Dictionary<string, string> options, string name) =>
        options.GetValueOrDefault(name) ?? throw new ArchiveException($"{name} is required (see --help)");

    /// <summary>Bytes archived so far: a line redrawn in place on a terminal, every 10% otherwise.</summary>
    private sealed class ConsoleProgress(TextWriter errors, string target, long total, bool interactive) : IProgress<long>
    {
        private int _shown = -1;

        public void Report(long value)
        {
            var percent = total == 0 ? 100 : (int)(value * 100 / total);
            if (interactive ? percent == _shown : percent / 10 == _shown / 10)
            {
                return;
            }

            _shown = percent;
            var line = string.Create(CultureInfo.InvariantCulture, $"{target}: {percent,3}% ({value / 1048576.0:0.0} of {total / 1048576.0:0.0} MiB)");
            if (interactive)
            {
                errors.Write($"\r{line}");
            }
            else
            {
                errors.WriteLine(line);
            }
        }

        public void Done()
        {
            if (interactive && _shown >= 0)
            {
                errors.WriteLine();
            }
        }
    }
}
