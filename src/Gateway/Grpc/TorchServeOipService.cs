using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Serve.Gateway.Grpc.Oip;

namespace Serve.Gateway.Grpc;

/// <summary>
/// TorchServe's own name for the Open Inference Protocol's gRPC service,
/// <c>org.pytorch.serve.grpc.openinference.GRPCInferenceService</c>: its six rpcs carry KServe's messages
/// with the same field numbers (a subset of them), so clients generated from TorchServe's proto are answered
/// by <see cref="OipInferenceService"/> under that name, with the same rules and errors.
/// </summary>
public sealed class TorchServeOipService : IServiceMethodProvider<OipInferenceService>
{
    public const string ServiceName = "org.pytorch.serve.grpc.openinference.GRPCInferenceService";

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<OipInferenceService> context)
    {
        Add(context, "ServerLive", ServerLiveRequest.Parser, (service, request, call) => service.ServerLive(request, call));
        Add(context, "ServerReady", ServerReadyRequest.Parser, (service, request, call) => service.ServerReady(request, call));
        Add(context, "ModelReady", ModelReadyRequest.Parser, (service, request, call) => service.ModelReady(request, call));
        Add(context, "ServerMetadata", ServerMetadataRequest.Parser, (service, request, call) => service.ServerMetadata(request, call));
        Add(context, "ModelMetadata", ModelMetadataRequest.Parser, (service, request, call) => service.ModelMetadata(request, call));
        Add(context, "ModelInfer", ModelInferRequest.Parser, (service, request, call) => service.ModelInfer(request, call));
    }

    private static void Add<TRequest, TResponse>(
        ServiceMethodProviderContext<OipInferenceService> context, string name, MessageParser<TRequest> parser,
        UnaryServerMethod<OipInferenceService, TRequest, TResponse> invoker)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        var method = new Method<TRequest, TResponse>(MethodType.Unary, ServiceName, name, Marshaller(parser), Marshaller<TResponse>(null));
        context.AddUnaryMethod(method, [], invoker);
    }

    /// <summary>Protobuf on the wire; a null parser for messages this side only writes.</summary>
    private static Marshaller<T> Marshaller<T>(MessageParser<T>? parser)
        where T : class, IMessage<T> =>
        Marshallers.Create<T>(
            (message, serialization) =>
            {
                serialization.SetPayloadLength(message.CalculateSize());
                message.WriteTo(serialization.GetBufferWriter());
                serialization.Complete();
            },
            deserialization => parser is null
                ? throw new InvalidOperationException($"{typeof(T).Name} is only sent")
                : parser.ParseFrom(deserialization.PayloadAsReadOnlySequence()));
}
