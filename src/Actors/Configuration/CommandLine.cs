using Microsoft.Extensions.Configuration;

namespace Serve.Actors.Configuration;

/// <summary>Command-line switches (TorchServe's where they exist) and the configuration keys they set.</summary>
public static class CommandLine
{
    public static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.Ordinal)
    {
        ["--ts-config"] = "Serve:TorchServeConfig",
        ["--model-store"] = "Serve:ModelStore",
        ["--data-dir"] = "Serve:DataDirectory",
        ["--models"] = "Serve:LoadModels",
        ["--inference-address"] = "Serve:InferenceAddress",
        ["--management-address"] = "Serve:ManagementAddress",
        ["--metrics-address"] = "Serve:MetricsAddress",
        ["--grpc-inference-address"] = "Serve:GrpcInferenceAddress",
        ["--grpc-management-address"] = "Serve:GrpcManagementAddress",
        ["--cluster-host"] = "Serve:Cluster:Hostname",
        ["--cluster-port"] = "Serve:Cluster:Port",
        ["--seed"] = "Serve:Cluster:Seeds:0",
        ["--cpu-slots"] = "Serve:Node:CpuSlots",
        ["--default-model-weights"] = "Serve:DefaultModel:Weights",
        ["--default-model-labels"] = "Serve:DefaultModel:Labels",
    };

    /// <summary>TorchServe's switches that take no value, and the setting each turns on.</summary>
    public static readonly Dictionary<string, string> FlagMappings = new(StringComparer.Ordinal)
    {
        ["--disable-token-auth"] = "Serve:Security:DisableTokenAuthorization",
        ["--dt"] = "Serve:Security:DisableTokenAuthorization",
        ["--enable-model-api"] = "Serve:EnableModelApi",
        ["--cluster-plaintext"] = "Serve:Cluster:Plaintext",
    };

    /// <summary>
    /// TorchServe's valueless switches that mean nothing here, accepted so its command lines work: Serve always
    /// runs in the foreground and keeps no config snapshots (its registry persists instead).
    /// </summary>
    public static readonly HashSet<string> IgnoredFlags = new(StringComparer.Ordinal) { "--start", "--foreground", "--ncs", "--no-config-snapshots" };

    /// <summary>Adds the switches above on top of the host's configuration.</summary>
    public static IConfigurationBuilder AddServeCommandLine(this IConfigurationBuilder configuration, string[] args) =>
        configuration.AddCommandLine(ExpandFlags(args), SwitchMappings);

    /// <summary>
    /// Turns each valueless flag into <c>--key=true</c> and drops the ignored ones: ASP.NET's command-line
    /// reader would otherwise take the next argument as the flag's value.
    /// </summary>
    public static string[] ExpandFlags(string[] args) =>
        [.. args.Where(arg => !IgnoredFlags.Contains(arg)).Select(arg => FlagMappings.TryGetValue(arg, out var key) ? $"--{key}=true" : arg)];
}
