using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Torch;
using static TorchSharp.torch;

namespace Serve.Node.Handlers;

/// <summary>
/// The <c>image_classifier</c> handler, as TorchServe's: an image (JPEG/PNG bytes, or base64 text) in; the
/// top 5 classes by softmax probability out, as <c>{"label": probability}</c>. Labels come from the model's
/// <c>index_to_name.json</c> when it has one, else they are class indices. Over the Open Inference
/// Protocol it takes a BYTES tensor of images (or preprocessed FP32 [N,3,224,224]) and returns one JSON
/// string per image.
/// </summary>
public sealed class ImageClassifierHandler(string platform, IReadOnlyDictionary<int, string>? labels, long maxImagePixels) : IModelHandler
{
    public const int TopK = 5;

    /// <summary>Each image becomes 600 KB of floats: a request carries at most this many (use batching for more).</summary>
    public const int MaxImagesPerRequest = 64;

    /// <summary>
    /// The model sees 224x224: 25 MP covers a 24 MP camera's photo, and bounds what one decode holds for a
    /// moment (a PNG cannot be decoded scaled down, so it is decoded whole: 4 bytes a pixel).
    /// </summary>
    public const long DefaultMaxImagePixels = 25_000_000;

    public ModelSignature Signature { get; } = new(platform,
        [new TensorSpec("data", TensorDataType.BYTES, [-1])],
        [new TensorSpec("output__0", TensorDataType.BYTES, [-1])]);

    public PreparedRequest Prepare(InferenceInput input) =>
        PrepareImages(HandlerInputs.Bind(Signature.Inputs, input), maxImagePixels, BuiltInHandlers.ImageClassifier);

    /// <summary>
    /// The classifier's input, which the segmenter shares: an image as the body, or over the Open Inference
    /// Protocol a BYTES input of images or an FP32 input of preprocessed [N,3,224,224]; each image resized to
    /// 256, centre-cropped to 224 and normalised.
    /// </summary>
    internal static PreparedRequest PrepareImages(InferenceInput input, long maxImagePixels, string handler)
    {
        switch (input)
        {
            case RawInput raw:
                return new PreparedRequest([Preprocessed([HandlerInputs.MainPart(raw).Data], maxImagePixels)], ResponseStyle.Document, null);
            case TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.BYTES:
                var images = HandlerData.BytesElements(tensor, MaxImagesPerRequest, "images");
                return new PreparedRequest([Preprocessed(images, maxImagePixels)], ResponseStyle.Tensors, null);
            case TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.FP32
                                                             && tensor.Shape is [> 0 and <= MaxImagesPerRequest, 3, ImagePreprocessor.CropTo, ImagePreprocessor.CropTo]:
                if (TensorShapes.Validate(tensor, long.MaxValue) is { } invalid)
                {
                    throw new ModelInputException(invalid);
                }

                return new PreparedRequest([tensor], ResponseStyle.Tensors, null);
            default:
                throw new ModelInputException(
                    $"{handler} takes an image (JPEG or PNG) as the body, or over the Open Inference Protocol one "
                    + "BYTES input of images or one FP32 input of shape [N,3,224,224]");
        }
    }

    /// <summary>Decoding an image takes milliseconds: always on the thread pool.</summary>
    public bool PreparesInline(InferenceInput input) => false;

    public bool CombinesRequests => true;

    public Tensor[] Postprocess(Tensor[] outputs)
    {
        var logits = outputs[0];
        if (logits.dim() != 2)
        {
            throw new ModelOutputException($"an image classifier must output [batch, classes], this one gave [{string.Join(",", logits.shape)}]");
        }

        var probabilities = nn.functional.softmax(logits, 1);
        var (values, indices) = probabilities.topk((int)Math.Min(TopK, logits.shape[1]), dim: 1);
        return [values.to_type(ScalarType.Float32), indices.to_type(ScalarType.Int64)];
    }

    public InferenceOutput Render(PreparedRequest request, NamedTensor[] outputs)
    {
        var values = outputs[0];
        var indices = outputs[1];
        var rows = (int)values.Shape[0];
        var k = (int)values.Shape[1];
        return HandlerData.Documents(request, [.. Enumerable.Range(0, rows).Select(row => TopKJson(values, indices, row, k))]);
    }

    private byte[] TopKJson(NamedTensor values, NamedTensor indices, int row, int k) => JsonBytes.Write(writer =>
    {
        writer.WriteStartObject();
        for (var i = 0; i < k; i++)
        {
            var probability = BinaryPrimitives.ReadSingleLittleEndian(values.Data.AsSpan((row * k + i) * 4));
            var index = BinaryPrimitives.ReadInt64LittleEndian(indices.Data.AsSpan((row * k + i) * 8));
            writer.WriteNumber(HandlerData.Label(labels, index), probability);
        }

        writer.WriteEndObject();
    }, indented: true);

    /// <summary>The images preprocessed straight into the tensor's bytes, [N,3,224,224] FP32: no copy between.</summary>
    private static NamedTensor Preprocessed(IReadOnlyList<byte[]> images, long maxImagePixels)
    {
        const int imageBytes = ImagePreprocessor.NormalizedLength * sizeof(float);
        var data = new byte[images.Count * imageBytes];
        for (var i = 0; i < images.Count; i++)
        {
            var slice = data.AsMemory(i * imageBytes, imageBytes);
            HandlerData.Image(images[i], bytes =>
            {
                ImagePreprocessor.ToNormalizedChw(bytes, maxImagePixels, MemoryMarshal.Cast<byte, float>(slice.Span));
                return true;
            });
        }

        return new NamedTensor("data", TensorDataType.FP32, [images.Count, 3, ImagePreprocessor.CropTo, ImagePreprocessor.CropTo], data);
    }

    /// <summary>Reads TorchServe's index_to_name.json: <c>{"0": "tench"}</c> or <c>{"0": ["n01440764", "tench"]}</c>.</summary>
    public static Dictionary<int, string> ReadLabels(string path)
    {
        using var stream = File.OpenRead(path);
        using var document = JsonDocument.Parse(stream);
        var labels = new Dictionary<int, string>();
        foreach (var property in document.RootElement.EnumerateObject())
        {
            if (!int.TryParse(property.Name, out var index))
            {
                continue;
            }

            labels[index] = property.Value.ValueKind switch
            {
                JsonValueKind.String => property.Value.GetString()!,
                JsonValueKind.Array when property.Value.GetArrayLength() > 0 => property.Value[property.Value.GetArrayLength() - 1].GetString() ?? property.Name,
                _ => property.Name,
            };
        }

        return labels;
    }
}
