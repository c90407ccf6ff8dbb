using Serve.Actors.Batching;
using Serve.Node.Handlers;

namespace Serve.Node.Hosting;

/// <summary>The worker's devices and threads. Section <c>Serve:Node</c>.</summary>
public sealed class NodeOptions
{
    public const string Section = "Serve:Node";

    /// <summary>
    /// Devices to serve on when there is no CUDA device: each CPU slot gets its own executor thread.
    /// Env: Serve__Node__CpuSlots.
    /// </summary>
    public int CpuSlots { get; set; } = 1;

    /// <summary>
    /// Directories outside the model store this worker may load model files from. Definitions arrive over the
    /// cluster, so a worker opens an absolute path only inside its model store or one of these (the standalone
    /// server also allows the files of its own start-up models). Env: Serve__Node__ModelDirectories__0, ...
    /// </summary>
    public string[] ModelDirectories { get; set; } = [];

    /// <summary>
    /// The name placement pins use for this worker. Empty: its cluster host:port. Env: Serve__Node__Name.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>
    /// Memory of each device in MB, against which placement packs the replicas' declared memory. 0 finds
    /// it: a GPU's total memory (NVML), or for CPU slots the memory available to the process divided
    /// among them. Env: Serve__Node__DeviceMemoryMb.
    /// </summary>
    public long DeviceMemoryMb { get; set; }

    /// <summary>
    /// libtorch intra-op threads (process-wide, set once). 0 picks the processor count divided by the
    /// number of CPU slots. Env: Serve__Node__TorchThreads.
    /// </summary>
    public int TorchThreads { get; set; }

    /// <summary>libtorch inter-op threads (process-wide, set once). Env: Serve__Node__InteropThreads.</summary>
    public int InteropThreads { get; set; } = 1;

    /// <summary>
    /// Largest image (width x height) the image handlers decode; 0: each handler's own limit (image_classifier
    /// and image_segmenter 25 MP, object_detector 16.8 MP), what its models can use. Env: Serve__Node__MaxImagePixels.
    /// </summary>
    public long MaxImagePixels { get; set; }

    /// <summary>The image limit for <paramref name="handlerDefault"/>'s handler: <see cref="MaxImagePixels"/> when set.</summary>
    public long ImagePixelsFor(long handlerDefault) => MaxImagePixels > 0 ? MaxImagePixels : handlerDefault;

    /// <summary>Most tokens (with [CLS] and [SEP]) text_classifier gives a model; longer texts are cut. Env: Serve__Node__TextMaxLength.</summary>
    public int TextMaxLength { get; set; } = TextClassifierHandler.DefaultMaxLength;

    /// <summary>Lowest score of a detection object_detector answers with. Env: Serve__Node__DetectionThreshold.</summary>
    public float DetectionThreshold { get; set; } = ObjectDetectorHandler.DefaultThreshold;

    /// <summary>First delay before a failed replica loads again; doubles per failure. Env: Serve__Node__RestartBackoffMin.</summary>
    public TimeSpan RestartBackoffMin { get; set; } = RestartBackoff.Default.Min;

    /// <summary>Longest delay between restarts of a failed replica. Env: Serve__Node__RestartBackoffMax.</summary>
    public TimeSpan RestartBackoffMax { get; set; } = RestartBackoff.Default.Max;

    /// <summary>Failures in a row after which a replica is marked failed and no longer retried. Env: Serve__Node__MaxConsecutiveFailures.</summary>
    public int MaxConsecutiveFailures { get; set; } = RestartBackoff.Default.MaxConsecutiveFailures;

    /// <summary>
    /// Load each TorchScript file in a short-lived child process first, so a file that aborts libtorch
    /// cannot take the node down. Env: Serve__Node__Preflight.
    /// </summary>
    public bool Preflight { get; set; } = true;

    /// <summary>How long the preflight child may take to load (and probe) a model. Env: Serve__Node__PreflightTimeout.</summary>
    public TimeSpan PreflightTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Serve each replica's queue fairly between tenants (weighted round robin, a full queue shared by
    /// weight); false: one FIFO queue across tenants, for comparison. Env: Serve__Node__FairScheduling.
    /// </summary>
    public bool FairScheduling { get; set; } = true;

    public RestartBackoff Backoff => new(RestartBackoffMin, RestartBackoffMax, MaxConsecutiveFailures);

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (CpuSlots is < 1 or > 256)
        {
            problems.Add($"Serve:Node:CpuSlots must be 1-256, not {CpuSlots}");
        }

        problems.AddRange(ModelDirectories.Where(d => !Path.IsPathRooted(d))
            .Select(d => $"Serve:Node:ModelDirectories must be absolute paths, not '{d}'"));

        if (DeviceMemoryMb < 0)
        {
            problems.Add($"Serve:Node:DeviceMemoryMb must be 0 (find it) or a number of MB, not {DeviceMemoryMb}");
        }

        if (TorchThreads is < 0 or > 1024)
        {
            problems.Add($"Serve:Node:TorchThreads must be 0-1024, not {TorchThreads}");
        }

        if (InteropThreads is < 1 or > 1024)
        {
            problems.Add($"Serve:Node:InteropThreads must be 1-1024, not {InteropThreads}");
        }

        if (RestartBackoffMin <= TimeSpan.Zero || RestartBackoffMax < RestartBackoffMin)
        {
            problems.Add($"Serve:Node:RestartBackoffMin must be positive and at most RestartBackoffMax ({RestartBackoffMin} / {RestartBackoffMax})");
        }

        if (MaxConsecutiveFailures < 1)
        {
            problems.Add($"Serve:Node:MaxConsecutiveFailures must be at least 1, not {MaxConsecutiveFailures}");
        }

        if (PreflightTimeout <= TimeSpan.Zero)
        {
            problems.Add($"Serve:Node:PreflightTimeout must be positive, not {PreflightTimeout}");
        }

        if (MaxImagePixels < 0)
        {
            problems.Add($"Serve:Node:MaxImagePixels must be positive (or 0 for each handler's own limit), not {MaxImagePixels}");
        }

        if (TextMaxLength is < 2 or > 65_536)
        {
            problems.Add($"Serve:Node:TextMaxLength must be 2-65536, not {TextMaxLength}");
        }

        if (!float.IsFinite(DetectionThreshold) || DetectionThreshold is < 0 or > 1)
        {
            problems.Add($"Serve:Node:DetectionThreshold must be between 0 and 1, not {DetectionThreshold}");
        }

        return problems;
    }
}
