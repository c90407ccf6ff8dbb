using System.Net;
using Microsoft.Extensions.Options;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Security;

/// <summary>
/// Says at start-up where the keys are, and warns about every setting that opens Serve wider than its
/// defaults: token authorization turned off, a listener on a wildcard or public address (the cluster port
/// is checked on every node, by <c>ClusterExposureWarning</c>).
/// </summary>
public sealed partial class SecurityStartup(
    IOptions<SecurityOptions> security, IOptions<GatewayOptions> gateway, IServiceProvider services, ILogger<SecurityStartup> logger)
    : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (security.Value.DisableTokenAuthorization)
        {
            LogTokensDisabled(logger);
        }
        else
        {
            LogKeyFile(logger, services.GetRequiredService<ApiKeys>().FilePath, security.Value.TokenExpirationMinutes);
        }

        var options = gateway.Value;
        foreach (var (kind, address) in ServeGatewayExtensions.Addresses(options))
        {
            var endpoint = Listeners.ParseAddress(address, kind);
            if (IPAddress.IsLoopback(endpoint.Address))
            {
                continue;
            }

            if (kind == ListenerKind.Metrics)
            {
                LogOpenMetrics(logger, address);
            }
            else
            {
                LogOpenListener(logger, kind, address);
            }
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "API keys are in {Path} (owner-only; the inference key: jq -r .inference.key {Path}); " +
                                                           "inference and management keys expire after {Minutes} minutes and are rotated with GET /token?type=... and the API key")]
    private static partial void LogKeyFile(ILogger logger, string path, double minutes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Token authorization is DISABLED (disable_token_authorization): anyone who can reach a " +
                                                       "listener can run inference and manage models")]
    private static partial void LogTokensDisabled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The {Listener} listener binds {Address}, not loopback: it is reachable from other hosts. " +
                                                       "Keep token authorization on and use TLS, or put it behind a proxy that does")]
    private static partial void LogOpenListener(ILogger logger, ListenerKind listener, string address);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The Metrics listener binds {Address}, not loopback: it answers without a key, and its " +
                                                       "figures name models and tenants. Let only your Prometheus reach it (firewall or proxy), " +
                                                       "or turn it off with enable_metrics_api=false")]
    private static partial void LogOpenMetrics(ILogger logger, string address);
}
