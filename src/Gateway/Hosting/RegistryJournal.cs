using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting;
using Akka.Persistence;
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

    /// <summary>
    /// The journal and snapshot store for the registry singleton (only gateways run it), read once at start
    /// on every gateway (<see cref="JournalWarmup"/>).
    /// </summary>
    public static AkkaConfigurationBuilder WithRegistryJournal(this AkkaConfigurationBuilder akka, RegistryOptions options, string dataDirectory)
    {
        switch (options.Journal)
        {
            case "memory":
                return akka.WithInMemoryJournal().WithInMemorySnapshotStore();
            case "postgresql":
                return akka.WithSqlPersistence(connectionString: options.ConnectionString!, providerName: "PostgreSQL.15", autoInitialize: true)
                    .WithActors((system, _) => system.ActorOf(JournalWarmup.Props(), "journal-warmup"));
            default:
                Directory.CreateDirectory(dataDirectory);
                var file = Path.GetFullPath(Path.Combine(dataDirectory, SqliteFile));
                return akka.WithSqlPersistence(connectionString: $"Data Source={file}", providerName: "SQLite.MS", autoInitialize: true)
                    .WithActors((system, _) => system.ActorOf(JournalWarmup.Props(), "journal-warmup"));
        }
    }
}

/// <summary>
/// Recovers an empty persistence id and stops: it opens the journal's connection, creates its tables and
/// compiles its queries while nothing waits. Without it a standby gateway pays that (1.5 s measured here)
/// when the registry singleton moves to it, with every management call waiting. It writes nothing.
/// </summary>
public sealed class JournalWarmup : ReceivePersistentActor
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public JournalWarmup()
    {
        Recover<RecoveryCompleted>(_ =>
        {
            Context.GetLogger().Debug("Registry journal read in {0} ms at start", _clock.ElapsedMilliseconds);
            Context.Stop(Self);
        });
        Recover<object>(_ => { });
    }

    public override string PersistenceId => "serve-journal-warmup";

    public static Props Props() => Akka.Actor.Props.Create(() => new JournalWarmup());
}
