using Serve.Actors.Protocol;
using Serve.Archive;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Management;

/// <summary>Settings given beside a model file (management API parameters or --models settings); null where not given.</summary>
public sealed record GivenSettings
{
    public string? Name { get; init; }

    public string? Version { get; init; }

    public string? Handler { get; init; }

    public int? Replicas { get; init; }

    public int? BatchSize { get; init; }

    public int? MaxBatchDelay { get; init; }

    public int? JobQueueSize { get; init; }

    public int? ResponseTimeout { get; init; }

    public string? Labels { get; init; }

    public PlacementSettings? Placement { get; init; }

    /// <summary>The SHA-256 (hex) the model file or .mar must have: checked before it is unpacked or used.</summary>
    public string? Sha256 { get; init; }
}

/// <summary>A model's definition, and the archive directory unpacked to make it (null when none was unpacked now).</summary>
public sealed record DefinedModel(ModelDefinition Definition, string? Unpacked)
{
    /// <summary>The archive's <c>startupTimeout</c> (seconds), for a synchronous registration; null when it has none.</summary>
    public int? StartupTimeout { get; init; }

    /// <summary>Removes what defining the model unpacked, when its registration did not happen.</summary>
    public void Discard()
    {
        if (Unpacked is not null && Directory.Exists(Unpacked))
        {
            Directory.Delete(Unpacked, recursive: true);
        }
    }
}

/// <summary>
/// Turns a model file into a definition: a bare TorchScript file, a TorchServe .mar archive, or an unpacked
/// archive directory. An archive's settings sit between Serve's defaults and the settings given with it,
/// as in TorchServe (defaults &lt; model-config.yaml &lt; API parameters). Archives are unpacked once into
/// the model store (<see cref="ArchiveDirectory"/>, one directory per archive content), so every worker
/// reading the same store finds the files.
/// </summary>
public static class ModelFiles
{
    public const string ArchiveDirectory = ".serve-archives";
    public const string ArchiveExtension = ".mar";

    /// <summary>Model files Serve loads: TorchScript written by torch.jit.save.</summary>
    public static readonly string[] TorchScriptExtensions = ModelArchive.ModelFileExtensions;

    public static bool IsArchive(string path, string? modelStore) =>
        Path.GetExtension(path).Equals(ArchiveExtension, StringComparison.OrdinalIgnoreCase)
        || Directory.Exists(Full(path, modelStore));

    /// <summary>
    /// The definition for <paramref name="path"/> (relative to the model store, or absolute). An archive that
    /// cannot be used, or whose definition is invalid, throws <see cref="ArchiveException"/> and leaves nothing
    /// unpacked. <see cref="DefinedModel.Unpacked"/> names a directory unpacked by this call, for the caller
    /// to remove if the registration is refused after all. Signatures are checked on what was unpacked, before
    /// the manifest is read (<see cref="ArchiveTrustOptions"/>); a <see cref="GivenSettings.Sha256"/> pin on the file.
    /// </summary>
    public static DefinedModel Define(string path, GivenSettings given, GatewayOptions options)
    {
        var trust = options.Archives.Load();
        if (!IsArchive(path, options.ModelStore))
        {
            trust.CheckBareModel();
            if (given.Sha256 is not null)
            {
                ArchivePin.Check(Full(path, options.ModelStore), given.Sha256);
            }

            return new DefinedModel(Create(path, path, ArchiveSettings.None, given, options), null);
        }

        if (options.ModelStore is null)
        {
            throw new ArchiveException("model archives need a model store (--model-store) to be unpacked into");
        }

        var full = Full(path, options.ModelStore);
        if (Directory.Exists(full))
        {
            if (given.Sha256 is not null)
            {
                throw new ArchiveException("sha256 pins a file (a .mar or a TorchScript file), and this is an archive directory: " +
                                           "sign the directory (serve-archiver --sign-key) or register its .mar instead");
            }

            trust.Verify(full);
            return FromArchive(ModelArchive.Open(full), full, path, given, options, unpacked: null);
        }

        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Model not found at: {path}", full);
        }

        var final = UnpackedDirectory(full, ArchivePin.Check(full, given.Sha256), options);
        if (Directory.Exists(final))
        {
            // Unpacked by an earlier registration, perhaps under other settings: verified again, as it is now.
            trust.Verify(final);
            return FromArchive(ModelArchive.Open(final), final, path, given, options, unpacked: null);
        }

