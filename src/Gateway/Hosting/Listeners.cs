using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Routing.Matching;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Serve.Gateway.Hosting;

/// <summary>The gateway's listeners, as TorchServe has them: three HTTP/1.1 and two gRPC (HTTP/2).</summary>
public enum ListenerKind
{
    Inference,
    Management,
    Metrics,
    GrpcInference,
    GrpcManagement,
}

/// <summary>Endpoint metadata: this endpoint answers only on connections accepted by one of these listeners.</summary>
public sealed record ListenerMetadata(ListenerKind[] Kinds);

/// <summary>
/// Each Kestrel listener tags the connections it accepts, and routing only matches endpoints of that
/// listener. The check is on the connection, not the Host header, so a management endpoint can never be
/// reached through the inference port however the request is addressed.
/// </summary>
public static class Listeners
{
    private const string ItemKey = "serve.listener";

    public static ListenerKind? Of(HttpContext context) =>
        context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(ItemKey, out var kind) == true
            ? kind as ListenerKind?
            : null;

    /// <summary>Tags a connection (Kestrel's connection middleware; tests set it the same way).</summary>
    public static void Tag(IDictionary<object, object?> connectionItems, ListenerKind kind) => connectionItems[ItemKey] = kind;

    /// <summary>
    /// Binds <paramref name="address"/>; an <c>https://</c> address serves TLS with <paramref name="certificate"/>
    /// (which must then be given) and nothing else.
    /// </summary>
    public static void Listen(KestrelServerOptions kestrel, string address, ListenerKind kind, Func<X509Certificate2>? certificate)
    {
        var endpoint = ParseAddress(address, kind);
        kestrel.Listen(endpoint, listen =>
        {
            // gRPC without TLS needs a listener that speaks only HTTP/2: one that offers both silently
            // serves HTTP/1.1, which gRPC clients refuse.
            listen.Protocols = IsGrpc(kind) ? HttpProtocols.Http2 : HttpProtocols.Http1;
            if (IsTls(address))
            {
                listen.UseHttps(certificate?.Invoke() ?? throw new OptionsValidationException(kind.ToString(), typeof(GatewayOptions),
                    [$"{kind} address '{address}' is https:// but no certificate is configured (Serve:Tls)"]));
            }

            listen.Use(next => connection =>
            {
                Tag(connection.Items, kind);
                return next(connection);
            });
        });
    }

    public static bool IsGrpc(ListenerKind kind) => kind is ListenerKind.GrpcInference or ListenerKind.GrpcManagement;

    public static bool IsTls(string address) => address.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses TorchServe's <c>http(s)://host:port</c> address form.</summary>
    public static IPEndPoint ParseAddress(string address, ListenerKind kind)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/")
        {
            throw new OptionsValidationException(kind.ToString(), typeof(GatewayOptions),
                [$"{kind} address '{address}' must look like http://127.0.0.1:8080 (or https:// with a certificate in Serve:Tls)"]);
        }

        IPAddress ip;
        if (uri.Host is "localhost")
        {
            ip = IPAddress.Loopback;
        }
        else if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out ip!))
        {
            throw new OptionsValidationException(kind.ToString(), typeof(GatewayOptions),
                [$"{kind} address '{address}' must name an IP address (or localhost)"]);
        }

        return new IPEndPoint(ip, uri.Port);
    }

    public static TBuilder OnListener<TBuilder>(this TBuilder builder, params ListenerKind[] kinds)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ListenerMetadata(kinds));
}

/// <summary>Drops candidate endpoints that belong to another listener than the connection's.</summary>
public sealed class ListenerMatcherPolicy : MatcherPolicy, IEndpointSelectorPolicy
{
    public override int Order => 0;

    public bool AppliesToEndpoints(IReadOnlyList<Endpoint> endpoints) =>
        endpoints.Any(e => e.Metadata.GetMetadata<ListenerMetadata>() is not null);

    public Task ApplyAsync(HttpContext httpContext, CandidateSet candidates)
    {
        var listener = Listeners.Of(httpContext);
        for (var i = 0; i < candidates.Count; i++)
        {
            var required = candidates[i].Endpoint.Metadata.GetMetadata<ListenerMetadata>();
            if (required is not null && (listener is not { } kind || !required.Kinds.Contains(kind)))
            {
                candidates.SetValidity(i, false);
            }
        }

        return Task.CompletedTask;
    }
}
