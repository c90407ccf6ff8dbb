// Gateway and replica (ModelActor): a request, its cancellation, and the answer.

namespace Serve.Actors.Protocol;

/// <summary>What a client sent, as the handler will see it.</summary>
public abstract record InferenceInput
{
    /// <summary>The bytes it carries (bodies, fields, tensors): what a message between nodes must fit, names and framing aside.</summary>
    public abstract long PayloadBytes { get; }
}

/// <summary>
/// TorchServe-style input: a raw body is one part named <c>body</c>; a multipart or form request has one
/// part per field, named as the field.
/// </summary>
public sealed record RawInput(PayloadPart[] Parts) : InferenceInput
{
    public const string BodyPartName = "body";

    public static RawInput FromBody(string? contentType, byte[] body) =>
        new([new PayloadPart(BodyPartName, contentType, body)]);

    public override long PayloadBytes => Parts.Sum(p => p.Data.LongLength);
}

public sealed record PayloadPart(string Name, string? ContentType, byte[] Data);

/// <summary>Open Inference Protocol input: typed tensors, optionally naming the outputs wanted.</summary>
public sealed record TensorInput(NamedTensor[] Tensors, string[]? RequestedOutputs) : InferenceInput
{
    public override long PayloadBytes => Tensors.Sum(t => t.Data.LongLength);
}

/// <summary>What the handler produced for one request.</summary>
public abstract record InferenceOutput;

/// <summary>A finished document, e.g. the image classifier's JSON <c>{label: probability}</c>.</summary>
public sealed record DocumentOutput(string ContentType, byte[] Body) : InferenceOutput;

/// <summary>Output tensors, rendered by the gateway as the protocol of the request asks.</summary>
public sealed record TensorOutput(NamedTensor[] Tensors) : InferenceOutput
{
    /// <summary>
    /// True when the request named its input tensors in its body (the Open Inference Protocol's JSON sent to a
    /// TorchServe endpoint): the gateway answers in kind, with named outputs, instead of TorchServe's nested lists.
    /// </summary>
    public bool NamedInputs { get; init; }
}

/// <summary>
/// Gateway to replica: run one request within <paramref name="Timeout"/>. The replica starts the clock on
/// arrival (a time span, not an instant, so clocks that differ between nodes do not matter) and answers
/// DeadlineExceeded instead of running a request whose time ran out while it was queued. It queues with
/// the other requests of <paramref name="Tenant"/>.
/// </summary>
public sealed record InferenceRequest(ReplicaId Replica, string RequestId, InferenceInput Input, TimeSpan Timeout, TenantTag Tenant)
    : IWithReplicaId;

/// <summary>Gateway to replica: the client gave up; drop the request if it is still queued.</summary>
public sealed record CancelInference(ReplicaId Replica, string RequestId) : IWithReplicaId;

/// <summary>Reply to <see cref="InferenceRequest"/>: either succeeded or failed.</summary>
public abstract record InferenceReply(string RequestId) : IServeMessage;

public sealed record InferenceSucceeded(string RequestId, InferenceOutput Output, InferenceTiming Timing)
    : InferenceReply(RequestId);

public sealed record InferenceFailed(string RequestId, ServeError Error) : InferenceReply(RequestId);

/// <summary>Where the time went on the replica, in microseconds.</summary>
public sealed record InferenceTiming(long QueueMicros, long DeviceMicros, int BatchSize, string Replica, string Device);
