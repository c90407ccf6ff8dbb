using System.Diagnostics;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Node.Handlers;

namespace Serve.Node.Torch;

/// <summary>
/// A replica's model on its device. Pre-processing and rendering run on the thread pool; only tensor work
/// runs on the device's executor thread, which serialises the forward passes of every replica there.
/// </summary>
public sealed class LoadedTorchModel(TorchModule module, IModelHandler handler, DeviceLease lease, bool batchAlongFirstDim)
    : ILoadedModel
{
    private readonly string[] _outputNames = [.. module.Signature.Outputs.Select(o => o.Name)];

    public string Device => lease.Device.Name;

    public ModelSignature Signature => handler.Signature;

    public async Task<BatchResult> InferAsync(IReadOnlyList<InferenceInput> batch, CancellationToken cancellationToken)
    {
        var outcomes = new InferenceOutcome?[batch.Count];
        var prepared = new PreparedRequest?[batch.Count];
        void PrepareOne(int i)
        {
            try
            {
                prepared[i] = handler.Prepare(batch[i]);
            }
            catch (ModelInputException error)
            {
                outcomes[i] = new InferenceOutcome.Failure(error.ToServeError());
            }
        }

        if (batch.Count == 1)
        {
            PrepareOne(0);
        }
        else
        {
            Parallel.For(0, batch.Count, PrepareOne);
        }

        var runnable = Enumerable.Range(0, batch.Count).Where(i => prepared[i] is not null).ToArray();
        var deviceTime = TimeSpan.Zero;
        if (runnable.Length > 0)
        {
            var device = lease.Device.ToTorch();
            var inputs = runnable.Select(i => prepared[i]!.Inputs).ToArray();
            (var results, deviceTime) = await lease.Executor.RunScopedAsync(() =>
            {
                var started = Stopwatch.GetTimestamp();
                var results = BatchRunner.Run(module, device, inputs, batchAlongFirstDim, handler.Postprocess, _outputNames);
                return (results, Stopwatch.GetElapsedTime(started));
            }, cancellationToken);

            for (var r = 0; r < runnable.Length; r++)
            {
                var i = runnable[r];
                outcomes[i] = results[r] switch
                {
                    { Outputs: { } outputs } => Render(prepared[i]!, outputs),
                    { Error: { } error } => new InferenceOutcome.Failure(error),
                    _ => new InferenceOutcome.Failure(new ServeError(ServeErrorKind.Internal, "no result")),
                };
            }
        }

        return new BatchResult([.. outcomes.Select(o => o!)], deviceTime);
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
    }

    public async ValueTask DisposeAsync()
    {
        // Queued behind any batch still running on the device, so the module is never freed under it.
        await lease.Executor.RunAsync(() =>
        {
            module.Dispose();
            return true;
        }, CancellationToken.None);
        lease.Dispose();
    }
}
