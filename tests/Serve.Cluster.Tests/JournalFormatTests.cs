using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Serve.Cluster.Tests;

/// <summary>
/// A registry journal written before the versioned journal format (Fixtures/registry-hyperion.db: events
/// and a snapshot stored by Hyperion) comes back whole, and the registry then snapshots in today's format.
/// </summary>
public sealed class JournalFormatTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private static readonly Dictionary<string, string> NoDefaultModel = new() { ["Serve__DefaultModel__Enabled"] = "false" };

    [Fact]
    public async Task A_journal_written_by_hyperion_reads_back_and_is_snapshotted_in_the_versioned_format()
    {
        var data = Directory.CreateTempSubdirectory("serve-journal-").FullName;
        try
        {
            Directory.CreateDirectory(data);
            File.Copy(Path.Combine(Fixtures.RepositoryRoot, "tests", "Serve.Cluster.Tests", "Fixtures", "registry-hyperion.db"),
                Path.Combine(data, "registry.db"));

            await AssertFixtureStateAsync(data);
            Assert.True(VersionedSnapshots(data) > 0, "the registry snapshotted in its versioned format after recovering");

            // From that snapshot, a second start comes back to the same state.
            await AssertFixtureStateAsync(data);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task AssertFixtureStateAsync(string data)
    {
        var token = TestContext.Current.CancellationToken;
        await using var server = StandaloneServer.Start(data, NoDefaultModel);
        JsonElement models = default;
        await Waiting.UntilAsync(async () =>
        {
            using var response = await server.Management.GetAsync("/models", token);
            if (!response.IsSuccessStatusCode)
            {
                return false;
            }

            models = JsonDocument.Parse(await response.Content.ReadAsStringAsync(token)).RootElement.GetProperty("models");
            return models.GetArrayLength() > 0;
        }, Timeout, "the registry to recover its models", () => server.Process.Tail());
        Assert.Equal(["alpha", "beta", "startup"], models.EnumerateArray().Select(m => m.GetProperty("modelName").GetString()));

        var alpha = JsonDocument.Parse(await server.Management.GetStringAsync("/models/alpha/all", token)).RootElement;
        var versions = alpha.EnumerateArray().ToDictionary(v => v.GetProperty("modelVersion").GetString()!);
        Assert.Equal(["1.0", "2.0"], versions.Keys.Order(StringComparer.Ordinal));
        Assert.True(versions["2.0"].GetProperty("isDefault").GetBoolean());
        Assert.Equal(0, versions["1.0"].GetProperty("minWorkers").GetInt32());
        Assert.Equal(7, versions["1.0"].GetProperty("deviceMemoryMb").GetInt32());
        Assert.Equal(["cpu:0"], versions["1.0"].GetProperty("placement").GetProperty("devices").EnumerateArray().Select(d => d.GetString()));

        var beta = JsonDocument.Parse(await server.Management.GetStringAsync("/models/beta", token)).RootElement[0];
        Assert.Equal("team-a", beta.GetProperty("owner").GetString());
        Assert.Equal(["team-a"], beta.GetProperty("sharedWith").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await server.Management.GetAsync("/models/gamma", token)).StatusCode);

        var tenants = JsonDocument.Parse(await server.Management.GetStringAsync("/tenants", token)).RootElement.GetProperty("tenants")
            .EnumerateArray().ToDictionary(t => t.GetProperty("id").GetString()!);
        Assert.False(tenants.ContainsKey("gone"));
        var team = tenants["team-a"];
        Assert.Equal("Team A", team.GetProperty("name").GetString());
        Assert.Equal(2, team.GetProperty("weight").GetInt32());
        Assert.Equal(2, team.GetProperty("keys").GetArrayLength());

        server.Process.Terminate();
        await Waiting.UntilAsync(() => server.Process.HasExited, Timeout, "the server to stop", () => server.Process.Tail());
    }

    /// <summary>RegistryJournalSerializer.Id: the serializer id the versioned format is stored under.</summary>
    private const int VersionedSerializerId = 4711;

    /// <summary>Snapshots in the journal written by the versioned format's serializer.</summary>
    private static long VersionedSnapshots(string data)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(data, "registry.db")};Mode=ReadOnly");
        connection.Open();
        using var query = connection.CreateCommand();
        query.CommandText = "SELECT COUNT(*) FROM snapshot WHERE serializer_id = $id";
        query.Parameters.AddWithValue("$id", VersionedSerializerId);
        return (long)query.ExecuteScalar()!;
    }
}
