using System.Text.Encodings.Web;
using System.Text.Json;
using Serve.Actors.Protocol;

namespace Serve.Gateway.Apis;

/// <summary>
/// The one table from failure kind to HTTP status and TorchServe error type (gRPC codes join it later), so
/// every endpoint reports the same failure the same way.
/// </summary>
public static class ErrorTable
{
    public static (int Status, string Type) Http(ServeErrorKind kind) => kind switch
    {
        ServeErrorKind.BadInput => (StatusCodes.Status400BadRequest, "BadRequestException"),
        ServeErrorKind.NotFound => (StatusCodes.Status404NotFound, "ModelNotFoundException"),
        ServeErrorKind.Conflict => (StatusCodes.Status409Conflict, "ConflictStatusException"),
        ServeErrorKind.Forbidden => (StatusCodes.Status403Forbidden, "InvalidModelVersionException"),
        ServeErrorKind.Disabled => (StatusCodes.Status405MethodNotAllowed, "MethodNotAllowedException"),
        ServeErrorKind.Overloaded => (StatusCodes.Status503ServiceUnavailable, "ServiceUnavailableException"),
        ServeErrorKind.Unavailable => (StatusCodes.Status503ServiceUnavailable, "ServiceUnavailableException"),
        ServeErrorKind.DeadlineExceeded => (StatusCodes.Status504GatewayTimeout, "RequestTimeoutException"),
        ServeErrorKind.Cancelled => (StatusCodes.Status499ClientClosedRequest, "RequestCancelledException"),
        ServeErrorKind.PayloadTooLarge => (StatusCodes.Status413PayloadTooLarge, "RequestTooLargeException"),
        ServeErrorKind.ResourceExhausted => (StatusCodes.Status507InsufficientStorage, "OutOfResourcesException"),
        ServeErrorKind.ModelFailed => (StatusCodes.Status500InternalServerError, "InternalServerException"),
        _ => (StatusCodes.Status500InternalServerError, "InternalServerException"),
    };

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
