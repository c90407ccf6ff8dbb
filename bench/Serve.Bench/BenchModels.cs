using System.Globalization;
using System.Text;
using Serve.Node.Handlers;
using Serve.Node.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Bench;

/// <summary>The two benchmark models, their request payloads, and how each server side loads them.</summary>
public sealed record BenchModel(string Name, string ContentType, byte[] Payload, int BestBatchCandidateMax)
{
    public const int TinyInputs = 64;
    public const int TinyOutputs = 16;

    /// <summary>A tiny TorchScript model (Linear 64 -> 16 + ReLU) written into <paramref name="store"/>; JSON tensor requests.</summary>
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
        var row = string.Join(",", Enumerable.Range(0, TinyInputs).Select(i => (i % 7 * 0.1).ToString("0.0", CultureInfo.InvariantCulture)));
        return new BenchModel("tiny", "application/json", Encoding.UTF8.GetBytes($"[[{row}]]"), 256);
    }

    /// <summary>torchvision's resnet18 with seeded weights; a 640x480 JPEG per request (the image classifier).</summary>
    public static BenchModel ResNet18() => new("resnet18", "image/jpeg", Images.Jpeg(640, 480), 32);

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
