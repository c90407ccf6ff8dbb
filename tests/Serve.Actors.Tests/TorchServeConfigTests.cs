using Serve.Actors.Configuration;

namespace Serve.Actors.Tests;

public sealed class TorchServeConfigTests
{
    private static readonly Func<string, string?> NoEnvironment = _ => null;

    [Fact]
    public void Properties_are_read_as_java_reads_them()
    {
        var properties = TorchServeConfig.ParseProperties("""
            # comment
            ! another comment
              inference_address=http://127.0.0.1:8080
            management_address : http://127.0.0.1:8081
            metrics_address http://127.0.0.1:8082
            load_models=a=a.pt,\
                        b=b.pt
            allowed_urls=https://example\\.com/.*
            key\ with\ spaces=x
            unicode=caf\u00e9
            empty=
            trailing_backslashes=c:\\\\
            """);

        Assert.Equal("http://127.0.0.1:8080", properties["inference_address"]);
        Assert.Equal("http://127.0.0.1:8081", properties["management_address"]);
        Assert.Equal("http://127.0.0.1:8082", properties["metrics_address"]);
        Assert.Equal("a=a.pt,b=b.pt", properties["load_models"]);
        Assert.Equal(@"https://example\.com/.*", properties["allowed_urls"]);
        Assert.Equal("x", properties["key with spaces"]);
        Assert.Equal("café", properties["unicode"]);
        Assert.Equal(string.Empty, properties["empty"]);
        Assert.Equal(@"c:\\", properties["trailing_backslashes"]);
        Assert.Equal(9, properties.Count);
    }

    [Fact]
    public void Keys_that_mean_something_to_serve_become_its_settings_and_the_rest_are_listed()
    {
        var result = TorchServeConfig.Translate("config.properties", new Dictionary<string, string>
        {
            ["inference_address"] = "http://127.0.0.1:9080",
            ["model_store"] = "/models",
            ["load_models"] = "all",
            ["enable_model_api"] = "true",
            ["max_request_size"] = "1000000",
            ["allowed_urls"] = @"https://models\.example\.com/.*, file://.*",
            ["number_of_netty_threads"] = "32",
            ["grpc_inference_port"] = "9070",
            ["grpc_inference_max_connection_age_ms"] = "60000",
            ["mystery"] = "1",
        }, NoEnvironment);

        Assert.Empty(result.Problems);
        Assert.Equal("http://127.0.0.1:9080", result.Settings["Serve:InferenceAddress"]);
        Assert.Equal("/models", result.Settings["Serve:ModelStore"]);
        Assert.Equal("all", result.Settings["Serve:LoadModels"]);
        Assert.Equal("true", result.Settings["Serve:EnableModelApi"]);
        Assert.Equal("1000000", result.Settings["Serve:MaxRequestSize"]);
        Assert.Equal(@"https://models\.example\.com/.*", result.Settings["Serve:AllowedUrls:0"]);
        Assert.Equal("file://.*", result.Settings["Serve:AllowedUrls:1"]);
        Assert.Contains("number_of_netty_threads (does not apply to Serve)", result.NotApplied);
        Assert.Equal("http://127.0.0.1:9070", result.Settings["Serve:GrpcInferenceAddress"]);
        Assert.False(result.Settings.ContainsKey("Serve:GrpcManagementAddress"));
        Assert.Contains("grpc_inference_port", result.Applied);
        Assert.Contains("grpc_inference_max_connection_age_ms (Serve does not limit the age of gRPC connections)", result.NotApplied);
        Assert.Equal(["mystery"], result.Unknown);
    }

    [Theory]
    [InlineData("0.0.0.0", null, "http://0.0.0.0:7071")]
    [InlineData(null, "9071", "http://127.0.0.1:9071")]
    [InlineData("::1", "9071", "http://[::1]:9071")]
    [InlineData("http://127.0.0.1:9999", "1", "http://127.0.0.1:9999")]
    public void A_grpc_listener_is_its_host_and_port_together(string? host, string? port, string expected)
    {
        var properties = new Dictionary<string, string>();
        if (host is not null)
        {
            properties["grpc_management_address"] = host;
        }

        if (port is not null)
        {
            properties["grpc_management_port"] = port;
        }

        var result = TorchServeConfig.Translate("config.properties", properties, NoEnvironment);
        Assert.Empty(result.Problems);
        Assert.Equal(expected, result.Settings["Serve:GrpcManagementAddress"]);
    }

