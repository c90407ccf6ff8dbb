using Akka.Actor;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Node.Hosting;
using Serve.Node.Torch;

namespace Serve.Node.Tests;

/// <summary>
/// A CUDA error that sticks to the process's context restarts the worker process, not the replica in
/// place. There is no GPU here: the errors are the texts libtorch raises, and the restart is the watcher's.
/// </summary>
public sealed class DeviceFaultTests
{
    [Theory]
    [InlineData("CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported", true)]
    [InlineData("CUDA error: an illegal memory access was encountered", true)]
    [InlineData("CUDA error: misaligned address", true)]
    [InlineData("CUDA error: unspecified launch failure", true)]
    [InlineData("CUDA out of memory. Tried to allocate 2.00 GiB", false)]
    [InlineData("CUDA error: too many resources requested for launch", false)]
    [InlineData("mat1 and mat2 shapes cannot be multiplied (1x3 and 10x6)", false)]
    public void Only_errors_that_break_the_cuda_context_break_the_process(string message, bool breaks) =>
        Assert.Equal(breaks, BatchRunner.BreaksTheProcess(message));

    [Fact]
    public async Task The_watcher_restarts_the_process_once_however_many_replicas_report()
    {
        using var system = ActorSystem.Create("poison-watcher");
        var restarts = 0;
        var restarted = new TaskCompletionSource<ProcessPoisoned>(TaskCreationOptions.RunContinuationsAsynchronously);
        var watcher = system.ActorOf(ProcessPoisonWatcher.Props(poisoned =>
        {
            Interlocked.Increment(ref restarts);
            restarted.TrySetResult(poisoned);
        }));
        var subscribed = await watcher.Ask<ActorIdentity>(new Identify(null), TimeSpan.FromSeconds(5)); // PreStart has subscribed
        Assert.NotNull(subscribed.Subject);

        var first = new ProcessPoisoned(new ReplicaId("m", "1.0", 0), "cuda:0", "device-side assert triggered");
        system.EventStream.Publish(first);
        system.EventStream.Publish(first with { Replica = new ReplicaId("m", "1.0", 1) });

        Assert.Equal(first, await restarted.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        var stillOne = await watcher.Ask<ActorIdentity>(new Identify(null), TimeSpan.FromSeconds(5)); // both published were handled
        Assert.NotNull(stillOne.Subject);
        Assert.Equal(1, restarts);
        await system.Terminate();
    }
}
