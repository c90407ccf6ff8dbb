using Serve.Actors.Protocol;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// TorchServe's key rotation on the management listener: <c>GET /token?type=management|inference</c> with the
/// API key replaces that key (and its expiry) and rewrites the key file. Serve answers the new key.
/// </summary>
public static class TokenApi
{
    public static IEndpointRouteBuilder MapTokenApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/token", (string? type, ApiKeys keys) =>
        {
            KeyKind? kind = type switch
            {
                "management" => KeyKind.Management,
                "inference" => KeyKind.Inference,
                _ => null,
            };
            if (kind is not { } rotated)
            {
                return ErrorTable.TorchServe(new ServeError(ServeErrorKind.BadInput, "type must be 'management' or 'inference'"));
            }

            var (key, expires) = keys.Rotate(rotated);
            return Results.Json(new Dictionary<string, object>
            {
                [ApiKeys.Name(rotated)] = new Dictionary<string, string?> { ["key"] = key, ["expiration time"] = expires?.UtcDateTime.ToString("O") },
            });
        }).OnListener(ListenerKind.Management).WithMetadata(new KeyRequired(KeyKind.Api));
        return app;
    }
}
