using Serve.Actors.Models;

namespace Serve.Node.Torch;

/// <summary>
/// Resolves the files a model definition names. Relative paths are relative to this node's model store
/// and may not leave it; absolute paths are taken as given (they come from the operator's own start-up
/// configuration). A file that is not there is refused as the file's fault (<see cref="ModelLoadException.Rejected"/>):
/// the replica reports it once and waits for its definition to change instead of restarting in a loop.
/// </summary>
public sealed class ModelPaths(string? modelStore)
{
    public string? ModelStore { get; } = modelStore is null ? null : Path.GetFullPath(modelStore);

    /// <summary>The full path of an existing file; throws a rejected <see cref="ModelLoadException"/> that says why not.</summary>
    public string Resolve(string path)
    {
        string full;
        if (Path.IsPathRooted(path))
        {
            full = Path.GetFullPath(path);
        }
        else if (ModelStore is null)
        {
            throw new ModelLoadException(
                $"'{path}' is relative to a model store, and this node has none: start it with --model-store (Serve:ModelStore)", rejected: true);
        }
        else
        {
            full = Path.GetFullPath(Path.Combine(ModelStore, path));
            var root = ModelStore.EndsWith(Path.DirectorySeparatorChar) ? ModelStore : ModelStore + Path.DirectorySeparatorChar;
            if (!full.StartsWith(root, StringComparison.Ordinal))
            {
                throw new ModelLoadException($"'{path}' leaves the model store {ModelStore}", rejected: true);
            }
        }

        return File.Exists(full)
            ? full
            : throw new ModelLoadException($"model file {full} does not exist" + (ModelStore is null ? string.Empty : $" (model store {ModelStore})"),
                rejected: true);
    }
}
