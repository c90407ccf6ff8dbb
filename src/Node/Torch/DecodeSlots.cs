using System.Diagnostics.CodeAnalysis;

namespace Serve.Node.Torch;

/// <summary>
/// How many requests of this node decode at once (images, large JSON), whatever the replica. Decoding is
/// CPU work, so more at once than there are processors gains nothing, and each decode can hold a full-size
/// bitmap for a moment: a burst of large images waits here as the bytes it came in, not as pixels.
/// </summary>
[SuppressMessage("Design", "CA1001", Justification = "A SemaphoreSlim whose wait handle is never asked for holds nothing to dispose; it lives as long as the node.")]
public sealed class DecodeSlots(int slots)
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, slots));

    /// <summary>One slot per processor.</summary>
    public static DecodeSlots PerProcessor() => new(Environment.ProcessorCount);

    /// <summary>Runs <paramref name="decode"/> on the thread pool once a slot is free.</summary>
    public Task<T> RunAsync<T>(Func<T> decode) => Task.Run(async () =>
    {
        await _slots.WaitAsync().ConfigureAwait(false);
        try
        {
            return decode();
        }
        finally
        {
            _slots.Release();
        }
    });
}
