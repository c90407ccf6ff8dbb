using System.Buffers;
using System.Buffers.Binary;
using System.Text;
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

    public ModelSignature Signature { get; } = new(platform,
        [new TensorSpec("data", TensorDataType.BYTES, [-1])],
        [new TensorSpec("output__0", TensorDataType.BYTES, [-1])]);

    public PreparedRequest Prepare(InferenceInput input)
    {
        switch (input)
        {
            case RawInput raw:
                return new PreparedRequest([Image(HandlerInputs.MainPart(raw).Data, 1)], ResponseStyle.Document, null);
            case TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.BYTES:
                if (TensorShapes.Validate(tensor, long.MaxValue) is { } problem)
                {
                    throw new ModelInputException(problem);
                }

                if (tensor.ElementCount is 0 or > MaxImagesPerRequest)
                {
                    throw new ModelInputException(
                        $"the BYTES input holds {tensor.ElementCount} images; one request may carry 1 to {MaxImagesPerRequest}");
                }

                var images = TensorShapes.ReadBytesElements(tensor);

                var pixels = images.SelectMany(ImagePixels).ToArray();
                return new PreparedRequest([ToTensor(pixels, images.Count)], ResponseStyle.Tensors, null);
            case TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.FP32
                                                             && tensor.Shape is [> 0 and <= MaxImagesPerRequest, 3, ImagePreprocessor.CropTo, ImagePreprocessor.CropTo]:
                if (TensorShapes.Validate(tensor, long.MaxValue) is { } invalid)
                {
                    throw new ModelInputException(invalid);
                }

                return new PreparedRequest([tensor], ResponseStyle.Tensors, null);
            default:
                throw new ModelInputException(
                    "image_classifier takes an image (JPEG or PNG) as the body, or over the Open Inference Protocol one "
                    + "BYTES input of images or one FP32 input of shape [N,3,224,224]");
        }
    }

    /// <summary>Decoding an image takes milliseconds: always on the thread pool.</summary>
    public bool PreparesInline(InferenceInput input) => false;

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
        var documents = Enumerable.Range(0, rows).Select(row => TopKJson(values, indices, row, k)).ToList();
        return request.Style == ResponseStyle.Document
            ? new DocumentOutput("application/json", documents[0])
            : new TensorOutput([new NamedTensor("output__0", TensorDataType.BYTES, [rows], TensorShapes.WriteBytesElements(documents))]);
    }

    private byte[] TopKJson(NamedTensor values, NamedTensor indices, int row, int k)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            for (var i = 0; i < k; i++)
            {
                var probability = BinaryPrimitives.ReadSingleLittleEndian(values.Data.AsSpan((row * k + i) * 4));
                var index = (int)BinaryPrimitives.ReadInt64LittleEndian(indices.Data.AsSpan((row * k + i) * 8));
                writer.WriteNumber(Label(index), probability);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private string Label(int index) =>
        labels is not null && labels.TryGetValue(index, out var name) ? name : index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private NamedTensor Image(byte[] encoded, int count) => ToTensor(ImagePixels(encoded), count);

    private float[] ImagePixels(byte[] encoded)
    {
        try
        {
            return ImagePreprocessor.ToNormalizedChw(encoded, maxImagePixels);
        }
        catch (ModelInputException) when (TryBase64(encoded) is { } decoded)
        {
            // TorchServe's vision handlers accept base64 text as well as raw bytes.
            return ImagePreprocessor.ToNormalizedChw(decoded, maxImagePixels);
        }
    }

    private static byte[]? TryBase64(byte[] text)
    {
        if (text.Length > 16 * 1024 * 1024)
        {
            return null;
        }

        var buffer = new byte[text.Length];
        return Convert.TryFromBase64String(Encoding.ASCII.GetString(text).Trim(), buffer, out var written) ? buffer[..written] : null;
    }

    private static NamedTensor ToTensor(float[] chw, int count)
    {
        var bytes = new byte[chw.Length * sizeof(float)];
        Buffer.BlockCopy(chw, 0, bytes, 0, bytes.Length);
        return new NamedTensor("data", TensorDataType.FP32, [count, 3, ImagePreprocessor.CropTo, ImagePreprocessor.CropTo], bytes);
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
