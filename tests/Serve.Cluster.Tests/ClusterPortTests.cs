using Akka.Actor;
using Akka.Configuration;

namespace Serve.Cluster.Tests;

/// <summary>What a process that reaches a node's cluster port can and cannot make it do.</summary>
public sealed class ClusterPortTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_message_written_with_akkas_json_serializer_is_refused_unread_by_a_gateway_process()
    {
        var token = TestContext.Current.CancellationToken;
        await using var cluster = LocalCluster.Start(workers: 0, "tiny=tiny.pt", store => TestModels.WriteLinRelu(Path.Combine(store, "tiny.pt")));
        using var inference = cluster.InferenceClient(TimeSpan.FromSeconds(10));
        await Waiting.UntilAsync(async () => (await inference.GetAsync("/ping", token)).IsSuccessStatusCode,
            Timeout, "the gateway to answer /ping", () => cluster.Gateway.Tail());

        // A rogue node with Akka's defaults: anything not otherwise bound goes out through the JSON serializer,
        // which names the .NET type for the receiver to instantiate.
        using var rogue = ActorSystem.Create("rogue", ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
            """));
        var target = rogue.ActorSelection($"akka.tcp://serve@127.0.0.1:{cluster.ClusterPort}/user/anything");
        await Waiting.UntilAsync(() =>
        {
            target.Tell(new Uri("file:///etc/passwd")); // again on each check: the first may precede the association
            return cluster.Gateway.Logged("Refused a message written with Akka's JSON serializer");
        }, Timeout, "the gateway to log that it refused the rogue's JSON frame", () => cluster.Gateway.Tail());

        await rogue.Terminate();
        Assert.False(cluster.Gateway.HasExited, cluster.Gateway.Tail());
        Assert.True((await inference.GetAsync("/ping", token)).IsSuccessStatusCode);
    }
}
