using Grpc.Core;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Grpc.Management;
using Serve.Gateway.Management;

namespace Serve.Gateway.Grpc;

/// <summary>
/// TorchServe's gRPC management service (<c>org.pytorch.serve.grpc.management.ManagementAPIsService</c>): the
/// HTTP management API's operations and rules (<see cref="ManagementOperations"/>), with the same JSON in
/// <c>msg</c>. Zero or empty fields mean the default, as in TorchServe.
/// </summary>
public sealed class TorchServeManagementService(ManagementOperations operations) : ManagementAPIsService.ManagementAPIsServiceBase
{
    public override Task<ManagementResponse> DescribeModel(DescribeModelRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(operations.Describe(request.ModelName, GrpcInference.Optional(request.ModelVersion))));

    public override Task<ManagementResponse> ListModels(ListModelsRequest request, ServerCallContext context) =>
        Task.FromResult(Answer(operations.List(request.Limit, request.NextPageToken)));

    public override async Task<ManagementResponse> RegisterModel(RegisterModelRequest request, ServerCallContext context)
    {
        var parameters = new RegisterParameters(
            GrpcInference.Optional(request.Url), GrpcInference.Optional(request.ModelName), ModelVersion: null, GrpcInference.Optional(request.Handler),
            Positive(request.BatchSize), Positive(request.MaxBatchDelay), Positive(request.InitialWorkers), Positive(request.ResponseTimeout),
            Positive(request.StartupTimeout), request.Synchronous, PlacementSettings.None)
        {
            Runtime = GrpcInference.Optional(request.Runtime),
        };
        return Answer(await operations.RegisterAsync(parameters, context.CancellationToken));
    }

    public override async Task<ManagementResponse> ScaleWorker(ScaleWorkerRequest request, ServerCallContext context)
    {
        var min = request.MinWorker > 0 ? request.MinWorker : 1;
        var max = request.MaxWorker > 0 ? request.MaxWorker : min;
        return Answer(await operations.ScaleAsync(
            request.ModelName, GrpcInference.Optional(request.ModelVersion), min, max, request.Synchronous, context.CancellationToken));
    }

    public override async Task<ManagementResponse> SetDefault(SetDefaultRequest request, ServerCallContext context) =>
        Answer(await operations.SetDefaultAsync(request.ModelName, request.ModelVersion, context.CancellationToken));

    public override async Task<ManagementResponse> UnregisterModel(UnregisterModelRequest request, ServerCallContext context) =>
        Answer(await operations.UnregisterAsync(request.ModelName, GrpcInference.Optional(request.ModelVersion), context.CancellationToken));

    private static ManagementResponse Answer(ManagementOutcome outcome) =>
        outcome.Error is { } error ? throw ErrorTable.Rpc(error) : new ManagementResponse { Msg = outcome.ToMessage() };

    /// <summary>TorchServe's rule for gRPC numbers: zero or less means "use the default".</summary>
    private static int? Positive(int value) => value > 0 ? value : null;
}
