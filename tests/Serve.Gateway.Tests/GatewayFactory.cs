using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Inference;

namespace Serve.Gateway.Tests;

/// <summary>
/// The gateway (its real endpoints, security, error table, its own one-node cluster and an in-memory
/// registry) in memory, with the replicas replaced by <see cref="ScriptedInferenceClient"/>: the edge is
/// tested without libtorch. Its start-up models are registered in the registry as usual (their files are
/// never loaded: no worker joins), so lookups, visibility and the catalog are real.
/// </summary>
public class GatewayFactory : InMemoryServer<Program>
{
    public ScriptedInferenceClient Replicas { get; } = new();

    protected override IEnumerable<KeyValuePair<string, string?>> Settings() =>
    [
        new("Serve:Registry:Journal", "memory"),
        new("Serve:LoadModels", "echo=echo.pt,addsub=addsub.pt"),
        new("Serve:MaxRequestSize", "200000"),
        new("Serve:MaxResponseSize", "100000"),
    ];

    protected override void PrepareModelStore(string store)
    {
        // Only their names matter: no worker loads them.
        File.WriteAllText(Path.Combine(store, "echo.pt"), "not loaded");
        File.WriteAllText(Path.Combine(store, "addsub.pt"), "not loaded");
    }

    protected override void ReplaceServices(IServiceCollection services)
    {
        services.RemoveAll<IInferenceClient>();
        services.AddSingleton<IInferenceClient>(Replicas);
    }

    /// <summary>Waits until the registry's catalog, with the start-up models, has reached the gateway.</summary>
    public async Task WaitForModelsAsync()
    {
        using var management = Management();
        await Waiting.UntilAsync(async () => (await management.GetAsync("/models/addsub", TestContext.Current.CancellationToken)).IsSuccessStatusCode,
            TimeSpan.FromSeconds(30), "the start-up models in the gateway's catalog");
    }
}

/// <summary>
/// Stands in for the replicas behind the gateway (unit tests of the edge only): records every request and
/// answers what <see cref="Answer"/> says, by default the input's tensors back (tensors) or its body (raw).
/// </summary>
public sealed class ScriptedInferenceClient : IInferenceClient
{
    /// <summary>A request as the gateway sent it: <paramref name="Version"/> is the version its lookup resolved.</summary>
    public sealed record Call(string Model, string Version, InferenceInput Input, TenantTag Tenant, DateTimeOffset? Deadline);

    public ConcurrentQueue<Call> Calls { get; } = new();

    /// <summary>The answer to give; set by a test, reset with <see cref="Echo"/>.</summary>
    public Func<Call, CancellationToken, Task<InferenceReply>> Answer { get; set; } = Echo;

    public async Task<InferenceReply> InferAsync(
        CatalogEntry model, InferenceInput input, TenantTag tenant, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        var call = new Call(model.Definition.Name, model.Definition.Version, input, tenant, deadline);
        Calls.Enqueue(call);
        return await Answer(call, cancellationToken);
    }

    public static Task<InferenceReply> Echo(Call call, CancellationToken cancellationToken) =>
        Task.FromResult<InferenceReply>(new InferenceSucceeded(Guid.NewGuid().ToString("N"), call.Input switch
        {
            TensorInput tensors => new TensorOutput(tensors.Tensors),
            RawInput raw => new DocumentOutput("application/json", raw.Parts[0].Data),
            _ => throw new InvalidOperationException($"unexpected input {call.Input.GetType().Name}"),
        }, new InferenceTiming(5, 7, 1, $"{call.Model}/{call.Version}/0", "cpu:0")));

    /// <summary>The last request received, for a test that sent one.</summary>
    public Call Last => Calls.Last();
}
