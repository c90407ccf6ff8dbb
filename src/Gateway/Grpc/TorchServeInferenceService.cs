using System.Text.Json;
using System.Threading.Channels;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Serve.Actors.Protocol;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Grpc.TorchServe;
using Serve.Gateway.Security;

namespace Serve.Gateway.Grpc;

/// <summary>
/// TorchServe's gRPC inference service (<c>org.pytorch.serve.grpc.inference.InferenceAPIsService</c>).
/// The input map becomes the handler's named parts, as the fields of a multipart HTTP request, and the
/// prediction holds the bytes the HTTP API would answer. Failures carry the error table's precise code
/// where TorchServe says INTERNAL.
/// </summary>
public sealed class TorchServeInferenceService(GrpcInference inference, RequestBodies bodies, KeyCheck keys, TenantQuotas quotas)
    : InferenceAPIsService.InferenceAPIsServiceBase
{
    /// <summary>Requests of one StreamPredictions2 stream running at once; answers still go back in request order.</summary>
    public const int StreamWindow = 16;

    private const string SequencePrefix = "serve-seq-";

    public override Task<TorchServeHealthResponse> Ping(Empty request, ServerCallContext context) =>
        Task.FromResult(new TorchServeHealthResponse
        {
            Health = JsonSerializer.Serialize(new { status = inference.Catalog.Current.Healthy ? "Healthy" : "Unhealthy" }),
        });

    public override async Task<PredictionResponse> Predictions(PredictionsRequest request, ServerCallContext context)
    {
        var (response, error) = await AnswerAsync(request, context, sendHeaders: true);
        return response ?? throw ErrorTable.Rpc(error!);
    }

    /// <summary>Serve's handlers answer once, so the stream carries one response; failures end the call with their status.</summary>
    public override async Task StreamPredictions(
        PredictionsRequest request, IServerStreamWriter<PredictionResponse> responseStream, ServerCallContext context)
    {
        var (response, error) = await AnswerAsync(request, context, sendHeaders: true);
        await responseStream.WriteAsync(response ?? throw ErrorTable.Rpc(error!), context.CancellationToken);
    }

    /// <summary>
    /// Each request is answered on the stream in the order sent, with up to <see cref="StreamWindow"/> running at
    /// once. A failed request is answered in band (<c>status</c> set) and the stream stays open. Requests without
    /// a sequence id take the stream's, generated once if none was ever given. Each request is a request of its
    /// own to the tenant's quotas and to token authorization: its key is checked again (a key that expired or
    /// was revoked while the stream is open is refused, UNAUTHENTICATED), and it takes a rate token and a
    /// concurrency permit (RESOURCE_EXHAUSTED in band when over quota).
    /// </summary>
    [AdmitsEachMessage]
    public override async Task StreamPredictions2(
        IAsyncStreamReader<PredictionsRequest> requestStream, IServerStreamWriter<PredictionResponse> responseStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;
        var answers = Channel.CreateBounded<Task<PredictionResponse>>(StreamWindow);
        var reading = Task.Run(async () =>
        {
            try
            {
                string? sequence = null;
                await foreach (var request in requestStream.ReadAllAsync(cancellation))
                {
                    sequence = request.HasSequenceId ? request.SequenceId : sequence ?? SequencePrefix + Guid.NewGuid().ToString("N");
                    request.SequenceId = sequence;
                    await answers.Writer.WriteAsync(AdmitAndAnswerInBandAsync(request, context), cancellation);
                }

                answers.Writer.Complete();
            }
            catch (Exception error)
            {
                answers.Writer.Complete(error);
            }
        }, cancellation);

        await foreach (var answer in answers.Reader.ReadAllAsync(cancellation))
        {
            await responseStream.WriteAsync(await answer, cancellation);
        }

        await reading;
    }

    /// <summary>One message of a stream, admitted as a request of its own (key, rate, concurrency), answered in band.</summary>
    private async Task<PredictionResponse> AdmitAndAnswerInBandAsync(PredictionsRequest request, ServerCallContext context)
    {
        var http = context.GetHttpContext();
        if (keys.TenantOf(http) is not { } tenant)
        {
            return Failed(request, ServeErrors.TokenAuthorizationFailed);
        }

        var (lease, refusal, _) = quotas.TryAdmit(tenant);
        if (lease is null)
        {
            return Failed(request, refusal!);
        }

        using (lease)
        {
            var (response, error) = await AnswerAsync(request, context, sendHeaders: false);
            return response ?? Failed(request, error!);
        }
    }

    private static PredictionResponse Failed(PredictionsRequest request, ServeError error)
    {
        var status = new Google.Rpc.Status { Code = (int)ErrorTable.Grpc(error.Kind), Message = error.Message };
        status.Details.Add(Any.Pack(new ErrorInfo { Reason = Reason(error.Kind), Domain = "serve" }));
        var failed = new PredictionResponse { Status = status };
        if (request.HasSequenceId)
        {
            failed.SequenceId = request.SequenceId;
        }

        return failed;
    }

    private async Task<Result<PredictionResponse>> AnswerAsync(
        PredictionsRequest request, ServerCallContext context, bool sendHeaders)
    {
        if (inference.Lookup(request.ModelName, request.ModelVersion, context, out var model) is { } refused)
        {
            return refused;
        }

        if (request.Input.Count == 0)
        {
            return new ServeError(ServeErrorKind.BadInput, "The request has no input: put the model's input in 'input', e.g. under \"data\"");
        }

        var input = new RawInput([.. request.Input.Select(i => new PayloadPart(i.Key, null, i.Value.ToByteArray()))]);
        var (reply, error) = await inference.TryRunAsync(model!, input, context, sendHeaders);
        if (reply is null)
        {
            return error!;
        }

        var (_, body) = InferenceApi.PredictionBody(reply.Output);
        if (bodies.RefuseResponse(body.LongLength) is { } tooLarge)
        {
            return tooLarge;
        }

        var response = new PredictionResponse { Prediction = UnsafeByteOperations.UnsafeWrap(body) };
        if (request.HasSequenceId)
        {
            response.SequenceId = request.SequenceId;
        }

        return response;
    }

    /// <summary>ErrorInfo's reason: the failure kind in UPPER_SNAKE_CASE, e.g. BAD_INPUT.</summary>
    private static string Reason(ServeErrorKind kind) =>
        string.Concat(kind.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();
}
