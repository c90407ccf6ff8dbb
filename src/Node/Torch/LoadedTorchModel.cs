using System.Diagnostics;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Node.Handlers;

namespace Serve.Node.Torch;

/// <summary>
/// A replica's model on its device. Requests are decoded on the thread pool when the replica asks
/// (<see cref="Prepare"/>: inline when that is cheaper than a hop), at most as many at once on this node
/// as <see cref="DecodeSlots"/> allows; only tensor work runs on the device's executor thread, which
/// serialises the forward passes of every replica there; rendering runs on the thread pool again.
/// </summary>
public sealed class LoadedTorchModel(TorchModule module, IModelHandler handler, DeviceLease lease, bool batchAlongFirstDim, DecodeSlots decodes)
    : ILoadedModel
{
    private readonly string[] _outputNames = [.. module.Signature.Outputs.Select(o => o.Name)];
    private readonly ModelSteps _steps = new(handler.ToModelInputs, handler.Postprocess);
    private int _disposed;

    public string Device => lease.Device.Name;

    public long MemoryBytes => module.MemoryBytes;

    public ModelSignature Signature => handler.Signature;

    public IPreparedInput Prepare(InferenceInput input) =>
        new Prepared(this, input, handler.PreparesInline(input) ? Task.FromResult(Decode(input)) : decodes.RunAsync(() => Decode(input)));

    public async Task<BatchResult> InferAsync(IReadOnlyList<IPreparedInput> batch, CancellationToken cancellationToken)
    {
        // Requests prepared by an earlier load of this replica (before a reload) are decoded again here.
        var decoding = batch.Select(p => p switch
        {
            Prepared mine when mine.Owner == this => mine.Decoding,
            Prepared earlier => decodes.RunAsync(() => Decode(earlier.Input)),
            _ => throw new ArgumentException($"{p.GetType().Name} was not prepared by a TorchSharp model", nameof(batch)),
        });
        var decoded = await Task.WhenAll(decoding);

        var outcomes = new InferenceOutcome?[batch.Count];
        var runnable = new List<int>(batch.Count);
        for (var i = 0; i < decoded.Length; i++)
        {
            if (decoded[i].Error is { } error)
            {
                outcomes[i] = new InferenceOutcome.Failure(error);
            }
            else
            {
                runnable.Add(i);
            }
        }

        var deviceTime = TimeSpan.Zero;
        if (runnable.Count > 0)
        {
            var device = lease.Device.ToTorch();
            var inputs = runnable.Select(i => decoded[i].Value!.Inputs).ToArray();
            (var results, deviceTime) = await lease.Executor.RunScopedAsync(() =>
            {
                var started = Stopwatch.GetTimestamp();
                var results = BatchRunner.Run(module, device, inputs, batchAlongFirstDim, _steps, _outputNames);
                return (results, Stopwatch.GetElapsedTime(started));
            }, cancellationToken);

            for (var r = 0; r < runnable.Count; r++)
            {
                var i = runnable[r];
                outcomes[i] = results[r] switch
                {
                    { Value: { } outputs } => Render(decoded[i].Value!, outputs),
                    { Error: { } error } => new InferenceOutcome.Failure(error),
                    _ => new InferenceOutcome.Failure(new ServeError(ServeErrorKind.Internal, "no result")),
                };
            }
        }

        return new BatchResult([.. outcomes.Select(o => o!)], deviceTime);
    }

    /// <summary>Decodes one request; whatever goes wrong fails that request alone, never the batch or the replica.</summary>
    private Result<PreparedRequest> Decode(InferenceInput input)
    {
        try
        {
            return handler.Prepare(input);
        }
        catch (ModelInputException error)
        {
            return error.ToServeError();
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            return new ServeError(ServeErrorKind.Internal, $"Decoding the request failed: {error.Message}");
        }
    }

    private InferenceOutcome Render(PreparedRequest request, NamedTensor[] outputs)
    {
        try
        {
            return new InferenceOutcome.Success(handler.Render(request, outputs));
        }
        catch (ModelInputException error)
        {
            return new InferenceOutcome.Failure(error.ToServeError());
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            return new InferenceOutcome.Failure(new ServeError(ServeErrorKind.Internal, $"Rendering the answer failed: {error.Message}"));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Queued behind any batch still running on the device, so the module is never freed under it.
        await lease.Executor.RunAsync(() =>
        {
            module.Dispose();
            return true;
        }, CancellationToken.None);
        lease.Dispose();
    }

    private sealed record Prepared(LoadedTorchModel Owner, InferenceInput Input, Task<Result<PreparedRequest>> Decoding) : IPreparedInput;
}
