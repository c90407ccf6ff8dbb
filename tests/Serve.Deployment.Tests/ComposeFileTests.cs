using System.Net;
using YamlDotNet.Core;

namespace Serve.Deployment.Tests;

/// <summary>docker-compose.yml: its shape, and that Serve's HTTP listeners reach the host on loopback only.</summary>
public sealed class ComposeFileTests
{
    /// <summary>The gateway's listeners: configuration key and default port (GatewayOptions).</summary>
    public static readonly (string Key, int Port)[] Listeners =
    [
        ("Serve__InferenceAddress", 8080),
        ("Serve__ManagementAddress", 8081),
        ("Serve__MetricsAddress", 8082),
        ("Serve__GrpcInferenceAddress", 7070),
        ("Serve__GrpcManagementAddress", 7071),
    ];

    public static readonly string[] ExpectedServices =
        [Deployment.GatewayService, .. Deployment.CpuWorkerServices, Deployment.GpuWorkerService];

    [Fact]
    public void Compose_file_parses_has_no_version_key_and_declares_the_gateway_and_worker_services()
    {
        Assert.True(File.Exists(Deployment.ComposePath), $"{Deployment.ComposePath} does not exist");
        ComposeFile compose;
        try
        {
            compose = ComposeFile.Load(Deployment.ComposePath);
        }
        catch (YamlException error)
        {
            Assert.Fail($"{Deployment.ComposeFileName} is not valid YAML (line {error.Start.Line}, column {error.Start.Column}): {error.Message}");
            throw;
        }

        Assert.False(compose.Root.ContainsKey("version"),
            $"{Deployment.ComposeFileName} has a top-level 'version' key: it is obsolete and Compose warns about it; remove it");
        Assert.True(compose.Services.Count > 0, $"{Deployment.ComposeFileName} has no services");
        Deployment.AssertNone(
            ExpectedServices.Where(s => !compose.Services.ContainsKey(s)).Select(s => $"service '{s}' is missing"),
            $"{Deployment.ComposeFileName} must declare {string.Join(", ", ExpectedServices)} (it declares {string.Join(", ", compose.Services.Keys)})");
        Deployment.AssertNone(
            compose.Root.Keys.Where(k => k is not ("services" or "volumes" or "networks" or "configs" or "secrets" or "name" or "include")
                && !k.StartsWith("x-", StringComparison.Ordinal)).Select(k => $"top-level key '{k}'"),
            "unknown top-level keys (extension fields must start with x-)");
    }

    [Fact]
    public void Published_ports_are_bound_to_loopback_only()
    {
        var problems = new List<string>();
        foreach (var service in Deployment.Compose.Services.Values)
        {
            if (service["network_mode"] is "host")
            {
                problems.Add($"{service}: network_mode: host puts every listener on the host's interfaces");
            }

            foreach (var port in service.Ports)
            {
                if (port.HostIp is null || !IPAddress.TryParse(port.HostIp, out var ip) || !IPAddress.IsLoopback(ip))
                {
                    problems.Add($"{service}: port '{port.Text}' is published on {port.HostIp ?? "every interface"}; write \"127.0.0.1:{port.Published ?? port.Target}:{port.Target}\"");
                }

                if (port.Published is null)
                {
                    problems.Add($"{service}: port '{port.Text}' gets a random host port; name it");
                }
            }
        }

        Deployment.AssertNone(problems, "Serve is secure by default: publish ports on the host's loopback only");
    }

    [Fact]
    public void Gateway_listeners_bind_every_interface_on_the_container_ports_that_are_published()
    {
        var gateway = Deployment.Compose[Deployment.GatewayService];
        var environment = Deployment.EffectiveEnvironment(gateway);
        var published = gateway.Ports.Select(p => p.Target).ToHashSet(StringComparer.Ordinal);
        var problems = new List<string>();
        var listenerPorts = new List<string>();
        foreach (var (key, defaultPort) in Listeners)
        {
            if (!environment.TryGetValue(key, out var address) || address is null)
            {
                problems.Add($"{key} is not set: the default (http://127.0.0.1:{defaultPort}) is unreachable from outside the container");
                continue;
            }

            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
            {
                problems.Add($"{key}={address} is not an absolute URL");
                continue;
            }

            if (uri.Host is not ("0.0.0.0" or "[::]" or "*" or "+"))
            {
                problems.Add($"{key}={address} binds {uri.Host}: inside a container it must bind 0.0.0.0 to be reachable");
            }

            var port = uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            listenerPorts.Add(port);
            if (!published.Contains(port))
            {
                problems.Add($"{key}={address}: container port {port} is not published (published: {string.Join(", ", published)})");
            }
        }

        problems.AddRange(published.Except(listenerPorts).Select(p => $"container port {p} is published but no listener uses it"));
        Deployment.AssertNone(problems, "the gateway's inference, management and metrics listeners and its published ports");
    }

    [Fact]
    public void Only_the_gateway_publishes_ports_and_the_cluster_port_stays_private()
    {
        var problems = new List<string>();
        foreach (var service in Deployment.Compose.Services.Values)
        {
            var clusterPort = Deployment.EffectiveEnvironment(service).GetValueOrDefault("Serve__Cluster__Port") ?? "4053";
            if (service.Name != Deployment.GatewayService && service.Ports.Count > 0)
            {
                problems.Add($"{service} publishes {string.Join(", ", service.Ports.Select(p => p.Text))}: workers have no HTTP listener");
            }

            problems.AddRange(service.Ports.Where(p => p.Target == clusterPort)
                .Select(p => $"{service} publishes its cluster port ({p.Text}): cluster traffic is unauthenticated, keep it on the compose network"));
        }

        Deployment.AssertNone(problems, "published ports");
    }

    [Fact]
    public void Gateway_healthcheck_asks_its_inference_listener_with_a_tool_the_image_has()
    {
        var gateway = Deployment.Compose[Deployment.GatewayService];
        var command = gateway.HealthcheckCommand;
        Assert.True(command.Count > 0, "the gateway has no healthcheck");
        var text = string.Join(' ', command);
        var address = Deployment.EffectiveEnvironment(gateway).GetValueOrDefault("Serve__InferenceAddress") ?? "http://127.0.0.1:8080";
        var port = new Uri(address).Port;
        string[] healthPaths = ["/ping", "/v2/health/live", "/v2/health/ready"];
        Assert.True(healthPaths.Any(p => text.Contains($"127.0.0.1:{port}{p}", StringComparison.Ordinal)),
            $"the gateway's healthcheck ({text}) should ask http://127.0.0.1:{port} (the inference listener) for one of {string.Join(", ", healthPaths)}");
        if (command[0] == "curl")
        {
            var runtime = Deployment.DockerfileOf(gateway).FinalStage;
            Assert.True(runtime.Instructions.Any(i => i.Keyword == "RUN" && i.Arguments.Contains("install", StringComparison.Ordinal)
                    && Dockerfile.Words(i.Arguments).Contains("curl")),
                "the gateway's healthcheck runs curl, but the runtime stage does not install it (the aspnet images carry none)");
        }
    }
}
