using Grpc.Core;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Grpc.Oip;

namespace Serve.Gateway.Grpc;

/// <summary>
/// The Open Inference Protocol's gRPC service (<c>inference.GRPCInferenceService</c>): the same answers as the
/// REST API, with tensors as typed contents or raw bytes. Raw inputs get raw outputs.
/// </summary>
public sealed class OipInferenceService(GrpcInference inference, RequestBodies bodies)
    : GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = inference.Catalog.Current.AllModelsReady });

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerMetadataResponse
        {
            Name = OipModels.ServerName,
            Version = OipModels.ServerVersion,
            Extensions = { OipModels.Extensions },
        });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        var (ready, error) = OipModels.Ready(inference.Catalog.Current, RequireName(request.Name), GrpcInference.Optional(request.Version), GrpcInference.TenantOf(context));
        return error is null ? Task.FromResult(new ModelReadyResponse { Ready = ready }) : throw ErrorTable.Rpc(error);
    }

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context)
    {
        var (metadata, error) = OipModels.Metadata(inference.Catalog.Current, RequireName(request.Name), GrpcInference.Optional(request.Version), GrpcInference.TenantOf(context));
        if (metadata is null)
        {
            throw ErrorTable.Rpc(error!);
        }

        var response = new ModelMetadataResponse { Name = metadata.Name, Platform = metadata.Platform, Versions = { metadata.Versions } };
        response.Inputs.Add(metadata.Inputs.Select(Describe));
        response.Outputs.Add(metadata.Outputs.Select(Describe));
        return Task.FromResult(response);
    }

    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        if (inference.Lookup(request.ModelName, request.ModelVersion, context, out var model) is { } refused)
        {
            throw ErrorTable.Rpc(refused);
        }

        NamedTensor[] inputs;
        try
        {
            inputs = OipGrpcTensors.ReadInputs(request, TensorLimits.Default);
        }
        catch (TensorFormatException error)
        {
            throw ErrorTable.Rpc(new ServeError(ServeErrorKind.BadInput, error.Message));
        }

        string[]? requested = request.Outputs.Count == 0 ? null : [.. request.Outputs.Select(o => o.Name)];
        var reply = await inference.RunAsync(model!, new TensorInput(inputs, requested), context);
        var outputs = OipApi.OutputTensors(reply.Output);
        if (bodies.RefuseResponse(outputs.Sum(o => o.Data.LongLength)) is { } tooLarge)
        {
            throw ErrorTable.Rpc(tooLarge);
        }

        var response = new ModelInferResponse
        {
            ModelName = request.ModelName,
            ModelVersion = OipModels.ServedVersion(reply, request.ModelVersion) ?? string.Empty,
            Id = request.Id,
        };
        OipGrpcTensors.WriteOutputs(response, outputs, raw: request.RawInputContents.Count > 0);
        return response;
    }

    private static string RequireName(string name) => string.IsNullOrEmpty(name)
        ? throw ErrorTable.Rpc(ServeErrors.ModelNameRequired)
        : name;

    private static ModelMetadataResponse.Types.TensorMetadata Describe(TensorSpec spec) =>
        new() { Name = spec.Name, Datatype = spec.DataType.ToString(), Shape = { spec.Shape } };
}
