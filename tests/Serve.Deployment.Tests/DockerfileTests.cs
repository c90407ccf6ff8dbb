namespace Serve.Deployment.Tests;

/// <summary>
/// docker/Dockerfile.* and .dockerignore, checked without a Docker engine: the stages, what each COPY takes from
/// the build context (the repository root) and what the restore and publish steps can see.
/// </summary>
public sealed class DockerfileTests
{
    /// <summary>Build settings every restore needs: global.json picks the SDK, the rest shape every project.</summary>
    public static readonly string[] BuildSettings =
        ["global.json", "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props"];

    public static TheoryData<string> Services() => [.. ComposeFileTests.ExpectedServices];

    public static TheoryData<string> Dockerfiles() => ["docker/Dockerfile.gateway", "docker/Dockerfile.worker"];

    [Theory]
    [MemberData(nameof(Services))]
    public void Service_builds_a_dockerfile_that_exists_in_its_build_context(string name)
    {
        var service = Deployment.Compose[name];
        Assert.True(service.Build is not null, $"{name} has no build section: the images are built from this repository");
        Assert.True(service.BuildContext is not null, $"{name}: build.context is missing");
        var context = Deployment.ContextOf(service);
        Assert.True(Directory.Exists(context), $"{name}: build.context '{service.BuildContext}' is {context}, which does not exist");
        Assert.True(context.TrimEnd('/') == Path.GetFullPath(Deployment.Root).TrimEnd('/'),
            $"{name}: build.context must be the repository root (the Dockerfiles COPY src/, build/ and the props), not {context}");
        var dockerfile = Path.GetFullPath(Path.Combine(context, service.BuildDockerfile!));
        Assert.True(File.Exists(dockerfile), $"{name}: build.dockerfile '{service.BuildDockerfile}' is {dockerfile}, which does not exist");
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Dockerfile_is_multi_stage_on_Ubuntu_noble_images(string path)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        Assert.True(dockerfile.Stages.Count >= 2,
            $"{path} has {dockerfile.Stages.Count} FROM: build with the SDK in one stage and run on the aspnet runtime in another");
        var problems = new List<string>();
        var stageNames = new List<string>();
        foreach (var stage in dockerfile.Stages)
        {
            var fromStage = stageNames.Contains(stage.Image, StringComparer.OrdinalIgnoreCase);
            var tag = stage.Image.Contains(':', StringComparison.Ordinal) ? stage.Image[(stage.Image.LastIndexOf(':') + 1)..] : string.Empty;
            if (!fromStage && !tag.Contains("noble", StringComparison.Ordinal))
            {
                problems.Add($"{stage.From}: use an Ubuntu 24.04 (noble) image: libtorch needs its libstdc++");
            }

            if (stage.Name is not null)
            {
                stageNames.Add(stage.Name);
            }
        }

        var final = dockerfile.FinalStage.Image;
        if (!final.StartsWith("mcr.microsoft.com/dotnet/aspnet:", StringComparison.Ordinal) && !final.StartsWith("mcr.microsoft.com/dotnet/runtime:", StringComparison.Ordinal))
        {
            problems.Add($"{dockerfile.FinalStage.From}: the final stage should be mcr.microsoft.com/dotnet/aspnet or runtime (no SDK in the image)");
        }

        if (!dockerfile.Stages.SkipLast(1).Any(s => s.Image.StartsWith("mcr.microsoft.com/dotnet/sdk:", StringComparison.Ordinal)))
        {
            problems.Add("no stage builds with mcr.microsoft.com/dotnet/sdk");
        }

        Deployment.AssertNone(problems, $"{path}'s stages");
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Copy_sources_exist_in_the_repository_and_are_not_docker_ignored(string path)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        var problems = new List<string>();
        var copies = dockerfile.Copies().Where(c => c.From is null).ToList();
        Assert.True(copies.Count > 0, $"{path} copies nothing from the build context");
        foreach (var copy in copies)
        {
            foreach (var source in copy.Sources)
            {
                var relative = source.Trim('/');
                var onDisk = Path.Combine(Deployment.Root, relative);
                if (source.IndexOfAny(['*', '?', '[']) >= 0)
                {
                    problems.Add($"{copy.Instruction}: '{source}' is a wildcard: COPY flattens what it matches; name the files");
                }
                else if (!File.Exists(onDisk) && !Directory.Exists(onDisk))
                {
                    problems.Add($"{copy.Instruction}: '{source}' does not exist in the repository");
                }
                else if (Deployment.Ignore.IsExcluded(relative))
                {
                    problems.Add($"{copy.Instruction}: '{source}' is left out of the build context by .dockerignore rule '{Deployment.Ignore.RuleFor(relative)}'");
                }

                if (relative.Split('/').Any(segment => segment is "bin" or "obj"))
                {
                    problems.Add($"{copy.Instruction}: '{source}' is a build output: the image must build from source");
                }
            }
        }

        Deployment.AssertNone(problems, $"{path}: COPY sources (relative to the build context, the repository root)");
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Restore_sees_the_project_files_and_build_settings_but_no_sources(string path)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        var (stage, restore) = Single(dockerfile, "restore", path);
        var view = View(stage, restore);
        var required = new List<string>(BuildSettings);
        foreach (var settings in BuildSettings.Where(s => s.EndsWith(".props", StringComparison.Ordinal) || s.EndsWith(".targets", StringComparison.Ordinal)))
        {
            required.AddRange(ProjectFiles.Imports(Deployment.Root, settings));
        }

        required.AddRange(ProjectFiles.Closure(Deployment.Root, restore.Project!));
        var problems = required.Distinct().Where(f => !view.Has(f))
            .Select(f => $"{f} is not at {StageFiles.Combine(view.WorkDir, f)} when '{restore}' runs")
            .ToList();
        problems.AddRange(view.Files.Where(f => f.EndsWith(".cs", StringComparison.Ordinal)).Take(5)
            .Select(f => $"{f} is already copied: restore before copying sources, so the restore layer survives code edits"));
        Deployment.AssertNone(problems, $"{path}: the restore step (line {restore.Run.Line})");
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Publish_sees_every_file_of_the_projects_it_builds(string path)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        var (stage, publish) = Single(dockerfile, "publish", path);
        var view = View(stage, publish);
        var required = new List<string>(BuildSettings) { ".editorconfig" };
        foreach (var project in ProjectFiles.Closure(Deployment.Root, publish.Project!))
        {
            required.AddRange(StageFiles.ContextFiles(Deployment.Root, Path.GetDirectoryName(project)!, Deployment.Ignore));
        }

        Deployment.AssertNone(
            required.Distinct().Where(f => !view.Has(f)).Select(f => $"{f} is not at {StageFiles.Combine(view.WorkDir, f)}"),
            $"{path}: files missing when '{publish}' runs (line {publish.Run.Line})");
        Assert.True(publish.Option("-c", "--configuration") == "Release", $"{path}: publish with -c Release ({publish})");
        Assert.True(publish.Option("-o", "--output") is not null, $"{path}: publish with -o so the runtime stage knows where the app is ({publish})");
    }

