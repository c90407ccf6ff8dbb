using System.Buffers.Binary;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Torch;
using static TorchSharp.torch;

namespace Serve.Node.Handlers;

/// <summary>
/// The <c>object_detector</c> handler, as TorchServe's: an image in, fed at its own size as floats in [0,1]
/// (TorchVision's ToTensor: no resize, no normalisation); the detections whose score is at least the
/// threshold (0.5 by default) out, as a JSON list of <c>{"label": [x1, y1, x2, y2], "score": s}</c>, labels
/// from index_to_name.json when given, else class indices.
/// <para>
/// The model contract differs from torchvision's, whose detectors take a list of images and return a list
/// of dictionaries (TorchSharp cannot pass or read those): the TorchScript model takes one image
/// [1,3,H,W] and returns a tuple <c>(boxes [N,4], labels [N], scores [N])</c> (a leading dimension of 1 on
/// each is also accepted). Images differ in size, so each request runs its own forward pass; batching still
/// gathers them into one turn on the device.
/// </para>
/// </summary>
public sealed class ObjectDetectorHandler(string platform, IReadOnlyDictionary<int, string>? labels, long maxImagePixels, float threshold)
    : IModelHandler
{
    public const float DefaultThreshold = 0.5f;

    /// <summary>
    /// The image goes to the model at its own size (3 bytes a pixel while it waits, 12 on the device):
    /// 4096x4096 takes a 12 MP phone photo, beyond what detection models resize to (about 1333 a side).
    /// </summary>
    public const long DefaultMaxImagePixels = 4096L * 4096;

    public ModelSignature Signature { get; } = new(platform,
        [new TensorSpec("data", TensorDataType.BYTES, [1])],
        [new TensorSpec("output__0", TensorDataType.BYTES, [1])]);

    public PreparedRequest Prepare(InferenceInput input)
    {
        switch (HandlerInputs.Bind(Signature.Inputs, input))
        {
            case RawInput raw:
                return new PreparedRequest([Image(HandlerInputs.MainPart(raw).Data)], ResponseStyle.Document, null);
            case TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.BYTES:
                var image = HandlerData.BytesElements(tensor, 1, "images").Single();
                return new PreparedRequest([Image(image)], ResponseStyle.Tensors, null);
            case TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.FP32 && tensor.Shape is [1, 3, > 0, > 0]:
                if (tensor.Shape[2] * tensor.Shape[3] > maxImagePixels)
                {
                    throw new ModelInputException($"the image is {tensor.Shape[3]}x{tensor.Shape[2]}, more than the allowed {maxImagePixels} pixels");
                }

                if (TensorShapes.Validate(tensor, long.MaxValue) is { } invalid)
                {
                    throw new ModelInputException(invalid);
                }

                return new PreparedRequest([tensor], ResponseStyle.Tensors, null);
            default:
                throw new ModelInputException(
                    "object_detector takes an image (JPEG or PNG) as the body, or over the Open Inference Protocol one "
                    + "BYTES input holding one image or one FP32 input of shape [1,3,H,W] with values in [0,1]");
        }
    }

    /// <summary>Decoding an image takes milliseconds: always on the thread pool.</summary>
    public bool PreparesInline(InferenceInput input) => false;

    /// <summary>A detector's outputs are lists of detections, not one row per image: never concatenate requests.</summary>
    public bool CombinesRequests => false;

    public Tensor[] Postprocess(Tensor[] outputs)
    {
        if (outputs.Length < 3)
        {
            throw new ModelOutputException(
                $"an object detector must return a tuple (boxes [N,4], labels [N], scores [N]); this one returned {outputs.Length} tensor(s)");
        }

        var boxes = WithoutBatch(outputs[0], 2);
        var classes = WithoutBatch(outputs[1], 1);
        var scores = WithoutBatch(outputs[2], 1);
        if (boxes.dim() != 2 || boxes.shape[1] != 4 || classes.dim() != 1 || scores.dim() != 1
            || classes.shape[0] != boxes.shape[0] || scores.shape[0] != boxes.shape[0])
        {
            throw new ModelOutputException(
                "an object detector must return (boxes [N,4], labels [N], scores [N]); this one gave "
                + $"[{string.Join(",", outputs[0].shape)}], [{string.Join(",", outputs[1].shape)}], [{string.Join(",", outputs[2].shape)}]");
        }

        if (classes.is_floating_point())
        {
            classes = classes.round();
        }

        var kept = nonzero(scores.ge(threshold)).reshape(-1);
        return
        [
            boxes.index_select(0, kept).to_type(ScalarType.Float32),
            classes.index_select(0, kept).to_type(ScalarType.Int64),
            scores.index_select(0, kept).to_type(ScalarType.Float32),
        ];
    }

    public InferenceOutput Render(PreparedRequest request, NamedTensor[] outputs)
    {
        var boxes = outputs[0];
        var classes = outputs[1];
        var scores = outputs[2];
        var count = (int)scores.Shape[0];
        var document = JsonBytes.Write(writer =>
        {
            writer.WriteStartArray();
            for (var i = 0; i < count; i++)
            {
                writer.WriteStartObject();
                writer.WriteStartArray(HandlerData.Label(labels, BinaryPrimitives.ReadInt64LittleEndian(classes.Data.AsSpan(i * 8))));
                for (var c = 0; c < 4; c++)
                {
                    writer.WriteNumberValue(BinaryPrimitives.ReadSingleLittleEndian(boxes.Data.AsSpan((i * 4 + c) * 4)));
                }

                writer.WriteEndArray();
                writer.WriteNumber("score", BinaryPrimitives.ReadSingleLittleEndian(scores.Data.AsSpan(i * 4)));
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }, indented: true);
        return HandlerData.Documents(request, [document]);
    }

    /// <summary>The image as UINT8 [1,3,H,W]; <see cref="ToModelInputs"/> makes it ToTensor's floats on the device.</summary>
    private NamedTensor Image(byte[] encoded)
    {
        var (chw, width, height) = HandlerData.Image(encoded, bytes => ImagePreprocessor.ToRgbChw(bytes, maxImagePixels));
        return new NamedTensor("data", TensorDataType.UINT8, [1, 3, height, width], chw);
    }

    /// <summary>Decoded images (bytes) become [0,1] floats here, on the device thread, as TorchVision's ToTensor.</summary>
    public Tensor[] ToModelInputs(Tensor[] inputs) =>
        [.. inputs.Select(t => t.dtype == ScalarType.Byte ? t.to_type(ScalarType.Float32).div_(255f) : t)];

    /// <summary>Drops a leading dimension of 1 (one image's detections, batched).</summary>
    private static Tensor WithoutBatch(Tensor tensor, int rank) =>
        tensor.dim() == rank + 1 && tensor.shape[0] == 1 ? tensor.squeeze(0) : tensor;
}
