using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Bench;

public sealed record RawResult(int BestBatch, double ItemsPerSecond, IReadOnlyDictionary<int, double> ByBatch);

/// <summary>
/// The limit: the model's own forward pass in this process, no server, inputs already tensors, at each
/// batch size; the best items per second wins.
/// </summary>
public static class RawForward
{
    public static RawResult Measure(BenchModel model, string store, TimeSpan perBatchSize)
    {
        using var script = model.LoadScript(store);
        using var builtIn = script is null ? BenchModel.BuildResNet18() : null;
        var results = new Dictionary<int, double>();
        for (var batch = 1; batch <= model.BestBatchCandidateMax; batch *= 2)
        {
            using var scope = NewDisposeScope();
            using var mode = inference_mode();
            var input = model.Input(batch);
            Forward(script, builtIn, input); // warm-up
            var clock = Stopwatch.StartNew();
            long items = 0;
            while (clock.Elapsed < perBatchSize)
            {
                using var inner = NewDisposeScope();
                Forward(script, builtIn, input);
                items += batch;
            }

            results[batch] = items / clock.Elapsed.TotalSeconds;
        }

        var best = results.MaxBy(r => r.Value);
        return new RawResult(best.Key, best.Value, results);
    }

    private static Tensor Forward(jit.ScriptModule? script, nn.Module<Tensor, Tensor>? builtIn, Tensor input) =>
        script is not null ? (Tensor)script.forward([input]) : builtIn!.call(input);
}
