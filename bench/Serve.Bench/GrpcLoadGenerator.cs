using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Serve.Gateway.Grpc.Oip;
using Serve.Gateway.Grpc.TorchServe;

namespace Serve.Bench;

/// <summary>The gRPC inference calls the comparison measures beside HTTP.</summary>
public enum GrpcApi
{
    /// <summary>TorchServe's <c>Predictions</c>: the HTTP body as input "data", the HTTP answer's bytes back.</summary>
    Predictions,

    /// <summary>The Open Inference Protocol's <c>ModelInfer</c> with <c>raw_input_contents</c> (so raw outputs back).</summary>
    ModelInfer,
}

/// <summary>
/// Closed-loop gRPC load, measured as the HTTP load is (<see cref="LoadGenerator.ClosedLoopAsync"/>). All
/// clients share one channel over HTTP/2 without TLS, as one gRPC client process would; their calls are
/// streams multiplexed on its connection(s). A call counts as an error when it ends in an RpcException or
/// its answer is not a result.
/// </summary>
public static class GrpcLoadGenerator
{
    public static async Task<LoadResult> RunAsync(
        Uri address, GrpcApi api, BenchModel model, string key, int concurrency, TimeSpan warmUp, TimeSpan duration, CancellationToken cancellationToken)
    {
        using var channel = Open(address);
        return await LoadGenerator.ClosedLoopAsync(Sender(channel, api, model, key), concurrency, warmUp, duration, cancellationToken);
    }

    /// <summary>One call, to learn that the API answers before measuring it: null when it does, else why not.</summary>
    public static async Task<string?> TryOnceAsync(Uri address, GrpcApi api, BenchModel model, string key, CancellationToken cancellationToken)
    {
        using var channel = Open(address);
        return await Sender(channel, api, model, key)(cancellationToken);
    }

    private static GrpcChannel Open(Uri address)
    {
        LoadGenerator.RequireLoopback(address);
        return GrpcChannel.ForAddress(address);
    }

    private static Func<CancellationToken, Task<string?>> Sender(GrpcChannel channel, GrpcApi api, BenchModel model, string key)
    {
        // The inference key travels as the authorization metadata, as any client of a secured server sends it.
        var headers = new Metadata { { "authorization", "Bearer " + key } };
        // Requests are built per call, as a client would; the payload bytes are wrapped once and shared.
        if (api == GrpcApi.Predictions)
        {
            var client = new InferenceAPIsService.InferenceAPIsServiceClient(channel);
            var data = ByteString.CopyFrom(model.Payload);
            return token => Checked(async () =>
            {
                var response = await client.PredictionsAsync(
                    new PredictionsRequest { ModelName = model.Name, Input = { ["data"] = data } }, headers, Deadline(), token);
                return response.Prediction.IsEmpty ? "an empty prediction" : null;
            });
        }

        var infer = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var raw = ByteString.CopyFrom(model.Tensor.Data);
        return token => Checked(async () =>
        {
            var request = new ModelInferRequest { ModelName = model.Name, RawInputContents = { raw } };
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
            {
                Name = model.Tensor.Name,
                Datatype = model.Tensor.DataType.ToString(),
                Shape = { model.Tensor.Shape },
            });
            var response = await infer.ModelInferAsync(request, headers, Deadline(), token);
            // Raw inputs get raw outputs: one non-empty entry per output.
            return response.Outputs.Count > 0 && response.RawOutputContents.Count == response.Outputs.Count && response.RawOutputContents.All(r => !r.IsEmpty)
                ? null
                : $"{response.Outputs.Count} outputs with {response.RawOutputContents.Count} raw contents";
        });
    }

    /// <summary>The same limit as the HTTP client's timeout.</summary>
    private static DateTime Deadline() => DateTime.UtcNow.AddSeconds(120);

    private static async Task<string?> Checked(Func<Task<string?>> call)
    {
        try
        {
            return await call();
        }
        catch (RpcException error)
        {
            return $"gRPC {error.StatusCode}: {error.Status.Detail}";
        }
    }
}
