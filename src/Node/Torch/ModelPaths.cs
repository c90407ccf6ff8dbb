using Serve.Actors.Models;

namespace Serve.Node.Torch;

/// <summary>
/// Resolves the files a model definition names, as a check on what arrives over the cluster: a worker opens
/// only files its own operator allowed. Relative paths are relative to this node's model store and may not
/// leave it. An absolute path is taken only inside the model store, inside one of
/// <see cref="Hosting.NodeOptions.ModelDirectories"/>, or when it is one of <paramref name="startupFiles"/>
/// (the start-up models configured in this same process, in the standalone server). A file refused or not
/// there is the definition's fault (<see cref="ModelLoadException.Rejected"/>): the replica reports it once
/// and waits for its definition to change instead of restarting in a loop.
/// </summary>
public sealed class ModelPaths(string? modelStore, IEnumerable<string>? allowedDirectories = null, IEnumerable<string>? startupFiles = null)
{
    public string? ModelStore { get; } = modelStore is null ? null : Path.GetFullPath(modelStore);

    private readonly string[] _allowedDirectories = [.. (allowedDirectories ?? []).Select(d => WithSeparator(Path.GetFullPath(d)))];
    private readonly HashSet<string> _startupFiles = [.. (startupFiles ?? []).Where(Path.IsPathRooted).Select(Path.GetFullPath)];

    /// <summary>The full path of an existing file; throws a rejected <see cref="ModelLoadException"/> that says why not.</summary>
    public string Resolve(string path)
    {
        string full;
        if (Path.IsPathRooted(path))
        {
            full = Path.GetFullPath(path);
            if (!IsAllowed(full))
            {
                throw new ModelLoadException(
                    $"'{path}' is outside this worker's model store ({ModelStore ?? "none"}) and the directories it allows (Serve:Node:ModelDirectories: " +
                    $"{(_allowedDirectories.Length == 0 ? "none" : string.Join(", ", _allowedDirectories))}): a worker loads files only where its own " +
                    "configuration allows; add the directory there", rejected: true);
            }
        }
        else if (ModelStore is null)
        {
            throw new ModelLoadException(
                $"'{path}' is relative to a model store, and this node has none: start it with --model-store (Serve:ModelStore)", rejected: true);
        }
        else
        {
            full = Path.GetFullPath(Path.Combine(ModelStore, path));
            if (!full.StartsWith(WithSeparator(ModelStore), StringComparison.Ordinal))
            {
                throw new ModelLoadException($"'{path}' leaves the model store {ModelStore}", rejected: true);
            }
        }

        return File.Exists(full)
            ? full
            : throw new ModelLoadException($"model file {full} does not exist" + (ModelStore is null ? string.Empty : $" (model store {ModelStore})"),
                rejected: true);
    }

    private bool IsAllowed(string full) =>
        _startupFiles.Contains(full)
        || (ModelStore is not null && full.StartsWith(WithSeparator(ModelStore), StringComparison.Ordinal))
        || _allowedDirectories.Any(d => full.StartsWith(d, StringComparison.Ordinal));

    private static string WithSeparator(string directory) =>
        directory.EndsWith(Path.DirectorySeparatorChar) ? directory : directory + Path.DirectorySeparatorChar;
}
