using Serve.Actors.Protocol;
using static TorchSharp.torch;

namespace Serve.Node.Handlers;

/// <summary>
/// How the handler will answer: with tensors, which the gateway renders in the protocol the request came
/// in, or with a finished document. Handlers never render a protocol themselves.
/// </summary>
public enum ResponseStyle
{
    /// <summary>Tensors, as the request's protocol renders them (nested lists on TorchServe's endpoints).</summary>
    Tensors,

    /// <summary>Tensors for a request that named its inputs in its body (<see cref="TensorOutput.NamedInputs"/>).</summary>
    NamedTensors,

    /// <summary>A JSON document built by the handler (e.g. the classifier's top-5).</summary>
    Document,
}

/// <summary>A request turned into model inputs, plus what the response should look like.</summary>
public sealed record PreparedRequest(NamedTensor[] Inputs, ResponseStyle Style, string[]? RequestedOutputs);

/// <summary>
/// A built-in handler: pre-processing (off the device thread), device-side post-processing (on it, before
/// results are copied to the host) and rendering (off it). Handlers are code in this project only: no
/// handler code is ever loaded from a model file.
/// </summary>
public interface IModelHandler
{
    /// <summary>What clients see in the model's metadata.</summary>
    ModelSignature Signature { get; }

    /// <summary>Decodes one request; throws <see cref="Torch.ModelInputException"/> for input it cannot take.</summary>
    PreparedRequest Prepare(InferenceInput input);

    /// <summary>True when decoding this input is cheap enough to do on the caller's thread (small JSON).</summary>
    bool PreparesInline(InferenceInput input);

    /// <summary>
    /// Whether requests may share one forward pass, concatenated along dimension 0 (with batch_size above 1).
    /// False where the model's outputs do not keep one row per input row (a detector's list of detections).
    /// </summary>
    bool CombinesRequests { get; }

    /// <summary>
    /// Runs on the device thread before the forward pass, on the tensors <see cref="Prepare"/> made; e.g. bytes
    /// that waited in the queue in their compact form become the floats the model takes.
    /// </summary>
    Tensor[] ToModelInputs(Tensor[] inputs) => inputs;

    /// <summary>Runs on the device thread after the forward pass, e.g. softmax and top-k.</summary>
    Tensor[] Postprocess(Tensor[] outputs);

    InferenceOutput Render(PreparedRequest request, NamedTensor[] outputs);
}