        // Unpacked aside and checked, then renamed: a directory in the archive directory is always complete and usable.
        var staging = Path.Combine(options.ModelStore, ArchiveDirectory, $".unpacking-{Guid.NewGuid():N}");
        try
        {
            SafeZip.Extract(full, staging, new ArchiveLimits(ArchiveLimits.Default.MaxEntries, options.MaxArchiveSize));
            trust.Verify(staging);
            var defined = FromArchive(ModelArchive.Open(staging), final, path, given, options, unpacked: final);
            try
            {
                Directory.Move(staging, final);
                return defined;
            }
            catch (IOException) when (Directory.Exists(final))
            {
                // Another registration unpacked the same archive meanwhile: theirs is as good.
                return defined with { Unpacked = null };
            }
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>The definition from an unpacked archive that is (or will be) at <paramref name="directory"/>.</summary>
    private static DefinedModel FromArchive(
        ModelArchive archive, string directory, string path, GivenSettings given, GatewayOptions options, string? unpacked)
    {
        var model = archive.Manifest.Model;
        var merged = given with
        {
            Name = given.Name ?? model.ModelName ?? Path.GetFileNameWithoutExtension(path),
            Version = given.Version ?? model.ModelVersion,
            Handler = given.Handler ?? model.Handler,
            Labels = given.Labels ?? (archive.LabelsFile is { } labels ? InStore(Path.Combine(directory, labels), options) : null),
        };
        var definition = Create(InStore(Path.Combine(directory, archive.SerializedFile), options), path, archive.Settings, merged, options) with
        {
            VocabPath = archive.VocabFile is { } vocab ? InStore(Path.Combine(directory, vocab), options) : null,
        };
        var problems = definition.Validate();
        return problems.Count == 0
            ? new DefinedModel(definition, unpacked) { StartupTimeout = archive.Settings.StartupTimeout }
            : throw new ArchiveException(string.Join("; ", problems));
    }

    private static ModelDefinition Create(
        string modelFile, string path, ArchiveSettings archive, GivenSettings given, GatewayOptions options) => new(
        given.Name ?? Path.GetFileNameWithoutExtension(path),
        given.Version ?? "1.0",
        new TorchScriptSource(modelFile),
        given.Handler ?? BuiltInHandlers.Tensor,
        given.Replicas ?? archive.MinWorkers ?? options.DefaultWorkersPerModel,
        given.BatchSize ?? archive.BatchSize ?? ModelDefinition.DefaultBatchSize,
        given.MaxBatchDelay ?? archive.MaxBatchDelay ?? ModelDefinition.DefaultMaxBatchDelayMs,
        given.JobQueueSize ?? archive.JobQueueSize ?? options.JobQueueSize,
        given.ResponseTimeout ?? archive.ResponseTimeout ?? options.DefaultResponseTimeout,
        given.Labels)
    {
        Url = path,
        Placement = given.Placement?.Over(PlacementSettings.FromArchive(archive)) ?? PlacementSettings.FromArchive(archive),
        DeviceMemoryMb = given.Placement?.DeviceMemoryMb ?? (int)Math.Min(int.MaxValue, archive.DeviceMemoryMb ?? 0),
    };

    /// <summary>Where a .mar is unpacked: named by its content's hash, so the same archive is unpacked once.</summary>
    private static string UnpackedDirectory(string archivePath, string sha256, GatewayOptions options) =>
        Path.Combine(options.ModelStore!, ArchiveDirectory, $"{Path.GetFileNameWithoutExtension(archivePath)}-{sha256[..16]}");

    private static string Full(string path, string? modelStore) =>
        Path.IsPathRooted(path) || modelStore is null ? Path.GetFullPath(path) : Path.Combine(modelStore, path);

    /// <summary>Paths inside the model store are kept relative to it: each worker resolves them against its own store.</summary>
    private static string InStore(string path, GatewayOptions options)
    {
        var relative = Path.GetRelativePath(options.ModelStore!, path);
        return relative.StartsWith("..", StringComparison.Ordinal) ? Path.GetFullPath(path) : relative;
    }
}
