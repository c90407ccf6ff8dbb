using System.Text.Json.Nodes;
using Serve.Gateway.Metrics;
using static Serve.Gateway.Endpoints.OpenApi;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// The OpenAPI description of the metrics listener: <see cref="MetricsApi"/>'s <c>GET /metrics</c>, which
/// needs no key. Keep it beside the endpoint: a test compares it with what is mapped.
/// </summary>
internal static class MetricsApiDescription
{
    public static string Describe(JsonObject paths)
    {
        var filter = Query(MetricsApi.NameFilter, ArrayOf(Str("A metric family's name."),
            "Only these families, one name per parameter (TorchServe's filter); a name Serve does not export yields nothing."));
        // Repeated parameters, as TorchServe reads them: name[]=a&name[]=b.
        filter["style"] = "form";
        filter["explode"] = true;
        paths["/metrics"] = new JsonObject
        {
            ["get"] = WithoutKey(Operation("metrics",
                "This gateway's metrics in Prometheus' text format 0.0.4: TorchServe's families and Serve's own (README, Metrics). No key needed.",
                [filter],
                (200, new JsonObject
                {
                    ["description"] = "The families, sorted by name.",
                    ["content"] = new JsonObject { ["text/plain"] = new JsonObject { ["schema"] = new JsonObject { ["type"] = "string" } } },
                }))),
        };
        return "Serve metrics API";
    }
}
