using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Inference;
using Serve.Gateway.Metrics;
using Serve.Gateway.Security;

namespace Serve.Gateway.Grpc;

/// <summary>
/// The steps every gRPC inference call takes, whatever its service: find the model once, run the input
/// on a replica within the call's deadline and cancellation, and turn a failure into the error table's
/// status code. Unary calls also get the HTTP API's tracing headers as response metadata.
/// </summary>
public sealed class GrpcInference(IInferenceClient client, CatalogView catalog, ServeMetrics metrics)
{
    public CatalogView Catalog => catalog;

    /// <summary>gRPC's rule for optional strings (TorchServe's too): empty means "not given".</summary>
    public static string? Optional(string value) => string.IsNullOrEmpty(value) ? null : value;

    /// <summary>
    /// The call's one lookup: finds <paramref name="model"/> as the calling tenant sees it, before the input
    /// is read, as the HTTP APIs do; null when found, else why it cannot be asked (no name, unknown model or version).
    /// </summary>
    public ServeError? Lookup(string model, string version, ServerCallContext context, out CatalogEntry? entry)
    {
        entry = null;
        return string.IsNullOrEmpty(model)
            ? ServeErrors.ModelNameRequired
            : ModelLookup.Find(catalog.Current, model, Optional(version), out entry, TenantOf(context));
    }

    /// <summary>The calling tenant's id, as token authorization found it.</summary>
    public static string TenantOf(ServerCallContext context) => TenantContext.Of(context.GetHttpContext()).Id;

    /// <summary>The reply, or why not as a <see cref="ServeError"/> (never throws for a model's or a client's fault).</summary>
    public async Task<Result<InferenceSucceeded>> TryRunAsync(
        CatalogEntry model, InferenceInput input, ServerCallContext context, bool sendHeaders)
    {
        var started = Stopwatch.GetTimestamp();
        // gRPC sends no deadline as DateTime.MaxValue.
        DateTimeOffset? deadline = context.Deadline == DateTime.MaxValue ? null : new DateTimeOffset(context.Deadline.ToUniversalTime());
        var tenant = TenantContext.Of(context.GetHttpContext());
        var reply = await client.InferAsync(model, input, tenant.Tag, deadline, context.CancellationToken);
        metrics.RecordInference(tenant.Id, model, started, reply);
        if (sendHeaders)
        {
            await context.WriteResponseHeadersAsync(Headers(reply));
        }

        return reply switch
        {
            InferenceSucceeded succeeded => succeeded,
            InferenceFailed failed => failed.Error,
            _ => ServeErrors.UnexpectedReply(reply),
        };
    }

    /// <summary>Like <see cref="TryRunAsync"/>, a failure thrown as the call's status.</summary>
    public async Task<InferenceSucceeded> RunAsync(CatalogEntry model, InferenceInput input, ServerCallContext context)
    {
        var (reply, error) = await TryRunAsync(model, input, context, sendHeaders: true);
        return reply ?? throw ErrorTable.Rpc(error!);
    }

    private static Metadata Headers(InferenceReply reply)
    {
        var headers = new Metadata { { ResponseHeaders.RequestId, reply.RequestId } };
        if (reply is InferenceSucceeded { Timing: var timing })
        {
            headers.Add(ResponseHeaders.Replica, timing.Replica);
            headers.Add(ResponseHeaders.QueueMicros, timing.QueueMicros.ToString(CultureInfo.InvariantCulture));
            headers.Add(ResponseHeaders.DeviceMicros, timing.DeviceMicros.ToString(CultureInfo.InvariantCulture));
            headers.Add(ResponseHeaders.BatchSize, timing.BatchSize.ToString(CultureInfo.InvariantCulture));
        }

        return headers;
    }
}
