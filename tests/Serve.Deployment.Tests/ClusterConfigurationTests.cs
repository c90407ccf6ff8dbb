using System.Globalization;

namespace Serve.Deployment.Tests;

/// <summary>
/// The Serve configuration each service's process sees (image ENV overlaid with the compose environment):
/// known keys only, one cluster seeded by the gateway, equal frame sizes, roles, restarts and health checks.
/// </summary>
public sealed class ClusterConfigurationTests
{
    private const string DefaultSystemName = "serve";
    private const string DefaultClusterPort = "4053";
    private const long DefaultMaximumFrameSizeBytes = 16L * 1024 * 1024;

    [Fact]
    public void Every_environment_variable_is_a_known_Serve_configuration_key()
    {
        var problems = Deployment.Compose.Services.Values
            .SelectMany(s => s.Environment.Keys.Where(k => !ServeConfigurationKeys.IsKnown(k)).Select(k => $"{s}: {k}"));
        Deployment.AssertNone(problems,
            "environment variables that Serve does not read (a typo is silently ignored by .NET configuration); "
            + "if the key is new, add it to ServeConfigurationKeys");
    }

    [Fact]
    public void Every_node_seeds_from_the_gateway_service_on_its_cluster_port()
    {
        var gateway = Deployment.EffectiveEnvironment(Deployment.Compose[Deployment.GatewayService]);
        var systemName = gateway.GetValueOrDefault("Serve__Cluster__SystemName") ?? DefaultSystemName;
        var gatewayPort = gateway.GetValueOrDefault("Serve__Cluster__Port") ?? DefaultClusterPort;
        var expected = $"akka.ssl.tcp://{systemName}@{Deployment.GatewayService}:{gatewayPort}";
        var problems = new List<string>();
        foreach (var service in Deployment.Compose.Services.Values)
        {
            var environment = Deployment.EffectiveEnvironment(service);
            var seeds = environment.Where(p => ServeConfigurationKeys.SeedKey().IsMatch(p.Key)).ToList();
            if (seeds.Count == 0)
            {
                problems.Add($"{service}: no Serve__Cluster__Seeds__0: without seeds a node forms a cluster of its own");
            }

            problems.AddRange(seeds.Where(s => s.Value != expected).Select(s => $"{service}: {s.Key}={s.Value}, expected {expected}"));
            var name = environment.GetValueOrDefault("Serve__Cluster__SystemName") ?? DefaultSystemName;
            if (name != systemName)
            {
                problems.Add($"{service}: Serve__Cluster__SystemName={name}, but the gateway's is {systemName}");
            }
        }

        Deployment.AssertNone(problems, "cluster seeds (every node, the gateway included, joins through the gateway)");
    }

    [Fact]
    public void Every_node_holds_the_gateways_cluster_certificate_from_one_volume_and_none_opts_out_of_tls()
    {
        var gateway = Deployment.Compose[Deployment.GatewayService];
        var keystore = Deployment.EffectiveEnvironment(gateway).GetValueOrDefault("Serve__Cluster__Tls__Keystore");
        var problems = new List<string>();
        if (keystore is null)
        {
            Deployment.AssertNone(["gateway: no Serve__Cluster__Tls__Keystore, so the workers cannot be given its certificate"], "cluster TLS");
            return;
        }

        var folder = keystore[..keystore.LastIndexOf('/')];
        var source = gateway.Volumes.FirstOrDefault(v => v.Target == folder);
        if (source is not { Source: not null, ReadOnly: false })
        {
            problems.Add($"{gateway}: {folder} (where it writes the cluster certificate) is not a writable volume");
        }

        foreach (var service in Deployment.Compose.Services.Values)
        {
            var environment = Deployment.EffectiveEnvironment(service);
            if (environment.GetValueOrDefault("Serve__Cluster__Plaintext") is { } plaintext && plaintext != "false")
            {
                problems.Add($"{service}: Serve__Cluster__Plaintext={plaintext} turns cluster TLS off");
            }

            if (environment.GetValueOrDefault("Serve__Cluster__Tls__Keystore") != keystore)
            {
                problems.Add($"{service}: Serve__Cluster__Tls__Keystore is not the gateway's {keystore}");
            }

            if (service != gateway && !service.Volumes.Any(v => v.Target == folder && v.Source == source?.Source && v.ReadOnly))
            {
                problems.Add($"{service}: does not mount {source?.Source} read-only at {folder}, where the gateway's certificate is");
            }
        }

        Deployment.AssertNone(problems, "cluster TLS (the gateway writes one certificate; every worker reads it)");
    }

