using System.Runtime.InteropServices;
using Serve.Node.Hosting;
using TorchSharp;

namespace Serve.Node.Torch;

/// <summary>One device a worker serves on, with its memory in MB (-1: not known).</summary>
public sealed record DeviceInfo(string Name, DeviceType Type, int Index, long TotalMemoryMb = -1)
{
    public torch.Device ToTorch() => new(Type, Index < 0 || Type == DeviceType.CPU ? -1 : Index);
}

/// <summary>
/// Process-wide libtorch settings and device discovery. libtorch aborts the process if the inter-op
/// thread count is set twice or after any work, so it is set exactly once, here, before anything else.
/// </summary>
public static partial class TorchRuntime
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
            PreferSleepingOpenMpThreads();
            torch.set_num_interop_threads(options.InteropThreads);
            torch.set_num_threads(intra);
            s_threads = (intra, options.InteropThreads);
            return s_threads.Value;
        }
    }

    /// <summary>
    /// libtorch's OpenMP threads spin for a long time while they wait for work. In a server the other
    /// cores are busy with requests, so the spinning steals the CPU that would answer them: on a loaded
    /// 2-core worker 44% of the samples were libgomp's spin loop. Measured on that machine (64 clients,
    /// tiny model): sleeping at once (OMP_WAIT_POLICY=PASSIVE) 27-28k requests/s, a short spin
    /// (GOMP_SPINCOUNT=1000) 24-26k, 10000 20-22k, libgomp's default about 10k; resnet18 at 16 clients
    /// lost about 3% to PASSIVE. Applied unless the operator set either variable. libgomp reads it when
    /// libtorch loads, after this call; .NET's Environment.SetEnvironmentVariable would not reach native
    /// code, hence setenv.
    /// </summary>
    private static void PreferSleepingOpenMpThreads()
    {
        if (OperatingSystem.IsLinux()
            && Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is null
            && Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is null)
        {
            _ = SetNativeEnvironmentVariable("OMP_WAIT_POLICY", "PASSIVE", overwrite: 0);
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetNativeEnvironmentVariable(string name, string value, int overwrite);

    /// <summary>Every CUDA device when CUDA is available, else the configured number of CPU slots.</summary>
    public static IReadOnlyList<DeviceInfo> DiscoverDevices(NodeOptions options)
    {
        if (torch.cuda.is_available())
        {
            return [.. Enumerable.Range(0, torch.cuda.device_count()).Select(i => new DeviceInfo($"cuda:{i}", DeviceType.CUDA, i,
                options.DeviceMemoryMb > 0 ? options.DeviceMemoryMb : GpuMemory.Query(i)?.TotalMb ?? -1))];
        }

        var perSlot = options.DeviceMemoryMb > 0
            ? options.DeviceMemoryMb
            : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1L << 20) / options.CpuSlots;
        return [.. Enumerable.Range(0, options.CpuSlots).Select(i => new DeviceInfo($"cpu:{i}", DeviceType.CPU, i, perSlot))];
    }
}
