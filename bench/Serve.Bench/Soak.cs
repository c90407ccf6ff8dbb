using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Serve.Bench;

/// <summary>One 10 s sample of the soak run.</summary>
public sealed record SoakSample(double Minutes, IReadOnlyDictionary<string, double> RssMb, IReadOnlyDictionary<string, ModelSample> Models);

/// <summary>A model's requests over one sample interval.</summary>
public sealed record ModelSample(double RequestsPerSecond, double P50Ms, double P99Ms, int Failed);

/// <summary>
/// The soak run: a gateway and two workers serving a tiny TorchScript model and resnet18 side by side. It
/// measures what the cluster sustains with both loaded, then holds about 80 % of that, paced, for the
/// whole run, and every 10 s samples each process's resident memory (from /proc: the managed heap, libtorch's
/// native allocations and everything else) and each model's latencies. Flat memory is the point.
/// </summary>
public sealed class Soak(TextWriter log)
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    public async Task<IReadOnlyList<SoakSample>> RunAsync(TimeSpan duration, double loadFraction, CancellationToken cancellationToken)
    {
        var resnet = BenchModel.ResNet18();
        await using var cluster = await BenchCluster.StartAsync(1, 2, "tiny=tiny.pt?replicas=2&batch_size=32&max_batch_delay=0",
            store => BenchModel.Tiny(store), new Dictionary<string, string>
            {
                ["Serve__Models__0__Name"] = "resnet18",
                ["Serve__Models__0__Architecture"] = "resnet18",
                ["Serve__Models__0__Handler"] = "image_classifier",
                ["Serve__Models__0__BatchSize"] = "8",
                ["Serve__Models__0__MaxBatchDelay"] = "0",
                ["Serve__Models__0__Replicas"] = "2",
            });
        var gateway = cluster.Gateways[0];
        using var management = cluster.ManagementClient(gateway, TimeSpan.FromSeconds(5));
        foreach (var model in new[] { "tiny", "resnet18" })
        {
            await Waiting.UntilAsync(async () => await BenchCluster.ReadyReplicasAsync(management, model) is { Count: 2 },
                TimeSpan.FromSeconds(180), $"{model}'s two replicas READY", cluster.Diagnostics);
        }

        var tiny = (Url: new Uri(gateway.Inference, "/predictions/tiny"), Payload: BenchModel.Tiny(Path.GetTempPath()).Payload, Type: "application/json");
        var image = (Url: new Uri(gateway.Inference, "/predictions/resnet18"), resnet.Payload, Type: resnet.ContentType);
        var clock = Stopwatch.StartNew();

        // Capacity with both models loaded at once, closed loop.
        double tinyCapacity, resnetCapacity;
        await using (var probeTiny = new Traffic(tiny.Url, tiny.Payload, tiny.Type, cluster.Keys.Inference, 16, Deadline, clock))
        await using (var probeResnet = new Traffic(image.Url, image.Payload, image.Type, cluster.Keys.Inference, 4, Deadline, clock))
        {
            await Task.Delay(TimeSpan.FromSeconds(5), cancellationToken);
            probeTiny.Drain();
            probeResnet.Drain();
            await Task.Delay(TimeSpan.FromSeconds(15), cancellationToken);
            tinyCapacity = probeTiny.Drain().Count(s => s.Ok) / 15.0;
            resnetCapacity = probeResnet.Drain().Count(s => s.Ok) / 15.0;
        }

        log.WriteLine($"capacity with both loaded: tiny {tinyCapacity:0} req/s, resnet18 {resnetCapacity:0.0} req/s; " +
                      $"holding {loadFraction:P0} of it for {duration.TotalMinutes:0} min");
        var samples = new List<SoakSample>();
        await using var tinyLoad = new Traffic(tiny.Url, tiny.Payload, tiny.Type, cluster.Keys.Inference, 16, Deadline, clock, tinyCapacity * loadFraction);
        await using var resnetLoad = new Traffic(image.Url, image.Payload, image.Type, cluster.Keys.Inference, 4, Deadline, clock, resnetCapacity * loadFraction);
        var start = clock.Elapsed;
        while (clock.Elapsed - start < duration && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(Interval, cancellationToken);
            var sample = new SoakSample((clock.Elapsed - start).TotalMinutes,
                cluster.Nodes.ToDictionary(n => n.Name, n => ResidentMb(n.Process.Id)),
                new Dictionary<string, ModelSample> { ["tiny"] = Summarize(tinyLoad.Drain()), ["resnet18"] = Summarize(resnetLoad.Drain()) });
            samples.Add(sample);
            log.WriteLine(Line(sample));
        }

        return samples;
    }

    private static ModelSample Summarize(IReadOnlyList<Sent> sent)
    {
        var latencies = sent.Where(s => s.Ok).Select(s => (s.End - s.Start) * 1000).Order().ToArray();
        return new ModelSample(latencies.Length / Interval.TotalSeconds, LoadGenerator.Percentile(latencies, 0.5), LoadGenerator.Percentile(latencies, 0.99),
            sent.Count(s => !s.Ok));
    }

    /// <summary>VmRSS of a process, in MB (NaN once it is gone).</summary>
    private static double ResidentMb(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (Exception error) when (error is IOException or InvalidOperationException)
        {
            return double.NaN;
        }
    }

    private static string Line(SoakSample s) => string.Create(CultureInfo.InvariantCulture,
        $"| {s.Minutes:0.0} | {string.Join(" | ", s.RssMb.Values.Select(v => v.ToString("0", CultureInfo.InvariantCulture)))} | " +
        $"{string.Join(" | ", s.Models.Values.Select(m => $"{m.RequestsPerSecond:0} | {m.P50Ms:0.0} | {m.P99Ms:0.0} | {m.Failed}"))} |");

    public static string Table(IReadOnlyList<SoakSample> samples)
    {
        if (samples.Count == 0)
        {
            return "no samples";
        }

        var nodes = samples[0].RssMb.Keys.ToList();
        var models = samples[0].Models.Keys.ToList();
        var table = new StringBuilder()
            .AppendLine($"| minute | {string.Join(" | ", nodes.Select(n => $"{n} RSS (MB)"))} | " +
                        $"{string.Join(" | ", models.Select(m => $"{m} req/s | {m} p50 (ms) | {m} p99 (ms) | {m} failed"))} |")
            .AppendLine($"|{string.Concat(Enumerable.Repeat("---:|", 1 + nodes.Count + 4 * models.Count))}");
        foreach (var sample in samples)
        {
            table.AppendLine(Line(sample));
        }

        var first = samples[Math.Min(samples.Count - 1, 2)]; // past the first 30 s of warming
        var last = samples[^1];
        table.AppendLine();
        foreach (var node in nodes)
        {
            table.AppendLine(CultureInfo.InvariantCulture,
                $"- {node}: RSS {first.RssMb[node]:0} MB at {first.Minutes:0.0} min, {last.RssMb[node]:0} MB at {last.Minutes:0.0} min, " +
                $"highest {samples.Max(s => s.RssMb[node]):0} MB");
        }

        foreach (var model in models)
        {
            var all = samples.Select(s => s.Models[model]).ToList();
            table.AppendLine(CultureInfo.InvariantCulture,
                $"- {model}: {all.Average(m => m.RequestsPerSecond):0.0} req/s on average, p99 {first.Models[model].P99Ms:0.0} ms at the start and " +
                $"{last.Models[model].P99Ms:0.0} ms at the end (highest {all.Max(m => m.P99Ms):0.0}), {all.Sum(m => m.Failed)} failed");
        }

        return table.ToString();
    }

    public static void Plot(string path, IReadOnlyList<SoakSample> samples)
    {
        if (samples.Count == 0)
        {
            return;
        }

        var panels = new List<Panel>
        {
            new("Resident memory per process", "MB",
                [.. samples[0].RssMb.Keys.Select(n => new Series(n, [.. samples.Select(s => (s.Minutes, s.RssMb[n]))]))]),
        };
        foreach (var model in samples[0].Models.Keys)
        {
            panels.Add(new Panel($"{model} latency", "ms",
            [
                new Series("p50", [.. samples.Select(s => (s.Minutes, s.Models[model].P50Ms))]),
                new Series("p99", [.. samples.Select(s => (s.Minutes, s.Models[model].P99Ms))]),
            ]));
        }

        LinePlot.Write(path, "Serve soak: gateway + 2 workers, tiny and resnet18 at ~80 % of capacity", "minutes", panels);
    }
}
