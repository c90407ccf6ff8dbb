namespace Serve.Deployment.Tests;

/// <summary>The deployment files of the repository, read once: docker-compose.yml, docker/Dockerfile.*, .dockerignore.</summary>
public static class Deployment
{
    public const string ComposeFileName = "docker-compose.yml";
    public const string GatewayService = "gateway";
    public const string GpuWorkerService = "worker-gpu";

    /// <summary>Services that run Serve.Node as a worker (every service but the gateway).</summary>
    public static readonly string[] CpuWorkerServices = ["worker-1", "worker-2"];

    private static readonly Lazy<ComposeFile> LazyCompose = new(() => ComposeFile.Load(ComposePath));
    private static readonly Lazy<DockerIgnore> LazyIgnore = new(() => DockerIgnore.Load(Path.Combine(Root, ".dockerignore")));
    private static readonly Dictionary<string, Dockerfile> Dockerfiles = new(StringComparer.Ordinal);

    public static string Root => Fixtures.RepositoryRoot;

    public static string ComposePath => Path.Combine(Root, ComposeFileName);

    public static ComposeFile Compose => LazyCompose.Value;

    public static DockerIgnore Ignore => LazyIgnore.Value;

    public static IEnumerable<ComposeService> Workers => Compose.Services.Values.Where(s => s.Name != GatewayService);

    /// <summary>The build context of a service on disk (relative paths are relative to the compose file's directory).</summary>
    public static string ContextOf(ComposeService service) =>
        Path.GetFullPath(Path.Combine(Compose.Directory, service.BuildContext ?? throw new InvalidOperationException($"{service} has no build")));

    /// <summary>The Dockerfile a service builds (relative to its build context, as Compose resolves it).</summary>
    public static Dockerfile DockerfileOf(ComposeService service)
    {
        var path = Path.GetFullPath(Path.Combine(ContextOf(service), service.BuildDockerfile!));
        lock (Dockerfiles)
        {
            if (!Dockerfiles.TryGetValue(path, out var dockerfile))
            {
                dockerfile = Dockerfile.Load(path);
                Dockerfiles[path] = dockerfile;
            }

            return dockerfile;
        }
    }

    /// <summary>Every Dockerfile under docker/, whether a service builds it or not.</summary>
    public static IEnumerable<Dockerfile> AllDockerfiles() =>
        Directory.EnumerateFiles(Path.Combine(Root, "docker"), "Dockerfile*").Order(StringComparer.Ordinal).Select(Dockerfile.Load);

    /// <summary>
    /// The configuration a service's process sees: the image's ENV (its final stage) overlaid with the
    /// compose file's environment.
    /// </summary>
    public static Dictionary<string, string?> EffectiveEnvironment(ComposeService service)
    {
        var environment = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (service.Build is not null)
        {
            foreach (var (key, value) in Dockerfile.Environment(DockerfileOf(service).FinalStage))
            {
                environment[key] = value;
            }
        }

        foreach (var (key, value) in service.Environment)
        {
            environment[key] = value;
        }

        return environment;
    }

    /// <summary>Fails with every problem listed, one a line, under <paramref name="what"/>.</summary>
    public static void AssertNone(IEnumerable<string> problems, string what)
    {
        var list = problems.ToList();
        Assert.True(list.Count == 0, $"{what}:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", list)}");
    }
}
