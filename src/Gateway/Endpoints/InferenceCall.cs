using System.Diagnostics;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Inference;
using Serve.Gateway.Metrics;
using Serve.Gateway.Security;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// The steps every HTTP inference endpoint takes, whatever its protocol: find the model once for the
/// calling tenant (refusing an unknown one before reading the body), read and check the input, run it on a
/// replica, record it, add the response headers. Each protocol brings its own input reader and its own
/// error body. gRPC's twin is <see cref="Grpc.GrpcInference"/>.
/// </summary>
public static class InferenceCall
{
    public delegate Task<Result<InferenceInput>> InputReader(HttpRequest request, CancellationToken cancellationToken);

    /// <summary>The successful reply, or the error response already rendered in the protocol's form.</summary>
    public static async Task<(InferenceSucceeded? Reply, IResult? Error)> RunAsync(
        HttpContext context, string model, string? version, CatalogView catalog, IInferenceClient client,
        InputReader readInput, Func<ServeError, IResult> renderError)
    {
        var started = Stopwatch.GetTimestamp();
        var tenant = TenantContext.Of(context);
        if (ModelLookup.Find(catalog.Current, model, version, out var entry, tenant.Id) is { } notFound)
        {
            return (null, renderError(notFound));
        }

        var cancellation = context.RequestAborted;
        var (input, problem) = await readInput(context.Request, cancellation);
        if (problem is not null)
        {
            return (null, renderError(problem));
        }

        var reply = await client.InferAsync(entry!, input!, tenant.Tag, deadline: null, cancellation);
        context.RequestServices.GetRequiredService<ServeMetrics>().RecordInference(tenant.Id, entry!, started, reply);
        ResponseHeaders.Add(context.Response, reply);
        if (reply is InferenceFailed { Error.Kind: ServeErrorKind.QuotaExceeded })
        {
            // A tenant's queue share is full: it frees up as the replica works, so a retry soon can succeed.
            context.Response.Headers.RetryAfter = "1";
        }

        return reply switch
        {
            InferenceSucceeded succeeded => (succeeded, null),
            InferenceFailed failed => (null, renderError(failed.Error)),
            _ => (null, renderError(ServeErrors.UnexpectedReply(reply))),
        };
    }
}
