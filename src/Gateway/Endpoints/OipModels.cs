using System.Reflection;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Inference;

namespace Serve.Gateway.Endpoints;

/// <summary>A model's Open Inference Protocol metadata, the same over REST and gRPC.</summary>
public sealed record OipModelMetadata(string Name, string[] Versions, string Platform, TensorSpec[] Inputs, TensorSpec[] Outputs);

/// <summary>
/// What the Open Inference Protocol's server and model endpoints answer, whatever the transport: server
/// metadata, model metadata and readiness from the catalog.
/// </summary>
public static class OipModels
{
    public const string ServerName = "serve";

    /// <summary>The binary tensor extension (REST) is the only extension Serve reports.</summary>
    public static readonly string[] Extensions = ["binary_tensor_data"];

    public static readonly string ServerVersion =
        typeof(OipModels).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static Result<OipModelMetadata> Metadata(CatalogState catalog, string model, string? version, string tenant)
    {
        if (ModelLookup.Find(catalog, model, version, out var entry, tenant) is { } notFound)
        {
            return notFound;
        }

        // Datatypes and shapes are learned from the first forward pass; any replica that has run knows them.
        var signature = entry!.Replicas.Select(r => r.Signature).FirstOrDefault(s => s is not null);
        return new OipModelMetadata(
            model,
            [.. catalog.VersionsOf(model).Where(e => e.Definition.VisibleTo(tenant)).Select(e => e.Definition.Version)],
            signature?.Platform ?? entry.Definition.Source.Platform,
            signature?.Inputs ?? [],
            signature?.Outputs ?? []);
    }

    /// <summary>The model version that answered (from the replica's id), else the one asked for.</summary>
    public static string? ServedVersion(InferenceSucceeded reply, string? asked) =>
        ReplicaId.TryParse(reply.Timing.Replica, out var replica) ? replica.Version : asked;

    /// <summary>Ready when a replica of that version is ready on a node that can be reached.</summary>
    public static Result<bool> Ready(CatalogState catalog, string model, string? version, string tenant)
    {
        if (ModelLookup.Find(catalog, model, version, out var entry, tenant) is { } notFound)
        {
            return notFound;
        }

        return entry!.Replicas.Any(r => r.State == ReplicaState.Ready && catalog.IsAvailable(r));
    }
}
