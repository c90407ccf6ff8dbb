using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Security;

/// <summary>Endpoint metadata: answered without a key (liveness and readiness, the API descriptions).</summary>
public sealed record NoKeyRequired;

/// <summary>Endpoint metadata: needs this key rather than its listener's (<c>/token</c> needs the API key).</summary>
public sealed record KeyRequired(KeyKind Kind);

/// <summary>
/// TorchServe's token authorization, on by default: <c>Authorization: Bearer &lt;key&gt;</c> on HTTP, the
/// <c>authorization</c> metadata on gRPC (the same header), with the inference key on the inference listeners
/// and the management key on the management listeners. A missing, wrong or expired key gets 401
/// (UNAUTHENTICATED on gRPC) and one message whatever was wrong, so an answer never says which part failed.
/// </summary>
public static class TokenAuthorization
{
    public static TBuilder WithoutKey<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(new NoKeyRequired());

    /// <summary>
    /// Checks each request's key and records whose it is (<see cref="TenantContext"/>): the server's own keys are
    /// the admin tenant's; a configured tenant's key opens the inference listeners for that tenant. Runs after
    /// routing, so it knows the endpoint and its listener.
    /// </summary>
    public static IApplicationBuilder UseTokenAuthorization(this IApplicationBuilder app)
    {
        var keys = app.ApplicationServices.GetRequiredService<KeyCheck>();
        return app.Use(async (context, next) =>
        {
            if (keys.TenantOf(context) is { } tenant)
            {
                TenantContext.Set(context, tenant);
                await next(context);
                return;
            }

            await RefuseAsync(context);
        });
    }

    /// <summary>The key <paramref name="context"/>'s endpoint needs; null when it needs none.</summary>
    public static KeyKind? RequiredKey(HttpContext context)
    {
        var endpoint = context.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<NoKeyRequired>() is not null)
        {
            return null;
        }

        if (endpoint?.Metadata.GetMetadata<KeyRequired>() is { } required)
        {
            return required.Kind;
        }

        // Unmatched requests need the listener's key too, so probing paths learns nothing without one.
        return Listeners.Of(context) switch
        {
            ListenerKind.Inference or ListenerKind.GrpcInference => KeyKind.Inference,
            ListenerKind.Management or ListenerKind.GrpcManagement => KeyKind.Management,
            _ => null,
        };
    }

    /// <summary>The key of an <c>Authorization: Bearer &lt;key&gt;</c> header, else null.</summary>
    public static string? Bearer(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        return header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) && header.Length > scheme.Length
            ? header[scheme.Length..].Trim()
            : null;
    }

    private static Task RefuseAsync(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return ErrorTable.RefuseAsync(context, ServeErrors.TokenAuthorizationFailed);
    }
}

/// <summary>
/// Whose key a request presents, checked against the key its endpoint needs: the server's own keys are the
/// admin tenant's, a tenant's key opens the inference listeners for that tenant. Used for every request by
/// <see cref="TokenAuthorization.UseTokenAuthorization"/>, and again for every message of a long-lived
/// stream, so a key that expires or is revoked while the stream is open stops working there too.
/// </summary>
public sealed class KeyCheck(IOptions<SecurityOptions> security, TenantDirectory tenants, IServiceProvider services)
{
    private readonly bool _disabled = security.Value.DisableTokenAuthorization;

    // The key file is only read when token authorization is on.
    private readonly Lazy<ApiKeys> _keys = new(services.GetRequiredService<ApiKeys>);

    /// <summary>The caller's tenant; null when the key is missing, wrong or expired for this endpoint.</summary>
    public Tenant? TenantOf(HttpContext context)
    {
        var presented = TokenAuthorization.Bearer(context.Request);
        if (_disabled)
        {
            // No checks; a tenant's key still says whose request it is.
            return tenants.ByKey(presented) ?? Tenant.Admin;
        }

        var required = TokenAuthorization.RequiredKey(context);
        if (required is not { } kind || _keys.Value.Accepts(kind, presented))
        {
            return Tenant.Admin;
        }

        return kind == KeyKind.Inference ? tenants.ByKey(presented) : null;
    }
}
