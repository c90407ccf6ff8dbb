using System.Diagnostics;

namespace Serve.TestSupport;

/// <summary>Waits on conditions with deadlines; tests never sleep a fixed time.</summary>
public static class Waiting
{
    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes, then fails with <paramref name="what"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? context = null)
    {
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(20);
        Exception? last = null;
        while (clock.Elapsed < timeout)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception error) when (error is HttpRequestException or IOException or TaskCanceledException or InvalidOperationException)
            {
                last = error;
            }

            await Task.Delay(delay);
            delay = TimeSpan.FromMilliseconds(Math.Min(500, delay.TotalMilliseconds * 2));
        }

        throw new TimeoutException(
            $"Timed out after {timeout.TotalSeconds:0.#} s waiting for {what}.{(last is null ? "" : $" Last error: {last.Message}.")}{(context is null ? "" : " " + context())}");
    }

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, Func<string>? context = null) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what, context);
}
