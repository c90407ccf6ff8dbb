using System.Runtime.InteropServices;

namespace Serve.Node.Torch;

/// <summary>
/// A GPU's memory from NVML (libnvidia-ml, installed with the NVIDIA driver), which answers without a
/// CUDA context. NVML numbers every GPU of the host in PCI bus order; CUDA does too when
/// CUDA_DEVICE_ORDER=PCI_BUS_ID (set it on hosts with mixed GPUs). With CUDA_VISIBLE_DEVICES set, CUDA's
/// numbers no longer match NVML's, so nothing is read (give Serve:Node:DeviceMemoryMb). Null when NVML is
/// not there or not used.
/// </summary>
public static partial class GpuMemory
{
    private const string Library = "libnvidia-ml.so.1";
    private static readonly Lazy<bool> Initialized = new(() =>
    {
        try
        {
            return nvmlInit_v2() == 0;
        }
        catch (Exception error) when (error is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    });

    public static (long TotalMb, long UsedMb)? Query(int index)
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES"))
            || !Initialized.Value || nvmlDeviceGetHandleByIndex_v2((uint)index, out var device) != 0
            || nvmlDeviceGetMemoryInfo(device, out var memory) != 0)
        {
            return null;
        }

        return ((long)(memory.Total >> 20), (long)(memory.Used >> 20));
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct NvmlMemory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    [LibraryImport(Library)]
    private static partial int nvmlInit_v2();

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetMemoryInfo(IntPtr device, out NvmlMemory memory);
}
