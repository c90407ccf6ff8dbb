using Serve.Actors.Models;

namespace Serve.Node.Torch;

/// <summary>
/// Resolves the files a model definition names. Relative paths are relative to this node's model store
/// and may not leave it; absolute paths are taken as given (they come from the operator's own start-up
/// configuration).
/// </summary>
public sealed class ModelPaths(string? modelStore)
{
    public string? ModelStore { get; } = modelStore is null ? null : Path.GetFullPath(modelStore);

    public string Resolve(string path)
    {
        if (Path.IsPathRooted(path))
        {
            return Path.GetFullPath(path);
        }

        if (ModelStore is null)
        {
            throw new ModelLoadException($"'{path}' is relative but this node has no model store (--model-store)");
        }

        var full = Path.GetFullPath(Path.Combine(ModelStore, path));
        var root = ModelStore.EndsWith(Path.DirectorySeparatorChar) ? ModelStore : ModelStore + Path.DirectorySeparatorChar;
        return full.StartsWith(root, StringComparison.Ordinal)
            ? full
            : throw new ModelLoadException($"'{path}' leaves the model store {ModelStore}");
    }
}
