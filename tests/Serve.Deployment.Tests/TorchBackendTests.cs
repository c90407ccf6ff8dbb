namespace Serve.Deployment.Tests;

/// <summary>CPU and GPU workers: which libtorch each image carries and how the GPU worker gets its device.</summary>
public sealed class TorchBackendTests
{
    private const string BackendArg = "TORCH_BACKEND";

    [Fact]
    public void Gpu_worker_reserves_an_nvidia_gpu_builds_the_cuda_backend_and_needs_the_gpu_profile()
    {
        var gpu = Deployment.Compose[Deployment.GpuWorkerService];
        Assert.True(gpu.BuildArgs.GetValueOrDefault(BackendArg) == "cuda",
            $"{gpu} should build with {BackendArg}=cuda, not '{gpu.BuildArgs.GetValueOrDefault(BackendArg) ?? "(default)"}'");
        Assert.True(gpu.Profiles.Contains("gpu"),
            $"{gpu} should be under profiles: [\"gpu\"] so that a plain 'docker compose up' does not need a GPU host (profiles: {string.Join(", ", gpu.Profiles)})");

        var devices = ComposeFile.Sequence(
            Lookup(gpu["deploy"], "resources", "reservations", "devices"), $"{gpu}.deploy.resources.reservations.devices") ?? [];
        var nvidia = devices.Select(d => ComposeFile.Mapping(d, $"{gpu}: a device reservation")!)
            .FirstOrDefault(d => ComposeFile.Scalar(d.GetValueOrDefault("driver")) == "nvidia");
        Assert.True(nvidia is not null, $"{gpu} should reserve a device with driver: nvidia under deploy.resources.reservations.devices");
        var capabilities = ComposeFile.Sequence(nvidia!.GetValueOrDefault("capabilities"), $"{gpu}: capabilities")?.Select(ComposeFile.Scalar).ToList() ?? [];
        Assert.True(capabilities.Contains("gpu"), $"{gpu}: the nvidia device reservation needs capabilities: [gpu] (has: {string.Join(", ", capabilities)})");
        var count = ComposeFile.Scalar(nvidia.GetValueOrDefault("count"));
        Assert.True(count is "all" || (int.TryParse(count, out var n) && n > 0) || nvidia.ContainsKey("device_ids"),
            $"{gpu}: the nvidia device reservation needs count (all or a number) or device_ids, not count '{count}'");
    }

    [Fact]
    public void Cpu_workers_build_the_cpu_backend_and_start_without_a_profile()
    {
        var problems = new List<string>();
        foreach (var name in Deployment.CpuWorkerServices)
        {
            var worker = Deployment.Compose[name];
            var backend = worker.BuildArgs.GetValueOrDefault(BackendArg) ?? DefaultBackend(Deployment.DockerfileOf(worker));
            if (backend != "cpu")
            {
                problems.Add($"{worker}: builds {BackendArg}={backend ?? "(no default)"}, expected cpu");
            }

            if (worker.Profiles.Count > 0)
            {
                problems.Add($"{worker}: under profiles {string.Join(", ", worker.Profiles)}; 'docker compose up' would not start it");
            }

            if (worker.Values.ContainsKey("deploy") && Lookup(worker["deploy"], "resources", "reservations", "devices") is not null)
            {
                problems.Add($"{worker}: reserves devices; a CPU worker must start on hosts without a GPU");
            }
        }

        if (Deployment.Compose[Deployment.GatewayService].Profiles.Count > 0)
        {
            problems.Add("the gateway is under a profile; 'docker compose up' would not start it");
        }

        Deployment.AssertNone(problems, "the default (CPU) deployment");
    }

    [Fact]
    public void Worker_dockerfile_declares_TORCH_BACKEND_defaulting_to_cpu_and_passes_it_to_restore_and_publish()
    {
        var dockerfile = Deployment.DockerfileOf(Deployment.Compose[Deployment.GpuWorkerService]);
        Assert.True(DefaultBackend(dockerfile) == "cpu", $"{dockerfile.Name}: declare ARG {BackendArg}=cpu in the stage that builds");
        var problems = new List<string>();
        foreach (var stage in dockerfile.Stages)
        {
            var declaredAt = stage.Instructions.FirstOrDefault(i => i.Keyword == "ARG" && Dockerfile.Words(i.Arguments)[0].Split('=')[0] == BackendArg)?.Line;
            foreach (var command in DotnetCommand.In(stage).Where(c => c.Verb is "restore" or "publish"))
            {
                var value = command.Properties().GetValueOrDefault("TorchBackend");
                if (value is not ("${" + BackendArg + "}" or "$" + BackendArg))
                {
                    problems.Add($"line {command.Run.Line}: dotnet {command.Verb} should pass -p:TorchBackend=${{{BackendArg}}} (it passes '{value ?? "nothing"}')");
                }

                if (declaredAt is null || declaredAt > command.Run.Line)
                {
                    problems.Add($"line {command.Run.Line}: {BackendArg} is not declared (ARG) in this stage before use; an ARG before FROM is not visible inside a stage");
                }
            }
        }

        Deployment.AssertNone(problems, $"{dockerfile.Name}: the {BackendArg} build argument");
    }

    /// <summary>The default of <c>ARG TORCH_BACKEND=...</c> in the stage that builds; null when undeclared or without default.</summary>
    private static string? DefaultBackend(Dockerfile dockerfile) =>
        dockerfile.Stages.SelectMany(s => s.Instructions)
            .Where(i => i.Keyword == "ARG")
            .Select(i => Dockerfile.Words(i.Arguments)[0].Split('=', 2))
            .Where(parts => parts[0] == BackendArg && parts.Length == 2)
            .Select(parts => parts[1])
            .FirstOrDefault();

    private static object? Lookup(object? node, params string[] keys)
    {
        foreach (var key in keys)
        {
            node = ComposeFile.Mapping(node, key)?.GetValueOrDefault(key);
        }

        return node;
    }
}
