namespace Serve.Actors.Tests;

/// <summary>A clock that moves only when told, for the plain objects that read a <see cref="TimeProvider"/>.</summary>
internal sealed class ManualTime : TimeProvider
{
    private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    // Timestamps in ticks, so TimeSpan arithmetic and elapsed times agree exactly.
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => _now.UtcTicks;

    public void Advance(TimeSpan by) => _now += by;
}
