namespace Serve.TestSupport;

/// <summary>Cluster certificates made as an operator makes them: with the worker's documented command.</summary>
public static class ClusterCertificates
{
    /// <summary>Runs <c>Serve.Node.dll cluster-certificate PATH</c>; returns the path.</summary>
    public static async Task<string> CreateAsync(string path)
    {
        await using var command = ServeProcess.Start("cluster-certificate", ServeProcess.BuiltDll("Node", "Serve.Node.dll"), "cluster-certificate", path);
        var exitCode = await command.ExitCodeAsync(TimeSpan.FromSeconds(60));
        return exitCode == 0 && File.Exists(path)
            ? path
            : throw new InvalidOperationException($"cluster-certificate exited {exitCode}{Environment.NewLine}{command.Tail()}");
    }
}
