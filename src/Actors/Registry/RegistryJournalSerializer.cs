using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Serialization;
using Serve.Actors.Protocol;

namespace Serve.Actors.Registry;

/// <summary>
/// How the registry's journal and snapshots are written: JSON of an explicit schema (the records below,
/// not the protocol's .NET types), named by a string manifest that carries its version
/// (<c>model-registered.v1</c>). Renaming a protocol type or namespace, or adding a property, leaves what
/// is stored readable. To change what an entry holds, add a <c>.v2</c> record beside the <c>.v1</c> one
/// and keep reading both. Entries written before this format (Hyperion, by type name) are still read by
/// Hyperion, and the registry snapshots in this format once it has recovered from them.
/// </summary>
public sealed class RegistryJournalSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const string Name = "serve-registry-journal";

    /// <summary>Akka's serializer id for this format (ids below 100 are Akka's own).</summary>
    public const int Id = 4711;

    /// <summary>Every type this serializer writes: the journaled events and the snapshot.</summary>
    public static IReadOnlyList<Type> Types { get; } =
    [
        typeof(ModelVersionRegistered), typeof(ModelVersionUnregistered), typeof(ModelVersionScaled), typeof(DefaultVersionSet),
        typeof(ModelVersionPlaced), typeof(TenantDefined), typeof(TenantRemoved), typeof(RegistrySnapshot),
    ];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        ModelVersionRegistered => "model-registered.v1",
        ModelVersionUnregistered => "model-unregistered.v1",
        ModelVersionScaled => "model-scaled.v1",
        DefaultVersionSet => "default-version-set.v1",
        ModelVersionPlaced => "model-placed.v1",
        TenantDefined => "tenant-defined.v1",
        TenantRemoved => "tenant-removed.v1",
        RegistrySnapshot => "registry-snapshot.v1",
        _ => throw new ArgumentException($"{o.GetType()} is not written to the registry's journal", nameof(o)),
    };

    public override byte[] ToBinary(object obj) => obj switch
    {
        ModelVersionRegistered e => Write(new RegisteredV1(ModelV1.From(e.Definition), e.FromConfiguration)),
        ModelVersionUnregistered e => Write(new KeyV1(e.Key.Name, e.Key.Version)),
        ModelVersionScaled e => Write(new ScaledV1(e.Key.Name, e.Key.Version, e.Replicas)),
        DefaultVersionSet e => Write(new DefaultV1(e.Model, e.Version)),
        ModelVersionPlaced e => Write(new PlacedV1(e.Key.Name, e.Key.Version, PlacementV1.From(e.Placement), e.DeviceMemoryMb)),
        TenantDefined e => Write(TenantV1.From(e.Tenant)),
        TenantRemoved e => Write(new TenantIdV1(e.Id)),
        RegistrySnapshot s => Write(new SnapshotV1(
            [.. s.Models.Select(ModelV1.From)], [.. s.Defaults.Select(d => new DefaultV1(d.Model, d.Version))],
            [.. s.Configured.Select(ModelV1.From)], [.. (s.Tenants ?? []).Select(TenantV1.From)])),
        _ => throw new ArgumentException($"{obj.GetType()} is not written to the registry's journal", nameof(obj)),
    };

    public override object FromBinary(byte[] bytes, string manifest)
    {
        switch (manifest)
        {
            case "model-registered.v1":
                var registered = Read<RegisteredV1>(bytes);
                return new ModelVersionRegistered(registered.Model.ToDefinition(), registered.FromConfiguration);
            case "model-unregistered.v1":
                var key = Read<KeyV1>(bytes);
                return new ModelVersionUnregistered(new ModelKey(key.Name, key.Version));
            case "model-scaled.v1":
                var scaled = Read<ScaledV1>(bytes);
                return new ModelVersionScaled(new ModelKey(scaled.Name, scaled.Version), scaled.Replicas);
            case "default-version-set.v1":
                var set = Read<DefaultV1>(bytes);
                return new DefaultVersionSet(set.Model, set.Version);
            case "model-placed.v1":
                var placed = Read<PlacedV1>(bytes);
                return new ModelVersionPlaced(new ModelKey(placed.Name, placed.Version), placed.Placement.ToPlacement(), placed.DeviceMemoryMb);
            case "tenant-defined.v1":
                return new TenantDefined(Read<TenantV1>(bytes).ToDefinition());
            case "tenant-removed.v1":
                return new TenantRemoved(Read<TenantIdV1>(bytes).Id);
            case "registry-snapshot.v1":
                var snapshot = Read<SnapshotV1>(bytes);
                return new RegistrySnapshot(
                    [.. snapshot.Models.Select(m => m.ToDefinition())],
                    [.. snapshot.Defaults.Select(d => new DefaultVersion(d.Model, d.Version))],
                    [.. snapshot.Configured.Select(m => m.ToDefinition())])
                {
                    Tenants = [.. snapshot.Tenants.Select(t => t.ToDefinition())],
                };
            default:
                throw new System.Runtime.Serialization.SerializationException(
                    $"the registry's journal holds an entry of kind '{manifest}', which this version of Serve cannot read");
        }
    }

    private static byte[] Write<T>(T record) => JsonSerializer.SerializeToUtf8Bytes(record, Json);

    private static T Read<T>(byte[] bytes) =>
        JsonSerializer.Deserialize<T>(bytes, Json) ?? throw new System.Runtime.Serialization.SerializationException($"an empty {typeof(T).Name}");

    // Schema v1. These records are the stored format: change them only by adding new ones.

    private sealed record RegisteredV1(ModelV1 Model, bool FromConfiguration);

    private sealed record KeyV1(string Name, string Version);

    private sealed record ScaledV1(string Name, string Version, int Replicas);

    private sealed record DefaultV1(string Model, string Version);

    private sealed record PlacedV1(string Name, string Version, PlacementV1 Placement, int DeviceMemoryMb);

    private sealed record TenantIdV1(string Id);

    private sealed record SnapshotV1(ModelV1[] Models, DefaultV1[] Defaults, ModelV1[] Configured, TenantV1[] Tenants);

    private sealed record PlacementV1(string[] Nodes, string[] Devices, bool Spread)
    {
        public static PlacementV1 From(ModelPlacement placement) => new(placement.Nodes, placement.Devices, placement.Spread);

        public ModelPlacement ToPlacement() => new(Nodes ?? [], Devices ?? [], Spread);
    }

    private sealed record ParameterV1(string Name, string Value);

    /// <summary>A model's source: <c>torchscript</c> (a path) or <c>builtin</c> (an architecture and its settings).</summary>
    private sealed record SourceV1(string Kind, string? Path, string? Architecture, string? Weights, long Seed, ParameterV1[]? Parameters)
    {
        public static SourceV1 From(ModelSource source) => source switch
        {
            TorchScriptSource s => new SourceV1("torchscript", s.Path, null, null, 0, null),
            BuiltInSource b => new SourceV1("builtin", null, b.Architecture, b.WeightsPath, b.Seed, [.. b.Parameters.Select(p => new ParameterV1(p.Name, p.Value))]),
            _ => throw new ArgumentException($"unknown model source {source.GetType().Name}", nameof(source)),
        };

        public ModelSource ToSource() => Kind switch
        {
            "torchscript" => new TorchScriptSource(Path ?? string.Empty),
            "builtin" => new BuiltInSource(Architecture ?? string.Empty, Weights, Seed, [.. (Parameters ?? []).Select(p => new ModelParameter(p.Name, p.Value))]),
            _ => throw new System.Runtime.Serialization.SerializationException($"unknown model source kind '{Kind}'"),
        };
    }

    private sealed record ModelV1(
        string Name, string Version, SourceV1 Source, string Handler, int Replicas, int BatchSize, int MaxBatchDelayMs, int JobQueueSize,
        int ResponseTimeoutSeconds, string? LabelsPath, string? VocabPath, string? Url, PlacementV1? Placement, int DeviceMemoryMb,
        string? Owner, string? SharedWith)
    {
        public static ModelV1 From(ModelDefinition d) => new(
            d.Name, d.Version, SourceV1.From(d.Source), d.Handler, d.Replicas, d.BatchSize, d.MaxBatchDelayMs, d.JobQueueSize,
            d.ResponseTimeoutSeconds, d.LabelsPath, d.VocabPath, d.Url, PlacementV1.From(d.Placement), d.DeviceMemoryMb, d.Owner, d.SharedWith);

        public ModelDefinition ToDefinition() => new(
            Name, Version, Source.ToSource(), Handler, Replicas, BatchSize, MaxBatchDelayMs, JobQueueSize, ResponseTimeoutSeconds, LabelsPath)
        {
            VocabPath = VocabPath,
            Url = Url,
            Placement = Placement?.ToPlacement() ?? ModelPlacement.Anywhere,
            DeviceMemoryMb = DeviceMemoryMb,
            Owner = Owner ?? ModelDefinition.AdminTenant,
            SharedWith = SharedWith ?? string.Empty,
        };
    }

    private sealed record TenantV1(
        string Id, string Name, string[] KeySha256, int Weight, int RequestsPerSecond, int Burst, int MaxConcurrent, int MaxQueued,
        int MaxModels, int MaxReplicas, long MaxDeviceMemoryMb)
    {
        public static TenantV1 From(TenantDefinition t) => new(
            t.Id, t.Name, t.KeySha256, t.Weight, t.RequestsPerSecond, t.Burst, t.MaxConcurrent, t.MaxQueued, t.MaxModels, t.MaxReplicas, t.MaxDeviceMemoryMb);

        public TenantDefinition ToDefinition() => new(
            Id, Name, KeySha256 ?? [], Weight, RequestsPerSecond, Burst, MaxConcurrent, MaxQueued, MaxModels, MaxReplicas, MaxDeviceMemoryMb);
    }
}
