using Serve.Node.Torch;

namespace Serve.Node.Tests;

public sealed class DeviceExecutorTests
{
    [Fact]
    public async Task All_work_runs_on_the_one_device_thread_in_order()
    {
        using var executor = new DeviceExecutor("test");
        var seen = new List<(int Order, string? Thread)>();
        var tasks = Enumerable.Range(0, 20)
            .Select(i => executor.RunAsync(() =>
            {
                seen.Add((i, Thread.CurrentThread.Name));
                return i;
            }, TestContext.Current.CancellationToken))
            .ToArray();
        await Task.WhenAll(tasks);

        Assert.Equal(Enumerable.Range(0, 20), seen.Select(s => s.Order));
        Assert.All(seen, s => Assert.Equal("serve-device-test", s.Thread));
    }

    [Fact]
    public async Task Work_whose_caller_gave_up_never_runs()
    {
        using var executor = new DeviceExecutor("test");
        var gate = new ManualResetEventSlim();
        var blocker = executor.RunAsync(() => gate.Wait(TimeSpan.FromSeconds(10)), CancellationToken.None);
        using var cancellation = new CancellationTokenSource();
        var ran = false;
        var cancelled = executor.RunAsync(() => ran = true, cancellation.Token);

        await cancellation.CancelAsync();
        gate.Set();
        await blocker;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.False(ran);
    }

    [Fact]
    public async Task Exceptions_come_back_to_the_caller()
    {
        using var executor = new DeviceExecutor("test");
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            executor.RunAsync<int>(() => throw new InvalidOperationException("boom"), CancellationToken.None));
        Assert.Equal("boom", error.Message);
        Assert.Equal(3, await executor.RunAsync(() => 3, CancellationToken.None));
    }
}
