using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Handlers;
using Serve.Node.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Bench;

/// <summary>
/// The two benchmark models, their request payloads, and how each server side loads them. <paramref name="Tensor"/>
/// is the same request as an Open Inference Protocol input, for gRPC ModelInfer with raw contents.
/// </summary>
public sealed record BenchModel(string Name, string ContentType, byte[] Payload, NamedTensor Tensor, int BestBatchCandidateMax)
{
    public const int TinyInputs = 64;
    public const int TinyOutputs = 16;

    /// <summary>
    /// A tiny TorchScript model (Linear 64 -> 16 + ReLU) written into <paramref name="store"/>; JSON tensor requests,
    /// or the same row as a raw FP32 [1,64] tensor.
    /// </summary>
    public static BenchModel Tiny(string store)
    {
        var random = new Random(7);
        var weight = new float[TinyOutputs, TinyInputs];
        for (var i = 0; i < TinyOutputs; i++)
        {
            for (var j = 0; j < TinyInputs; j++)
            {
                weight[i, j] = (float)(random.NextDouble() - 0.5);
            }
        }

        TorchScriptWriter.LinearRelu(Path.Combine(store, "tiny.pt"), weight, [.. Enumerable.Range(0, TinyOutputs).Select(i => i * 0.01f)]);
        var row = Enumerable.Range(0, TinyInputs).Select(i => (i % 7 * 0.1).ToString("0.0", CultureInfo.InvariantCulture)).ToArray();
        // The raw tensor holds the very numbers the JSON spells, so both requests ask for the same work
        // (in native byte order, which is the little-endian raw layout on x64 and arm64).
        float[] values = [.. row.Select(v => float.Parse(v, CultureInfo.InvariantCulture))];
        var tensor = new NamedTensor("input", TensorDataType.FP32, [1, TinyInputs], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        return new BenchModel("tiny", "application/json", Encoding.UTF8.GetBytes($"[[{string.Join(",", row)}]]"), tensor, 256);
    }

    /// <summary>
    /// torchvision's resnet18 with seeded weights; a 640x480 JPEG per request (the image classifier). As a tensor,
    /// the JPEG is one BYTES element: the classifier then decodes it just as it does the HTTP body.
    /// </summary>
    public static BenchModel ResNet18()
    {
        var jpeg = Images.Jpeg(640, 480);
        return new BenchModel("resnet18", "image/jpeg", jpeg,
            new NamedTensor("data", TensorDataType.BYTES, [1], TensorShapes.WriteBytesElements([jpeg])), 32);
    }

    /// <summary>Loads the model as the peer endpoint and the raw forward do: directly with TorchSharp.</summary>
    public jit.ScriptModule? LoadScript(string store) =>
        Name == "tiny" ? jit.load(Path.Combine(store, "tiny.pt")) : null;

    public static nn.Module<Tensor, Tensor> BuildResNet18()
    {
        manual_seed(0);
        var model = torchvision.models.resnet18();
        model.eval();
        return model;
    }

    /// <summary>One request's input tensor, as the peer endpoint would build it from the payload.</summary>
    public Tensor Input(int batch) => Name == "tiny"
        ? rand(batch, TinyInputs)
        : cat(Enumerable.Range(0, batch).Select(_ => tensor(ImagePreprocessor.ToNormalizedChw(Payload, long.MaxValue), [1L, 3, 224, 224])).ToArray(), 0);

    /// <summary>The tiny model's JSON answer, built by hand as a plain endpoint would.</summary>
    public static string NestedJson(Tensor output)
    {
        var rows = (int)output.shape[0];
        var cols = (int)output.shape[1];
        var values = output.data<float>().ToArray();
        var builder = new StringBuilder("[");
        for (var r = 0; r < rows; r++)
        {
            builder.Append(r == 0 ? "[" : ",[");
            for (var c = 0; c < cols; c++)
            {
                if (c > 0)
                {
                    builder.Append(',');
                }

                builder.Append(values[r * cols + c].ToString("R", CultureInfo.InvariantCulture));
            }

            builder.Append(']');
        }

        return builder.Append(']').ToString();
    }
}