    [Theory]
    [MemberData(nameof(Dockerfiles))]
    public void Publish_uses_what_restore_restored(string path)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        var (_, restore) = Single(dockerfile, "restore", path);
        var (_, publish) = Single(dockerfile, "publish", path);
        Assert.True(restore.Project == publish.Project, $"{path}: restore ({restore.Project}) and publish ({publish.Project}) name different projects");
        Assert.True(restore.Option("-r", "--runtime") == publish.Option("-r", "--runtime"),
            $"{path}: restore and publish must name the same runtime identifier (-r), else publish --no-restore fails with NETSDK1047");
        var restored = restore.Properties();
        var published = publish.Properties();
        Assert.True(restored.GetValueOrDefault("TorchBackend") == published.GetValueOrDefault("TorchBackend"),
            $"{path}: restore and publish must pass the same TorchBackend ('{restored.GetValueOrDefault("TorchBackend")}' vs '{published.GetValueOrDefault("TorchBackend")}')");
    }

    [Theory]
    [InlineData("docker/Dockerfile.gateway", "src/Gateway/Serve.Gateway.csproj", new[] { 8080, 8081, 8082, 7070, 7071, 4053 })]
    [InlineData("docker/Dockerfile.worker", "src/Node/Serve.Node.csproj", new[] { 4053 })]
    public void Runtime_stage_runs_the_published_app_as_a_non_root_user(string path, string project, int[] ports)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        var runtime = dockerfile.FinalStage;
        var (_, publish) = Single(dockerfile, "publish", path);
        Assert.True(publish.Project == project, $"{path} should publish {project}, not {publish.Project}");

        var copies = runtime.Instructions.Where(i => i.Keyword == "COPY").Select(Dockerfile.ParseCopy).ToList();
        var buildStages = dockerfile.Stages.SkipLast(1).Select(s => s.Name).OfType<string>().ToList();
        Assert.True(copies.Any(c => c.From is not null && buildStages.Contains(c.From)),
            $"{path}: the runtime stage should COPY --from=<build stage> the published app (stages: {string.Join(", ", buildStages)})");
        Assert.True(copies.All(c => c.From is not null), $"{path}: the runtime stage copies from the build context; take only the published app");

        var user = runtime.Instructions.LastOrDefault(i => i.Keyword == "USER")?.Arguments;
        Assert.True(user is not null && user is not ("root" or "0" or "0:0"),
            $"{path}: the runtime stage runs as {user ?? "root"}; add USER app (uid 1654 in the aspnet images)");

        var entrypoint = runtime.Instructions.LastOrDefault(i => i.Keyword == "ENTRYPOINT");
        var dll = ProjectFiles.AssemblyName(Deployment.Root, project) + ".dll";
        var words = entrypoint is null ? null : Dockerfile.ExecForm(entrypoint.Arguments);
        Assert.True(words is ["dotnet", var d] && d == dll,
            $"{path}: ENTRYPOINT should be [\"dotnet\", \"{dll}\"] in exec form (so signals reach the process), not '{entrypoint?.Arguments}'");

        var exposed = runtime.Instructions.Where(i => i.Keyword == "EXPOSE")
            .SelectMany(i => Dockerfile.Words(i.Arguments)).Select(p => p.Split('/')[0]).ToHashSet(StringComparer.Ordinal);
        Deployment.AssertNone(
            ports.Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)).Where(p => !exposed.Contains(p)).Select(p => $"EXPOSE {p} is missing"),
            $"{path}: exposed ports");
        Assert.True(runtime.Instructions.Any(i => i.Keyword == "HEALTHCHECK"), $"{path}: the image should carry a HEALTHCHECK for plain docker run");
    }

    [Theory]
    [InlineData("docker/Dockerfile.worker", "src/Gateway", "TorchSharp")]
    [InlineData("docker/Dockerfile.gateway", "src/Node", "Grpc.AspNetCore")]
    public void Each_image_carries_only_its_own_process(string path, string otherProcess, string ownPackage)
    {
        var dockerfile = Dockerfile.Load(Path.Combine(Deployment.Root, path));
        var (_, publish) = Single(dockerfile, "publish", path);
        var closure = ProjectFiles.Closure(Deployment.Root, publish.Project!);
        var problems = new List<string>();
        problems.AddRange(closure.Where(p => p.StartsWith(otherProcess + "/", StringComparison.Ordinal))
            .Select(p => $"{publish.Project} builds {p}: the other process's code must not be in this image"));
        problems.AddRange(dockerfile.Copies().Where(c => c.From is null).SelectMany(c => c.Sources)
            .Where(s => s.Trim('/') == "src" || s.Trim('/').StartsWith(otherProcess, StringComparison.Ordinal))
            .Select(s => $"COPY {s}: copies {otherProcess}'s sources into this image"));
        var packages = closure.SelectMany(p => ProjectFiles.PackageReferences(Deployment.Root, p)).ToHashSet(StringComparer.Ordinal);
        if (!packages.Contains(ownPackage))
        {
            problems.Add($"{publish.Project}'s projects reference no {ownPackage}: the check looks at the wrong projects");
        }

        string[] foreign = path.EndsWith("worker", StringComparison.Ordinal) ? ["Grpc.AspNetCore", "Npgsql", "Microsoft.Data.Sqlite"] : ["TorchSharp", "libtorch-cpu-linux-x64"];
        problems.AddRange(foreign.Where(packages.Contains).Select(p => $"{publish.Project}'s projects reference {p}, which belongs to the other process"));
        Deployment.AssertNone(problems, $"{path}: what the image carries");
    }

    [Fact]
    public void Dockerignore_leaves_out_build_outputs_git_and_tests_but_keeps_what_the_images_copy()
    {
        var ignore = Deployment.Ignore;
        string[] leftOut =
        [
            "src/Node/bin/Release/net10.0/Serve.Node.dll", "src/Gateway/obj/project.assets.json", "src/Actors/bin",
            ".git/HEAD", "tests/Serve.Actors.Tests/Serve.Actors.Tests.csproj", "bench/Serve.Bench/Program.cs",
            "TestResults/results.trx", "tests/Serve.Gateway.Tests/TestResults/x.trx",
        ];
        string[] kept =
        [
            .. BuildSettings, ".editorconfig", "build/LibTorchSharpGlibcxx.targets", "src/Node/Program.cs",
            "src/Node/Serve.Node.csproj", "src/Gateway/Program.cs", "src/Actors/Serve.Actors.csproj",
            "docker/Dockerfile.gateway", "docker/Dockerfile.worker",
        ];
        var problems = leftOut.Where(p => !ignore.IsExcluded(p)).Select(p => $"{p} is sent to the build (add a rule)")
            .Concat(kept.Where(ignore.IsExcluded).Select(p => $"{p} is left out by rule '{ignore.RuleFor(p)}', but the images need it"));
        Deployment.AssertNone(problems, $".dockerignore (rules: {string.Join(", ", ignore.Patterns)})");
    }

    private static (DockerStage Stage, DotnetCommand Command) Single(Dockerfile dockerfile, string verb, string path)
    {
        var found = dockerfile.Stages.SelectMany(s => DotnetCommand.In(s).Where(c => c.Verb == verb).Select(c => (s, c))).ToList();
        Assert.True(found.Count == 1, $"{path} should run 'dotnet {verb}' once, not {found.Count} times");
        var (stage, command) = found[0];
        Assert.True(command.Project is not null, $"{path}: 'dotnet {verb}' should name its .csproj ({command})");
        return (stage, command);
    }

    private static RunView View(DockerStage stage, DotnetCommand command) =>
        StageFiles.BeforeEachRun(stage, Deployment.Root, Deployment.Ignore).Single(v => v.Run == command.Run);
}
