using System.Collections.Concurrent;
using System.Threading.Channels;
using Serve.Actors.Models;
using Serve.Actors.Protocol;

namespace Serve.Actors.Tests;

/// <summary>
/// A test double for the libtorch seam (unit tests only): each load and each batch waits until the test
/// completes it, so tests decide exactly when the device finishes.
/// </summary>
public sealed class ControlledBackend : IInferenceBackend
{
    public Channel<PendingLoad> Loads { get; } = Channel.CreateUnbounded<PendingLoad>();

    public Task<ILoadedModel> LoadAsync(ReplicaId replica, ModelDefinition definition, string? device, CancellationToken cancellationToken)
    {
        var load = new PendingLoad(replica, definition);
        Loads.Writer.TryWrite(load);
        return load.Completion.Task;
    }

    public async Task<PendingLoad> NextLoadAsync() =>
        await Loads.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    /// <summary>Completes the next load with a model that the test drives.</summary>
    public async Task<ControlledModel> LoadNextAsync()
    {
        var load = await NextLoadAsync();
        var model = new ControlledModel();
        load.Completion.SetResult(model);
        return model;
    }
}

public sealed record PendingLoad(ReplicaId Replica, ModelDefinition Definition)
{
    public TaskCompletionSource<ILoadedModel> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

public sealed class ControlledModel : ILoadedModel
{
    public Channel<PendingBatch> Batches { get; } = Channel.CreateUnbounded<PendingBatch>();

    public ConcurrentBag<bool> Disposed { get; } = [];

    public string Device => "test:0";

    public ModelSignature Signature { get; } = new("test", [], []);

    /// <summary>Every input the replica asked to be prepared (decoded), in order.</summary>
    public ConcurrentQueue<InferenceInput> Prepared { get; } = new();

    public IPreparedInput Prepare(InferenceInput input)
    {
        Prepared.Enqueue(input);
        return new PreparedAsIs(input);
    }

    public Task<BatchResult> InferAsync(IReadOnlyList<IPreparedInput> batch, CancellationToken cancellationToken)
    {
        var pending = new PendingBatch([.. batch.Select(p => ((PreparedAsIs)p).Input)]);
        Batches.Writer.TryWrite(pending);
        return pending.Completion.Task;
    }

    public async Task<PendingBatch> NextBatchAsync() =>
        await Batches.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    public ValueTask DisposeAsync()
    {
        Disposed.Add(true);
        return ValueTask.CompletedTask;
    }
}

public sealed record PreparedAsIs(InferenceInput Input) : IPreparedInput;

public sealed record PendingBatch(IReadOnlyList<InferenceInput> Inputs)
{
    public TaskCompletionSource<BatchResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Answers every request with a document echoing its first input byte.</summary>
    public void Succeed() => Completion.SetResult(new BatchResult(
        [.. Inputs.Select(i => (InferenceOutcome)new InferenceOutcome.Success(
            new DocumentOutput("text/plain", ((RawInput)i).Parts[0].Data)))],
        TimeSpan.FromMilliseconds(1)));
}
