using Serve.Actors.Models;
using Serve.Node.Torch;

namespace Serve.Node.Tests;

/// <summary>
/// A worker opens only files its own configuration allows, whatever a definition from the cluster names:
/// the model store, its ModelDirectories, and (standalone) its own start-up models' files.
/// </summary>
public sealed class ModelPathsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("serve-paths-").FullName;

    private string Write(string relative)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [1]);
        return path;
    }

    [Fact]
    public void An_absolute_path_outside_the_store_is_refused_unless_this_worker_allows_it()
    {
        var inStore = Write("store/m.pt");
        var elsewhere = Write("elsewhere/m.pt");
        var allowed = Write("allowed/m.pt");
        var startup = Write("startup/m.pt");
        var paths = new ModelPaths(Path.Combine(_root, "store"), [Path.Combine(_root, "allowed")], [startup]);

        Assert.Equal(inStore, paths.Resolve("m.pt"));
        Assert.Equal(inStore, paths.Resolve(inStore));
        Assert.Equal(allowed, paths.Resolve(allowed));
        Assert.Equal(startup, paths.Resolve(startup));
        var refused = Assert.Throws<ModelLoadException>(() => paths.Resolve(elsewhere));
        Assert.True(refused.Rejected);
        Assert.Contains("Serve:Node:ModelDirectories", refused.Message);
        Assert.Throws<ModelLoadException>(() => paths.Resolve("/etc/passwd"));

        // A sibling whose name merely starts like an allowed directory is not inside it.
        var sibling = Write("allowed-not/m.pt");
        Assert.Throws<ModelLoadException>(() => paths.Resolve(sibling));
        Assert.Throws<ModelLoadException>(() => paths.Resolve(Path.Combine(_root, "allowed", "..", "elsewhere", "m.pt")));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
