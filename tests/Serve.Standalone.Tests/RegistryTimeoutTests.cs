using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Serve.Standalone.Tests;

/// <summary>
/// A registration the registry is slow to answer (its SQLite journal locked by another process for a while)
/// is not taken for a refusal: the gateway finds out what the registry did before it answers, and keeps
/// the files of a model that was registered after all.
/// </summary>
public sealed class RegistryTimeoutTests(RegistryTimeoutTests.Factory serve) : IClassFixture<RegistryTimeoutTests.Factory>
{
    public sealed class Factory : ServeFactory
    {
        public CapturedLogs Logs { get; } = new();

        protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
        [
            new("Serve:LoadModels", "linrelu=linrelu.pt"),
            new("Serve:EnableModelApi", "true"),
            new("Serve:Registry:AskTimeout", "00:00:01"),
        ];

        protected override void PrepareModelStore(string store) =>
            ArchiveRegistrationTests.Factory.WriteArchive(store, "slow.mar", "slow", "tensor", null);

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureServices(services => services.AddSingleton<ILoggerProvider>(Logs));
        }
    }

    [Fact]
    public async Task A_registration_applied_after_the_ask_timed_out_is_answered_as_registered_and_keeps_its_files()
    {
        var token = TestContext.Current.CancellationToken;
        await serve.WaitReadyAsync("linrelu");
        using var management = serve.Management();

        Task<HttpResponseMessage> registering;
        await using (var journal = new SqliteConnection($"Data Source={Path.Combine(serve.ModelStore, "data", "registry.db")}"))
        {
            await journal.OpenAsync(token);
            await using (var lockIt = journal.CreateCommand())
            {
                // Another writer holds the database: the registry's write waits (SQLite's busy timeout) and with
                // it every command behind it, longer than the gateway's 1 s ask.
                lockIt.CommandText = "BEGIN EXCLUSIVE";
                await lockIt.ExecuteNonQueryAsync(token);
            }

            registering = management.PostAsync("/models?url=slow.mar&initial_workers=0", null, token);
            await Waiting.UntilAsync(() => serve.Logs.Contains("did not answer the registration of slow/1.0"),
                TimeSpan.FromSeconds(30), "the registration's ask to time out");

            await using var release = journal.CreateCommand();
            release.CommandText = "ROLLBACK";
            await release.ExecuteNonQueryAsync(token);
        }

        using var response = await registering;
        var body = await Json.ReadAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
        Assert.Equal("Model \"slow\" Version: 1.0 registered with 0 initial workers. Use scale workers API to add workers for the model.",
            body.GetProperty("status").GetString());
        Assert.Single(ArchiveRegistrationTests.Unpacked(serve.ModelStore), d => d.StartsWith("slow-", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/models/slow", token)).StatusCode);
    }
}

/// <summary>Every log message of a server, for tests that wait on what it said.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _messages = new();

    public bool Contains(string text) => _messages.Any(m => m.Contains(text, StringComparison.Ordinal));

    public ILogger CreateLogger(string categoryName) => new Logger(_messages);

    public void Dispose()
    {
    }

    private sealed class Logger(ConcurrentQueue<string> messages) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                messages.Enqueue(formatter(state, exception));
            }
        }
    }
}
