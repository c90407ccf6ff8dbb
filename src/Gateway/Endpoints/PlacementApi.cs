using Akka.Actor;
using Akka.Cluster;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Hosting;
using Serve.Gateway.Inference;
using Serve.Gateway.Management;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// Serve's own management endpoints (TorchServe has none of these): where a model version's replicas may
/// run (<c>PUT /models/{m}/{v}/placement</c>) and what the cluster looks like (<c>GET /cluster</c>).
/// </summary>
public static class PlacementApi
{
    public static IEndpointRouteBuilder MapPlacementApi(this IEndpointRouteBuilder app)
    {
        app.MapPut("/models/{model}/{version}/placement", PlaceAsync).OnListener(ListenerKind.Management);
        app.MapGet("/cluster", (ActorSystem system, CatalogView catalog) => Results.Json(Describe(Cluster.Get(system).State, catalog.Current)))
            .OnListener(ListenerKind.Management);
        return app;
    }

    /// <summary>
    /// Changes the placement: the parameters given replace those settings, the others stay. Replicas that
    /// must move are replaced first and retire once their replacements serve; with <c>synchronous=true</c>
    /// the answer waits for that.
    /// </summary>
    private static async Task<IResult> PlaceAsync(
        string model, string version, HttpRequest request, IManagementClient client, CatalogView catalog, IOptions<GatewayOptions> options)
    {
        var cancellation = request.HttpContext.RequestAborted;
        var problems = new List<string>();
        var given = PlacementSettings.Read(name => request.Query.TryGetValue(name, out var value) ? value.ToString() : null, problems);
        if (ManagementApi.Malformed(request, booleans: ["synchronous"]) is { } malformed)
        {
            problems.Add(malformed.Message);
        }

        if (problems.Count > 0)
        {
            return ErrorTable.TorchServe(new ServeError(ServeErrorKind.BadInput, string.Join("; ", problems)));
        }

        if (ModelLookup.Find(catalog.Current, model, version, out var entry) is { } notFound)
        {
            return ErrorTable.TorchServe(notFound);
        }

        var definition = entry!.Definition;
        var result = await client.SendAsync(new ChangePlacement(model, version, given.Nodes, given.Devices,
            given.Spread is { } spread ? (spread ? 1 : 0) : -1, given.DeviceMemoryMb ?? -1), cancellation);
        if (result.Error is not null || !ManagementApi.BoolQuery(request, "synchronous", fallback: false))
        {
            return result.Error is { } error ? ErrorTable.TorchServe(error) : Results.Json(new { status = result.Message });
        }

        var settled = await client.WaitForReplicasAsync(definition.Key, definition.Replicas,
            TimeSpan.FromSeconds(options.Value.DefaultStartupTimeout), cancellation);
        return settled.Ready
            ? Results.Json(new { status = result.Message })
            : Results.Json(new { status = "Replicas are moving..." }, statusCode: StatusCodes.Status206PartialContent);
    }

    /// <summary>
    /// Where the driver does not measure a device (CPU slots), what its loaded replicas measured: their
    /// parameters and buffers, in MB rounded up; null while none has reported.
    /// </summary>
    private static long? MeasuredByReplicas(IEnumerable<(CatalogEntry Entry, ReplicaAssignment Assignment)> replicas)
    {
        var measured = replicas
            .Select(x => x.Entry.Replicas.FirstOrDefault(r => r.Replica.Index == x.Assignment.Index)?.MemoryBytes ?? -1)
            .Where(bytes => bytes >= 0)
            .ToList();
        return measured.Count == 0 ? null : (measured.Sum() + (1 << 20) - 1) >> 20;
    }

    /// <summary>Members with roles and status; each worker's devices with memory and the replicas on them.</summary>
    private static object Describe(ClusterEvent.CurrentClusterState cluster, CatalogState catalog)
    {
        var unreachable = cluster.Unreachable.Select(m => m.Address).ToHashSet();
        var replicas = catalog.Entries
            .SelectMany(e => e.Assignments.Select(a => (Entry: e, Assignment: a)))
            .ToLookup(x => (x.Assignment.NodeAddress, x.Assignment.Device));
        return new
        {
            members = cluster.Members.OrderBy(m => m.Address.ToString(), StringComparer.Ordinal).Select(member =>
            {
                var address = member.Address.ToString();
                var inventory = catalog.Snapshot.Nodes.FirstOrDefault(n => n.Address == address);
                return new
                {
                    address,
                    name = inventory?.Name,
                    roles = member.Roles.Order(StringComparer.Ordinal).ToArray(),
                    status = unreachable.Contains(member.Address) ? "Unreachable" : member.Status.ToString(),
                    devices = inventory?.Devices.Select(device =>
                    {
                        var here = replicas[(address, device.Name)].ToList();
                        return new
                        {
                            name = device.Name,
                            kind = device.Name.StartsWith("cuda", StringComparison.Ordinal) ? "cuda" : "cpu",
                            totalMemoryMb = device.TotalMemoryMb >= 0 ? device.TotalMemoryMb : (long?)null,
                            declaredMemoryMb = here.Sum(x => (long)x.Entry.Definition.DeviceMemoryMb),
                            usedMemoryMb = device.UsedMemoryMb >= 0 ? device.UsedMemoryMb : MeasuredByReplicas(here),
                            replicas = here.Select(x => new
                            {
                                id = new ReplicaId(x.Entry.Definition.Name, x.Entry.Definition.Version, x.Assignment.Index).EntityId,
                                status = x.Entry.Replicas.FirstOrDefault(r => r.Replica.Index == x.Assignment.Index)?.State.ToString().ToUpperInvariant()
                                         ?? "PLACED",
                                retiring = x.Assignment.Retiring,
                                declaredMemoryMb = x.Entry.Definition.DeviceMemoryMb,
                            }).ToArray(),
                        };
                    }).ToArray() ?? [],
                };
            }).ToArray(),
            unplaced = catalog.Entries.Where(e => e.Unplaced is not null)
                .Select(e => new { model = e.Definition.Name, version = e.Definition.Version, reason = e.Unplaced }).ToArray(),
        };
    }
}
