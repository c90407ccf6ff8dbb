using Akka.Hosting;
using Akka.Persistence.Hosting;
using Akka.Persistence.Sql.Hosting;

namespace Serve.Gateway.Hosting;

/// <summary>Where the registry keeps its desired state. Section <c>Serve:Registry</c>.</summary>
public sealed class RegistryOptions
{
    public const string Section = "Serve:Registry";

    /// <summary>
    /// <c>sqlite</c> (default: a file in the data directory, nothing to install), <c>postgresql</c> (with
    /// <see cref="ConnectionString"/>, for clusters with several gateways) or <c>memory</c> (nothing kept:
    /// every start begins empty). Env: Serve__Registry__Journal.
    /// </summary>
    public string Journal { get; set; } = "sqlite";

    /// <summary>PostgreSQL connection string (Npgsql form). Env: Serve__Registry__ConnectionString.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>How long a management call waits for the registry's answer (a slow journal, a registry moving). Env: Serve__Registry__AskTimeout.</summary>
    public TimeSpan AskTimeout { get; set; } = TimeSpan.FromSeconds(15);

    public IReadOnlyList<string> Validate() =>
    [
        .. Journal switch
        {
            "sqlite" or "memory" => Array.Empty<string>(),
            "postgresql" when !string.IsNullOrWhiteSpace(ConnectionString) => [],
            "postgresql" => ["Serve:Registry:Journal=postgresql needs Serve:Registry:ConnectionString"],
            _ => [$"Serve:Registry:Journal must be sqlite, postgresql or memory, not '{Journal}'"],
        },
        .. AskTimeout > TimeSpan.Zero ? Array.Empty<string>() : [$"Serve:Registry:AskTimeout must be positive, not {AskTimeout}"],
    ];
}

public static class RegistryJournal
{
    public const string SqliteFile = "registry.db";

    /// <summary>The journal and snapshot store for the registry singleton (only gateways run it).</summary>
    public static AkkaConfigurationBuilder WithRegistryJournal(this AkkaConfigurationBuilder akka, RegistryOptions options, string dataDirectory)
    {
        switch (options.Journal)
        {
            case "memory":
                return akka.WithInMemoryJournal().WithInMemorySnapshotStore();
            case "postgresql":
                return akka.WithSqlPersistence(connectionString: options.ConnectionString!, providerName: "PostgreSQL.15", autoInitialize: true);
            default:
                Directory.CreateDirectory(dataDirectory);
                var file = Path.GetFullPath(Path.Combine(dataDirectory, SqliteFile));
                return akka.WithSqlPersistence(connectionString: $"Data Source={file}", providerName: "SQLite.MS", autoInitialize: true);
        }
    }
}