    [Fact]
    public void Every_node_binds_every_interface_and_advertises_its_service_name()
    {
        var problems = new List<string>();
        foreach (var service in Deployment.Compose.Services.Values)
        {
            var environment = Deployment.EffectiveEnvironment(service);
            var hostname = environment.GetValueOrDefault("Serve__Cluster__Hostname") ?? "127.0.0.1";
            if (hostname != "0.0.0.0")
            {
                problems.Add($"{service}: Serve__Cluster__Hostname={hostname}: bind 0.0.0.0 so other containers can connect");
            }

            var advertised = environment.GetValueOrDefault("Serve__Cluster__PublicHostname");
            if (advertised != service.Name)
            {
                problems.Add($"{service}: Serve__Cluster__PublicHostname={advertised ?? "(unset)"}: other nodes reach it as '{service.Name}'");
            }

            var port = environment.GetValueOrDefault("Serve__Cluster__Port") ?? DefaultClusterPort;
            if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535)
            {
                problems.Add($"{service}: Serve__Cluster__Port={port}: a fixed port between 1 and 65535");
            }
        }

        Deployment.AssertNone(problems, "cluster addresses");
    }

    [Fact]
    public void Maximum_frame_size_is_equal_on_every_node()
    {
        var sizes = Deployment.Compose.Services.Values.ToDictionary(
            s => s.Name,
            s => Deployment.EffectiveEnvironment(s).GetValueOrDefault("Serve__Cluster__MaximumFrameSizeBytes")
                ?? DefaultMaximumFrameSizeBytes.ToString(CultureInfo.InvariantCulture));
        Assert.True(sizes.Values.Distinct().Count() == 1,
            "Serve__Cluster__MaximumFrameSizeBytes differs between nodes (a receiver with a smaller limit drops the connection): "
            + string.Join(", ", sizes.Select(p => $"{p.Key}={p.Value}")));
    }

    [Fact]
    public void Workers_run_the_worker_image_and_start_after_the_gateway()
    {
        var problems = new List<string>();
        foreach (var worker in Deployment.Workers)
        {
            if (worker.BuildDockerfile != "docker/Dockerfile.worker")
            {
                problems.Add($"{worker}: builds {worker.BuildDockerfile ?? "(nothing)"}, not docker/Dockerfile.worker (Serve.Node, the worker)");
            }

            if (!worker.DependsOn.Contains(Deployment.GatewayService))
            {
                problems.Add($"{worker}: depends_on does not name {Deployment.GatewayService}");
            }
        }

        Deployment.AssertNone(problems, "workers");
    }

    [Fact]
    public void Every_service_restarts_and_has_a_healthcheck_that_fits_its_process()
    {
        var problems = new List<string>();
        foreach (var service in Deployment.Compose.Services.Values)
        {
            if (service.Restart is null or "no")
            {
                problems.Add($"{service}: no restart policy (use restart: unless-stopped)");
            }

            var command = service.HealthcheckCommand;
            if (command.Count == 0)
            {
                problems.Add($"{service}: no healthcheck");
                continue;
            }

            if (service.Name != Deployment.GatewayService)
            {
                // Workers have no HTTP listener: the health check can only be that the cluster port accepts connections.
                var port = Deployment.EffectiveEnvironment(service).GetValueOrDefault("Serve__Cluster__Port") ?? DefaultClusterPort;
                if (!string.Join(' ', command).Contains($"/dev/tcp/127.0.0.1/{port}", StringComparison.Ordinal))
                {
                    problems.Add($"{service}: the healthcheck ({string.Join(' ', command)}) should test the cluster port, e.g. bash -c '</dev/tcp/127.0.0.1/{port}'");
                }

                if (command[0] is "curl" or "wget")
                {
                    problems.Add($"{service}: the worker image has no {command[0]} and no HTTP listener");
                }
            }
        }

        Deployment.AssertNone(problems, "restart policies and health checks");
    }

    [Fact]
    public void Model_store_is_one_directory_at_the_same_path_everywhere_and_read_only_on_workers()
    {
        var problems = new List<string>();
        var stores = Deployment.Compose.Services.Values.ToDictionary(s => s.Name, s => Deployment.EffectiveEnvironment(s).GetValueOrDefault("Serve__ModelStore"));
        if (stores.Values.Distinct().Count() != 1 || stores.Values.First() is null)
        {
            problems.Add("Serve__ModelStore must be set, to the same path, on every service (model paths travel from the gateway to the workers): "
                + string.Join(", ", stores.Select(p => $"{p.Key}={p.Value ?? "(unset)"}")));
        }

        var sources = new HashSet<string?>();
        foreach (var service in Deployment.Compose.Services.Values)
        {
            var store = stores[service.Name];
            var mount = service.Volumes.FirstOrDefault(v => v.Target.TrimEnd('/') == store?.TrimEnd('/'));
            if (mount is null)
            {
                problems.Add($"{service}: nothing is mounted at Serve__ModelStore ({store})");
                continue;
            }

            sources.Add(mount.Source);
            if (service.Name != Deployment.GatewayService && !mount.ReadOnly)
            {
                problems.Add($"{service}: mount the model store read-only ('{mount.Text}:ro')");
            }
        }

        if (sources.Count > 1)
        {
            problems.Add($"the model store comes from different sources: {string.Join(", ", sources)}");
        }

        Deployment.AssertNone(problems, "the model store");
    }
}
