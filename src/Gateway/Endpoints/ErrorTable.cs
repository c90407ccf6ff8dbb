using System.Text.Encodings.Web;
using System.Text.Json;
using Grpc.Core;
using Serve.Actors.Protocol;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// The one table from failure kind to HTTP status, TorchServe error type and gRPC status code, so every
/// endpoint of every protocol reports the same failure the same way.
/// </summary>
public static class ErrorTable
{
    public static (int Status, string Type, StatusCode Grpc) Of(ServeErrorKind kind) => kind switch
    {
        ServeErrorKind.BadInput => (StatusCodes.Status400BadRequest, "BadRequestException", StatusCode.InvalidArgument),
        ServeErrorKind.NotFound => (StatusCodes.Status404NotFound, "ModelNotFoundException", StatusCode.NotFound),
        ServeErrorKind.Conflict => (StatusCodes.Status409Conflict, "ConflictStatusException", StatusCode.AlreadyExists),
        ServeErrorKind.Forbidden => (StatusCodes.Status403Forbidden, "InvalidModelVersionException", StatusCode.FailedPrecondition),
        ServeErrorKind.Disabled => (StatusCodes.Status405MethodNotAllowed, "MethodNotAllowedException", StatusCode.PermissionDenied),
        ServeErrorKind.Overloaded => (StatusCodes.Status503ServiceUnavailable, "ServiceUnavailableException", StatusCode.Unavailable),
        ServeErrorKind.Unavailable => (StatusCodes.Status503ServiceUnavailable, "ServiceUnavailableException", StatusCode.Unavailable),
        ServeErrorKind.DeadlineExceeded => (StatusCodes.Status504GatewayTimeout, "RequestTimeoutException", StatusCode.DeadlineExceeded),
        ServeErrorKind.Cancelled => (StatusCodes.Status499ClientClosedRequest, "RequestCancelledException", StatusCode.Cancelled),
        ServeErrorKind.PayloadTooLarge => (StatusCodes.Status413PayloadTooLarge, "RequestTooLargeException", StatusCode.ResourceExhausted),
        ServeErrorKind.ResourceExhausted => (StatusCodes.Status507InsufficientStorage, "OutOfResourcesException", StatusCode.ResourceExhausted),
        ServeErrorKind.ModelFailed => (StatusCodes.Status500InternalServerError, "InternalServerException", StatusCode.Internal),
        ServeErrorKind.Unauthenticated => (StatusCodes.Status401Unauthorized, "InvalidKeyException", StatusCode.Unauthenticated),
        ServeErrorKind.PermissionDenied => (StatusCodes.Status403Forbidden, "PermissionDeniedException", StatusCode.PermissionDenied),
        ServeErrorKind.QuotaExceeded => (StatusCodes.Status429TooManyRequests, "QuotaExceededException", StatusCode.ResourceExhausted),
        _ => (StatusCodes.Status500InternalServerError, "InternalServerException", StatusCode.Internal),
    };

    public static (int Status, string Type) Http(ServeErrorKind kind)
    {
        var (status, type, _) = Of(kind);
        return (status, type);
    }

    public static StatusCode Grpc(ServeErrorKind kind) => Of(kind).Grpc;

    /// <summary>
    /// The HTTP status a gRPC code stands for, for counting a gRPC call as its HTTP twin would be: read back
    /// from the table, 200 for OK, 500 for a code nothing here raises. RESOURCE_EXHAUSTED stands for three
    /// statuses; it counts as 429 (quotas, the usual cause), and UNIMPLEMENTED (an rpc this server does not
    /// have) as 404, like an HTTP path it does not have.
    /// </summary>
    public static int HttpStatus(StatusCode grpc) => grpc == StatusCode.OK
        ? StatusCodes.Status200OK
        : HttpByGrpc.GetValueOrDefault(grpc, StatusCodes.Status500InternalServerError);

    private static readonly Dictionary<StatusCode, int> HttpByGrpc = new Dictionary<StatusCode, int>
    {
        [StatusCode.ResourceExhausted] = StatusCodes.Status429TooManyRequests,
        [StatusCode.Unimplemented] = StatusCodes.Status404NotFound,
    }.Concat(Enum.GetValues<ServeErrorKind>().Select(Of).Select(e => KeyValuePair.Create(e.Grpc, e.Status)))
        .DistinctBy(e => e.Key)
        .ToDictionary();

    /// <summary>A failure as a gRPC call's status.</summary>
    public static RpcException Rpc(ServeError error) => new(new Status(Grpc(error.Kind), error.Message));

    /// <summary>
    /// Answers a request refused before it reached an endpoint (keys, quotas): gRPC calls get a trailers-only
    /// answer with the code and message, everything else TorchServe's error body.
    /// </summary>
    public static Task RefuseAsync(HttpContext context, ServeError error)
    {
        if (context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true)
        {
            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = ((int)Grpc(error.Kind)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.Headers["grpc-message"] = Uri.EscapeDataString(error.Message);
            return Task.CompletedTask;
        }

        return TorchServe(error).ExecuteAsync(context);
    }

    /// <summary>TorchServe's error body: <c>{"code": 404, "type": "ModelNotFoundException", "message": "..."}</c>.</summary>
    public static IResult TorchServe(ServeError error)
    {
        var (status, type) = Http(error.Kind);
        return TorchServe(status, type, error.Message);
    }

    public static IResult TorchServe(int status, string type, string message) =>
        Results.Json(new TorchServeError(status, type, message), ErrorJson.Options, statusCode: status);

    /// <summary>The Open Inference Protocol's error body: <c>{"error": "..."}</c>.</summary>
    public static IResult Oip(ServeError error) =>
        Results.Json(new OipError(error.Message), ErrorJson.Options, statusCode: Http(error.Kind).Status);

    public static IResult Oip(int status, string message) =>
        Results.Json(new OipError(message), ErrorJson.Options, statusCode: status);

    private sealed record TorchServeError(int Code, string Type, string Message);

    private sealed record OipError(string Error);
}

internal static class ErrorJson
{
    // Error messages quote names and paths; keep them readable (the body is JSON, never HTML).
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
