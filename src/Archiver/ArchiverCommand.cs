using System.CommandLine;
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
    public static int Run(string[] args, TextWriter output, TextWriter errors, bool interactive)
    {
        var command = Command(errors, interactive);
        var configuration = new InvocationConfiguration { Output = output, Error = errors };
        if (args.Length == 0)
        {
            command.Parse(["--help"]).Invoke(configuration);
            return 2;
        }

        var parsed = command.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                errors.WriteLine($"serve-archiver: {error.Message} (see --help)");
            }

            return 1;
        }

        return parsed.Invoke(configuration);
    }

    /// <summary>torch-model-archiver's options (and its short names), plus Serve's --sign-key and keygen.</summary>
    private static RootCommand Command(TextWriter errors, bool interactive)
    {
        var modelName = new Option<string>("--model-name") { Description = "the model's name", Required = true };
        var version = new Option<string>("--version", "-v") { Description = "the model's version", DefaultValueFactory = _ => "1.0" };
        var serializedFile = new Option<string>("--serialized-file")
        {
            Description = $"a TorchScript file written by torch.jit.save ({string.Join(", ", ModelArchive.ModelFileExtensions)})",
            Required = true,
        };
        var handler = new Option<string>("--handler") { Description = $"a built-in handler: {string.Join(", ", BuiltInHandlers.All)}", Required = true };
        var configFile = new Option<string?>("--config-file", "-c") { Description = "a model-config.yaml (TorchServe's keys)" };
        var extraFiles = new Option<string?>("--extra-files") { Description = "more files, comma-separated (e.g. index_to_name.json)" };
        var exportPath = new Option<string>("--export-path") { Description = "where to write the archive", DefaultValueFactory = _ => "." };
        var archiveFormat = new Option<string>("--archive-format")
        {
            Description = "default: a .mar zip; no-archive: a directory NAME with the same layout",
            DefaultValueFactory = _ => "default",
        };
        var force = new Option<bool>("--force", "-f") { Description = "replace an existing archive" };
        var signKey = new Option<string?>("--sign-key")
        {
            Description = "sign the archive (MAR-INF/SIGNATURE.json) with this private key (PEM: ECDSA P-256 or P-384, or "
                          + "Ed25519); servers that trust its public key (Serve:Archives:TrustedKeys) verify it",
        };
        // Taken so that they can be refused with the reason, not as unknown options.
        var modelFile = new Option<string?>("--model-file") { Description = "refused: Serve never runs Python from an archive" };
        var requirementsFile = new Option<string?>("--requirements-file", "-r") { Description = "refused: Serve installs no Python packages" };
        var runtime = new Option<string?>("--runtime") { Description = "accepted for torch-model-archiver's scripts; Serve has one runtime" };

        var root = new RootCommand("Makes NAME.mar (TorchServe's archive layout) from a TorchScript file and a built-in handler.");
        foreach (var builtIn in root.Options.OfType<VersionOption>().ToList())
        {
            root.Options.Remove(builtIn); // -v / --version is the model's version, as in torch-model-archiver
        }

        Option[] options = [modelName, version, serializedFile, handler, configFile, extraFiles, exportPath, archiveFormat, force, signKey,
            modelFile, requirementsFile, runtime];
        foreach (var option in options)
        {
            root.Options.Add(option);
        }

        root.SetAction(parsed => ExitCode(errors, () =>
        {
            if (parsed.GetValue(modelFile) is { } eager)
            {
                throw new ArchiveException($"--model-file {eager}: Serve never runs Python from an archive, so eager models cannot be served; " +
                                           "export the model with torch.jit.script or torch.jit.trace and pass it as --serialized-file");
            }

            if (parsed.GetValue(requirementsFile) is not null)
            {
                throw new ArchiveException("--requirements-file: Serve installs no Python packages; archives carry no code");
            }

            var format = parsed.GetValue(archiveFormat)!;
            var contents = Check(parsed.GetValue(modelName)!, parsed.GetValue(version)!, parsed.GetValue(handler)!,
                parsed.GetValue(serializedFile)!, format, parsed.GetValue(configFile), parsed.GetValue(extraFiles));
            // Read before anything is written: a bad key fails with no half-made archive.
            using var signer = parsed.GetValue(signKey) is { } key ? SigningKey.Load(key) : null;
            var target = Path.Combine(parsed.GetValue(exportPath)!, contents.ModelName + (format == "no-archive" ? string.Empty : ".mar"));
            var total = new[] { contents.SerializedFile, contents.ConfigFile }.OfType<string>().Concat(contents.ExtraFiles)
                .Where(File.Exists).Sum(f => new FileInfo(f).Length);
            var progress = new ConsoleProgress(errors, Path.GetFileName(target), total, interactive);
            if (format == "no-archive")
            {
                ArchiveWriter.WriteDirectory(target, contents, progress, parsed.GetValue(force), signer);
            }
            else
            {
                ArchiveWriter.Write(target, contents, progress, parsed.GetValue(force), signer);
            }

            progress.Done();
            parsed.InvocationConfiguration.Output.WriteLine(Path.GetFullPath(target));
        }));

        var keyOut = new Option<string>("--out")
        {
            Description = "writes PREFIX.key.pem (the private key, readable by its owner only) and PREFIX.pub.pem (the public key, for servers)",
            Required = true,
            HelpName = "PREFIX",
        };
        var algorithm = new Option<string>("--algorithm")
        {
            Description = string.Join(", ", SignatureAlgorithms.All),
            DefaultValueFactory = _ => SignatureAlgorithms.EcdsaP256,
        };
        var keygen = new Command("keygen", "Writes a new key pair for signing archives.") { keyOut, algorithm };
        keygen.SetAction(parsed => ExitCode(errors, () =>
            KeyGen(parsed.GetValue(keyOut)!, parsed.GetValue(algorithm)!, parsed.InvocationConfiguration.Output)));
        root.Subcommands.Add(keygen);
        return root;
    }

    /// <summary>Runs <paramref name="work"/>: 0, or 1 with the reason when the archive or key cannot be made.</summary>
    private static int ExitCode(TextWriter errors, Action work)
    {
        try
        {
            work();
            return 0;
        }
        catch (Exception error) when (error is ArchiveException or IOException or UnauthorizedAccessException)
        {
            errors.WriteLine($"serve-archiver: {error.Message}");
            return 1;
        }
    }

    /// <summary>The archive's contents, or why Serve would refuse it.</summary>
    private static ArchiveContents Check(string name, string version, string handler, string model, string format, string? configFile,
        string? extraFiles)
    {
        if (!ModelNames.IsValid(name))
        {
            throw new ArchiveException($"--model-name '{name}' is invalid: use {ModelNames.Rule}");
        }

        if (!ModelNames.IsValid(version))
        {
            throw new ArchiveException($"--version '{version}' is invalid: use {ModelNames.Rule}");
        }

        if (BuiltInHandlers.Problem(handler) is { } problem)
        {
            throw new ArchiveException($"--handler: {problem}");
        }

        if (!ModelArchive.ModelFileExtensions.Contains(Path.GetExtension(model), StringComparer.OrdinalIgnoreCase))
        {
            throw new ArchiveException($"--serialized-file {model} is not TorchScript ({string.Join(", ", ModelArchive.ModelFileExtensions)} written by torch.jit.save)");
        }

        if (format is not ("default" or "no-archive"))
        {
            throw new ArchiveException($"--archive-format must be default or no-archive, not '{format}'");
        }

        var extra = (extraFiles ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new ArchiveContents(name, version, model, handler, configFile, extra);
    }

    /// <summary>
    /// Writes a new key pair, never over an existing file; the private key is created owner-only (0600), so it
    /// is never readable by others, not even for a moment.
    /// </summary>
    private static void KeyGen(string prefix, string algorithm, TextWriter output)
    {
        using var key = SigningKey.Create(algorithm);
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