    [Fact]
    public void A_grpc_port_that_is_not_a_number_is_a_problem() =>
        Assert.Contains("grpc_inference_port must be a port number, not 'seventy'",
            TorchServeConfig.Translate("config.properties", new Dictionary<string, string> { ["grpc_inference_port"] = "seventy" }, NoEnvironment).Problems);

    [Fact]
    public void Environment_references_are_substituted_and_a_missing_one_is_a_problem()
    {
        var environment = new Dictionary<string, string> { ["STORE"] = "/srv/models" };
        var result = TorchServeConfig.Translate("config.properties", new Dictionary<string, string>
        {
            ["model_store"] = "$$STORE$$",
            ["load_models"] = "$$MODELS$$",
        }, environment.GetValueOrDefault);

        Assert.Equal("/srv/models", result.Settings["Serve:ModelStore"]);
        Assert.Equal(["load_models: environment variable MODELS (referenced as $$MODELS$$) is not set"], result.Problems);
    }

    [Fact]
    public void Ts_environment_variables_override_the_file_only_when_enabled()
    {
        var environment = new Dictionary<string, string>
        {
            ["TS_JOB_QUEUE_SIZE"] = "500",
            ["TS_ALLOWED_URLS"] = "https://.*",
        };
        var file = new Dictionary<string, string> { ["job_queue_size"] = "100", ["allowed_urls"] = "file://.*" };

        var off = TorchServeConfig.Translate("c", file, environment.GetValueOrDefault);
        Assert.Equal("100", off.Settings["Serve:JobQueueSize"]);

        var on = TorchServeConfig.Translate("c", new Dictionary<string, string>(file) { ["enable_envvars_config"] = "true" },
            environment.GetValueOrDefault);
        Assert.Equal("500", on.Settings["Serve:JobQueueSize"]);
        Assert.Equal("file://.*", on.Settings["Serve:AllowedUrls:0"]);

        var urlsToo = TorchServeConfig.Translate("c",
            new Dictionary<string, string>(file) { ["enable_envvars_config"] = "true", ["use_env_allowed_urls"] = "true" },
            environment.GetValueOrDefault);
        Assert.Equal("https://.*", urlsToo.Settings["Serve:AllowedUrls:0"]);
    }

    [Fact]
    public void Tls_keys_become_serves_and_enable_grpc_ssl_secures_the_grpc_listeners()
    {
        var result = TorchServeConfig.Translate("c", new Dictionary<string, string>
        {
            ["inference_address"] = "https://127.0.0.1:8443",
            ["keystore"] = "keystore.p12",
            ["keystore_pass"] = "changeit",
            ["keystore_type"] = "PKCS12",
            ["enable_grpc_ssl"] = "true",
            ["grpc_inference_port"] = "7443",
        }, NoEnvironment);
        Assert.Empty(result.Problems);
        Assert.Equal("keystore.p12", result.Settings["Serve:Tls:Keystore"]);
        Assert.Equal("changeit", result.Settings["Serve:Tls:KeystorePassword"]);
        Assert.Equal("https://127.0.0.1:7443", result.Settings["Serve:GrpcInferenceAddress"]);
        Assert.Equal("https://127.0.0.1:7071", result.Settings["Serve:GrpcManagementAddress"]);

        var jks = TorchServeConfig.Translate("c", new Dictionary<string, string> { ["keystore_type"] = "JKS" }, NoEnvironment);
        Assert.StartsWith("keystore_type JKS is not supported", Assert.Single(jks.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void The_file_is_found_as_torchserve_finds_it()
    {
        var environment = new Dictionary<string, string> { ["TS_CONFIG_FILE"] = "/etc/ts/config.properties" };
        Assert.Equal("/etc/ts/config.properties", TorchServeConfig.Locate("/other/config.properties", environment.GetValueOrDefault));
        Assert.Equal("/other/config.properties", TorchServeConfig.Locate("/other/config.properties", NoEnvironment));
    }
}
