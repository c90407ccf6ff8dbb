using Grpc.AspNetCore.HealthChecks;
using Grpc.AspNetCore.Server.Model;
using Serve.Gateway.Hosting;
using Serve.Gateway.Security;

namespace Serve.Gateway.Grpc;

/// <summary>
/// gRPC on its two listeners, as TorchServe has them: inference (TorchServe's and the Open Inference
/// Protocol's services, the latter under KServe's name and TorchServe's) and management. Health and reflection answer on both.
/// </summary>
public static class GrpcHosting
{
    public static IServiceCollection AddServeGrpc(this IServiceCollection services, GatewayOptions options)
    {
        services.AddGrpc(grpc =>
        {
            // TorchServe's limits: max_request_size for what arrives, max_response_size for what leaves.
            grpc.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, options.MaxRequestSize);
            grpc.MaxSendMessageSize = (int)Math.Min(int.MaxValue, options.MaxResponseSize);
        });
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(health =>
        {
            // The empty name is the whole server, as for orchestrators' probes.
            health.Services.Map(string.Empty, result => result.Name == ServeHealthChecks.Ready);
            health.Services.Map(OipServiceName, result => result.Name == ServeHealthChecks.Ready);
            health.Services.Map(TorchServeOipService.ServiceName, result => result.Name == ServeHealthChecks.Ready);
            health.Services.Map(TorchServeInferenceServiceName, result => result.Name == ServeHealthChecks.Healthy);
            health.Services.Map(TorchServeManagementServiceName, result => result.Name == ServeHealthChecks.Live);
        }).AddServeHealthChecks();
        services.AddSingleton<GrpcInference>();
        // TorchServe's name for the OIP service, answered by the same implementation.
        services.AddSingleton<IServiceMethodProvider<OipInferenceService>, TorchServeOipService>();
        return services;
    }

    public static WebApplication MapServeGrpc(this WebApplication app)
    {
        app.MapGrpcService<TorchServeInferenceService>().OnListener(ListenerKind.GrpcInference);
        app.MapGrpcService<OipInferenceService>().OnListener(ListenerKind.GrpcInference);
        app.MapGrpcService<TorchServeManagementService>().OnListener(ListenerKind.GrpcManagement);
        // Health answers without a key, as /ping and /v2/health/* do: probes carry no keys.
        app.MapGrpcHealthChecksService().OnListener(ListenerKind.GrpcInference, ListenerKind.GrpcManagement).WithoutKey();
        app.MapGrpcReflectionService().OnListener(ListenerKind.GrpcInference, ListenerKind.GrpcManagement);
        return app;
    }

    private static readonly string OipServiceName = Oip.GRPCInferenceService.Descriptor.FullName;
    private static readonly string TorchServeInferenceServiceName = TorchServe.InferenceAPIsService.Descriptor.FullName;
    private static readonly string TorchServeManagementServiceName = Management.ManagementAPIsService.Descriptor.FullName;
}
