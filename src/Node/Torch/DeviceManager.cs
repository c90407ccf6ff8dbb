using Serve.Actors.Protocol;

namespace Serve.Node.Torch;

/// <summary>
/// This node's devices, each with its executor thread, and which replicas hold them. A replica claims the
/// device the registry planned for it; without a plan (or one naming a device this node lacks), the device
/// with the most declared memory free, then the fewest replicas (ties: lowest index). It gives the device
/// back when it unloads.
/// </summary>
public sealed class DeviceManager : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Slot> _slots;

    public DeviceManager(IReadOnlyList<DeviceInfo> devices)
    {
        if (devices.Count == 0)
        {
            throw new ArgumentException("a worker needs at least one device", nameof(devices));
        }

        _slots = devices.ToDictionary(d => d.Name, d => new Slot(d, new DeviceExecutor(d.Name)), StringComparer.Ordinal);
    }

    public DeviceLease Claim(ReplicaId replica, string? planned = null, int declaredMemoryMb = 0)
    {
        lock (_gate)
        {
            var slot = planned is not null && _slots.TryGetValue(planned, out var chosen)
                ? chosen
                : _slots.Values
                    .OrderByDescending(s => s.Device.TotalMemoryMb < 0 ? 0 : s.Device.TotalMemoryMb - s.Replicas.Values.Sum())
                    .ThenBy(s => s.Replicas.Count)
                    .ThenBy(s => s.Device.Index)
                    .First();
            var lease = new DeviceLease(this, slot.Device, slot.Executor, replica);
            slot.Replicas[lease] = declaredMemoryMb;
            return lease;
        }
    }

    /// <summary>Each device with its memory; GPUs also with the memory NVML measures in use.</summary>
    public DeviceCapacity[] Inventory() =>
        [.. _slots.Values.OrderBy(s => s.Device.Name, StringComparer.Ordinal).Select(s => new DeviceCapacity(
            s.Device.Name,
            s.Device.TotalMemoryMb,
            s.Device.Type == TorchSharp.DeviceType.CUDA ? GpuMemory.Query(s.Device.Index)?.UsedMb ?? -1 : -1))];

    /// <summary>The replicas holding a device now (a replica reloading holds two leases for a moment: listed once).</summary>
    public HostedReplica[] Hosted()
    {
        lock (_gate)
        {
            return [.. _slots.Values.SelectMany(s => s.Replicas.Keys.Select(l => new HostedReplica(l.Replica, s.Device.Name)))
                .DistinctBy(h => h.Replica)];
        }
    }

    public IReadOnlyDictionary<string, int> ReplicasPerDevice()
    {
        lock (_gate)
        {
            return _slots.ToDictionary(s => s.Key, s => s.Value.Replicas.Count, StringComparer.Ordinal);
        }
    }

    internal void Release(DeviceLease lease)
    {
        lock (_gate)
        {
            _slots[lease.Device.Name].Replicas.Remove(lease);
        }
    }

    public void Dispose()
    {
        foreach (var slot in _slots.Values)
        {
            slot.Executor.Dispose();
        }
    }

    private sealed record Slot(DeviceInfo Device, DeviceExecutor Executor)
    {
        /// <summary>The leases on it (one per loaded replica), with the memory each declares.</summary>
        public Dictionary<DeviceLease, int> Replicas { get; } = [];
    }
}

/// <summary>A replica's hold on one device; dispose to give it back.</summary>
public sealed class DeviceLease(DeviceManager owner, DeviceInfo device, DeviceExecutor executor, ReplicaId replica) : IDisposable
{
    private int _released;

    public DeviceInfo Device { get; } = device;

    public DeviceExecutor Executor { get; } = executor;

    public ReplicaId Replica { get; } = replica;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            owner.Release(this);
        }
    }
}
