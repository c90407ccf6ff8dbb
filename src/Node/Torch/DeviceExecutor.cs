using System.Collections.Concurrent;
using TorchSharp;

namespace Serve.Node.Torch;

/// <summary>
/// The one thread that does all tensor work for one device. libtorch's dispose scopes and inference mode
/// are thread-local, so every piece of work runs synchronously here: inputs become tensors, the forward
/// pass runs, and results are copied to managed arrays before the scope ends. Nothing waits on this
/// thread except through the returned task.
/// </summary>
public sealed class DeviceExecutor : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;

    public DeviceExecutor(string name)
    {
        Name = name;
        _thread = new Thread(RunLoop) { IsBackground = true, Name = $"serve-device-{name}" };
        _thread.Start();
    }

    public string Name { get; }

    /// <summary>
    /// Runs <paramref name="work"/> inside a dispose scope and inference mode: every tensor it creates is
    /// freed when it returns, so it must return managed data only.
    /// </summary>
    public Task<T> RunScopedAsync<T>(Func<T> work, CancellationToken cancellationToken) =>
        Enqueue(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var mode = torch.inference_mode();
            return work();
        }, cancellationToken);

    /// <summary>Runs <paramref name="work"/> with gradients off but without a dispose scope (loading, unloading).</summary>
    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken) =>
        Enqueue(() =>
        {
            using var noGrad = torch.no_grad();
            return work();
        }, cancellationToken);

    private Task<T> Enqueue<T>(Func<T> work, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_work.IsAddingCompleted)
        {
            completion.SetException(new ObjectDisposedException($"device executor {Name}"));
            return completion.Task;
        }

        _work.Add(() =>
        {
            // Work whose caller gave up while it waited never touches the device.
            if (cancellationToken.IsCancellationRequested)
            {
                completion.TrySetCanceled(cancellationToken);
                return;
            }

            try
            {
                completion.TrySetResult(work());
            }
            catch (Exception error)
            {
                completion.TrySetException(error);
            }
        }, CancellationToken.None);
        return completion.Task;
    }

    private void RunLoop()
    {
        foreach (var item in _work.GetConsumingEnumerable())
        {
            item();
        }
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        _thread.Join(TimeSpan.FromSeconds(30));
        _work.Dispose();
    }
}
