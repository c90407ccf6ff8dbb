namespace Serve.Archive;

/// <summary>How much an archive may unpack to: bounds that stop zip bombs before they fill a disk.</summary>
public sealed record ArchiveLimits(int MaxEntries, long MaxTotalBytes)
{
    public static readonly ArchiveLimits Default = new(MaxEntries: 10_000, MaxTotalBytes: 4L << 30);
}
