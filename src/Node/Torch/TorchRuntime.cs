using Serve.Node.Hosting;
using TorchSharp;

namespace Serve.Node.Torch;

/// <summary>One device a worker serves on.</summary>
public sealed record DeviceInfo(string Name, DeviceType Type, int Index)
{
    public torch.Device ToTorch() => new(Type, Index < 0 || Type == DeviceType.CPU ? -1 : Index);
}

/// <summary>
/// Process-wide libtorch settings and device discovery. libtorch aborts the process if the inter-op
/// thread count is set twice or after any work, so it is set exactly once, here, before anything else.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lock Gate = new();
    private static (int Intra, int Interop)? s_threads;

    /// <summary>Sets thread counts once per process; later calls with other values are ignored and say so.</summary>
    public static (int Intra, int Interop) Initialize(NodeOptions options)
    {
        lock (Gate)
        {
            if (s_threads is { } set)
            {
                return set;
            }

            var intra = options.TorchThreads > 0
                ? options.TorchThreads
                : Math.Max(1, Environment.ProcessorCount / Math.Max(1, options.CpuSlots));
            torch.set_num_interop_threads(options.InteropThreads);
            torch.set_num_threads(intra);
            s_threads = (intra, options.InteropThreads);
            return s_threads.Value;
        }
    }

    /// <summary>Every CUDA device when CUDA is available, else the configured number of CPU slots.</summary>
    public static IReadOnlyList<DeviceInfo> DiscoverDevices(NodeOptions options)
    {
        if (torch.cuda.is_available())
        {
            return [.. Enumerable.Range(0, torch.cuda.device_count()).Select(i => new DeviceInfo($"cuda:{i}", DeviceType.CUDA, i))];
        }

        return [.. Enumerable.Range(0, options.CpuSlots).Select(i => new DeviceInfo($"cpu:{i}", DeviceType.CPU, i))];
    }
}
