using Microsoft.Extensions.Configuration.Memory;

namespace Serve.Actors.Configuration;

/// <summary>
/// Settings every Serve process starts from, below appsettings.json, config.properties, environment
/// variables and the command line (which all override them). Kept in code rather than in an
/// appsettings.json per project, since the standalone server includes the gateway and the worker and such
/// files would collide when publishing.
/// </summary>
public static class BuiltInSettings
{
    private static readonly Dictionary<string, string?> Settings = new(StringComparer.Ordinal)
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
    };

    public static MemoryConfigurationSource Source() => new() { InitialData = Settings };
}
