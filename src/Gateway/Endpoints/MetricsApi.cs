using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Serve.Gateway.Hosting;
using Serve.Gateway.Metrics;
using Serve.Gateway.Security;
using GrpcCode = Grpc.Core.StatusCode;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// TorchServe's metrics API on the metrics listener: <c>GET /metrics[?name[]=a&amp;name[]=b]</c> in
/// Prometheus' text format, without a key (as TorchServe; the listener is on loopback by default), unless
/// <c>enable_metrics_api=false</c>. Also counts every response of the inference and management listeners by
/// status class.
/// </summary>
public static class MetricsApi
{
    /// <summary>TorchServe's filter: only the families named, each in its own <c>name[]</c> parameter.</summary>
    public const string NameFilter = "name[]";

    public static IEndpointRouteBuilder MapMetricsApi(this IEndpointRouteBuilder app)
    {
        if (app.ServiceProvider.GetRequiredService<IOptions<GatewayOptions>>().Value.EnableMetricsApi)
        {
            app.MapGet("/metrics", (HttpRequest request, ServeMetrics metrics) =>
                    Results.Text(metrics.Render(request.Query[NameFilter]), PrometheusText.ContentType))
                .OnListener(ListenerKind.Metrics)
                .WithoutKey();
        }

        return app;
    }

    /// <summary>
    /// Counts each response of the inference and management listeners, HTTP and gRPC, by status class
    /// (TorchServe's Requests2XX/4XX/5XX). First in the pipeline, so it sees the status that was finally sent,
    /// refusals and error pages included. A gRPC call counts as the HTTP status its code stands for.
    /// </summary>
    public static IApplicationBuilder UseResponseCounting(this IApplicationBuilder app)
    {
        var metrics = app.ApplicationServices.GetRequiredService<ServeMetrics>();
        return app.Use(async (context, next) =>
        {
            if (Listeners.Of(context) is null or ListenerKind.Metrics)
            {
                await next(context);
                return;
            }

            var failed = true;
            try
            {
                await next(context);
                failed = false;
            }
            finally
            {
                metrics.RecordResponse(failed ? StatusCodes.Status500InternalServerError : StatusOf(context));
            }
        });
    }

    /// <summary>The response's HTTP status; for gRPC, the status its <c>grpc-status</c> (trailers, or headers when trailers-only) stands for.</summary>
    private static int StatusOf(HttpContext context)
    {
        var response = context.Response;
        if (response.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) != true)
        {
            return response.StatusCode;
        }

        var code = response.Headers["grpc-status"].ToString() is { Length: > 0 } inHeaders
            ? inHeaders
            : context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-status"].ToString();
        return int.TryParse(code, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? ErrorTable.HttpStatus((GrpcCode)value)
            : StatusCodes.Status500InternalServerError;
    }
}
