using Microsoft.Extensions.Configuration.Memory;

namespace Serve.Gateway.Hosting;

/// <summary>
/// Settings every Serve process starts from, below appsettings.json, environment variables and the
/// command line (which all override them). Kept in code rather than in an appsettings.json per project,
/// since the standalone server includes the gateway and two such files would collide when publishing.
/// </summary>
public static class ServeDefaults
{
    private static readonly Dictionary<string, string?> Defaults = new(StringComparer.Ordinal)
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
    };

    public static IConfigurationManager AddServeDefaults(this IConfigurationManager configuration)
    {
        configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = Defaults });
        return configuration;
    }
}
