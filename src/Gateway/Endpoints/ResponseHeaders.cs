using System.Globalization;
using Serve.Actors.Protocol;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// Headers on inference responses: TorchServe's <c>x-request-id</c>, and which replica answered and where
/// its time went (queue and device, microseconds) for tracing slow requests.
/// </summary>
public static class ResponseHeaders
{
    public const string RequestId = "x-request-id";
    public const string Replica = "x-serve-replica";
    public const string QueueMicros = "x-serve-queue-us";
    public const string DeviceMicros = "x-serve-device-us";
    public const string BatchSize = "x-serve-batch-size";

    public static void Add(HttpResponse response, InferenceReply reply)
    {
        response.Headers[RequestId] = reply.RequestId;
        if (reply is InferenceSucceeded { Timing: var timing })
        {
            response.Headers[Replica] = timing.Replica;
            response.Headers[QueueMicros] = timing.QueueMicros.ToString(CultureInfo.InvariantCulture);
            response.Headers[DeviceMicros] = timing.DeviceMicros.ToString(CultureInfo.InvariantCulture);
            response.Headers[BatchSize] = timing.BatchSize.ToString(CultureInfo.InvariantCulture);
        }
    }
}
