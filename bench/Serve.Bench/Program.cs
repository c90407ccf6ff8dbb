using System.Globalization;
using Serve.Bench;

// Serve's benchmarks. Run in Release:
//   dotnet run -c Release --project bench/Serve.Bench -- compare [--models tiny,resnet18] [--rounds 3] [--duration 8] [--warmup 2]
//   dotnet run -c Release --project bench/Serve.Bench -- raw --model tiny|resnet18 [--seconds 4]
//   dotnet run -c Release --project bench/Serve.Bench -- noisy [--flood 32] [--quiet-rate 3] [--batch 1] [--duration 15] [--warmup 3]
//   dotnet run -c Release --project bench/Serve.Bench -- chaos [--clients 8]
//   dotnet run -c Release --project bench/Serve.Bench -- soak [--minutes 30] [--load 0.8]
//   dotnet run -c Release --project bench/Serve.Bench -- load --url http://127.0.0.1:8080/predictions/m --payload f --content-type t [--key K]
//       [--concurrency 16] [--duration 10] [--warmup 3]
string Option(string name, string fallback)
{
    var index = Array.IndexOf(args, "--" + name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
}

int IntOption(string name, int fallback) => int.Parse(Option(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

// Prints a run's table with the machine it ran on and keeps it (and its JSON, when there is one) in bench/results.
async Task ReportAsync(string run, string table, string? json = null)
{
    Console.WriteLine();
    Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}");
    Console.WriteLine(table);
    var results = Path.Combine(Fixtures.RepositoryRoot, "bench", "results");
    Directory.CreateDirectory(results);
    var name = $"{run}-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
    await File.WriteAllTextAsync(Path.Combine(results, name + ".md"), table);
    if (json is not null)
    {
        await File.WriteAllTextAsync(Path.Combine(results, name + ".json"), json);
    }
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

switch (args.FirstOrDefault())
{
    case "peer":
        await PeerServer.RunAsync(Option("model", "tiny"), Option("store", "."), IntOption("port", 9080));
        return 0;

    case "load":
        var result = await LoadGenerator.RunAsync(new Uri(Option("url", "http://127.0.0.1:8080/ping")),
            File.ReadAllBytes(Option("payload", "/dev/null")), Option("content-type", "application/octet-stream"), args.Contains("--key") ? Option("key", "") : null,
            IntOption("concurrency", 16), TimeSpan.FromSeconds(IntOption("warmup", 3)), TimeSpan.FromSeconds(IntOption("duration", 10)), cancel.Token);
        Console.WriteLine($"{result.Throughput:0.0} req/s, p50 {result.P50Ms:0.00} ms, p90 {result.P90Ms:0.00} ms, p99 {result.P99Ms:0.00} ms, " +
                          $"{result.Completed} ok, {result.Errors} errors {result.FirstError}");
        return 0;

    case "raw":
        var store = Directory.CreateTempSubdirectory("serve-bench-").FullName;
        var benchModel = Option("model", "tiny") == "tiny" ? BenchModel.Tiny(store) : BenchModel.ResNet18();
        foreach (var (batch, rate) in RawForward.Measure(benchModel, store, TimeSpan.FromSeconds(IntOption("seconds", 4))).ByBatch)
        {
            Console.WriteLine($"batch {batch,4}: {rate,10:0.0} items/s");
        }

        if (benchModel.Name == "resnet18")
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var images = 0;
            while (clock.Elapsed < TimeSpan.FromSeconds(2))
            {
                Serve.Node.Handlers.ImagePreprocessor.ToNormalizedChw(benchModel.Payload, long.MaxValue);
                images++;
            }

            Console.WriteLine($"preprocessing ({benchModel.Payload.Length} byte JPEG): {clock.Elapsed.TotalMilliseconds / images:0.00} ms per image on one thread");
        }

        Directory.Delete(store, recursive: true);
        return 0;

    case "compare":
        var comparison = new Comparison(TimeSpan.FromSeconds(IntOption("warmup", 2)), TimeSpan.FromSeconds(IntOption("duration", 8)), Console.Out);
        var rows = new List<Row>();
        foreach (var model in Option("models", "tiny,resnet18").Split(','))
        {
            rows.AddRange(model == "tiny"
                ? await comparison.RunAsync("tiny", [1, 64], batchSize: IntOption("tiny-batch", 64), IntOption("rounds", 3), cancel.Token)
                : await comparison.RunAsync("resnet18", [1, 16], batchSize: IntOption("resnet-batch", 8), IntOption("rounds", 3), cancel.Token));
        }

        await ReportAsync("compare", Comparison.Table(rows), Comparison.Json(rows));
        return 0;

    case "noisy":
        var noisy = new NoisyNeighbour(TimeSpan.FromSeconds(IntOption("warmup", 3)), TimeSpan.FromSeconds(IntOption("duration", 15)), Console.Out);
        var noisyRows = await noisy.RunAsync(IntOption("flood", 32), double.Parse(Option("quiet-rate", "3"), CultureInfo.InvariantCulture),
            IntOption("batch", 1), cancel.Token);
        await ReportAsync("noisy", NoisyNeighbour.Table(noisyRows));
        return 0;

    case "chaos":
        var faults = await new Chaos(Console.Out).RunAsync(IntOption("clients", 8), cancel.Token);
        await ReportAsync("chaos", Chaos.Table(faults));
        return 0;

    case "soak":
        var samples = await new Soak(Console.Out).RunAsync(TimeSpan.FromMinutes(IntOption("minutes", 30)),
            double.Parse(Option("load", "0.8"), CultureInfo.InvariantCulture), cancel.Token);
        var plot = Path.Combine(Fixtures.RepositoryRoot, "bench", "results", $"soak-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}.png");
        Directory.CreateDirectory(Path.GetDirectoryName(plot)!);
        Soak.Plot(plot, samples);
        await ReportAsync("soak", Soak.Table(samples));
        Console.WriteLine($"plot: {plot}");
        return 0;

    default:
        Console.Error.WriteLine("usage: Serve.Bench compare [--models tiny,resnet18] | chaos | soak [--minutes 30] | load --url URL --payload FILE ... | peer ...");
        return 2;
}
