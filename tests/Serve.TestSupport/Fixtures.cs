namespace Serve.TestSupport;

/// <summary>
/// Files outside the repository: the real PyTorch-made fixtures in ../shared/fixtures (present on the
/// project's machines and in CI, absent from a bare clone) and the repository root.
/// </summary>
public static class Fixtures
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>../shared/fixtures beside the repository, or null when that folder does not exist.</summary>
    public static string? SharedDirectory { get; } = FindShared();

    public static string SharedMissingMessage =>
        $"../shared/fixtures was not found beside {RepositoryRoot}: the tests against real PyTorch-made files were skipped";

    /// <summary>Path of a shared fixture, or null (and the caller skips, saying so) when the folder is absent.</summary>
    public static string? Shared(string relativePath) =>
        SharedDirectory is null ? null : Path.Combine(SharedDirectory, relativePath);

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Serve.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Serve.sln not found above {AppContext.BaseDirectory}");
    }

    private static string? FindShared()
    {
        var path = Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "fixtures"));
        return Directory.Exists(path) ? path : null;
    }
}
