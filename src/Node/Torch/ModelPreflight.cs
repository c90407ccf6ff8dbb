using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Node.Hosting;
using TorchSharp;

namespace Serve.Node.Torch;

/// <summary>
/// libtorch aborts the whole process (SIGABRT, not an exception) when it loads some bad TorchScript, e.g.
/// code with a semantic error. So before this node loads a TorchScript file, a short-lived child process
/// (this executable with <c>--preflight</c>) loads it, and runs it once where the handler knows an input's
/// shape. A file that kills the child or fails in it is refused with the reason; the node never dies of it.
/// Results are kept per file (path, size, modification time): replicas of one file pay once, and a
/// changed file is checked again.
/// </summary>
public sealed partial class ModelPreflight(NodeOptions options, ILogger<ModelPreflight> logger)
{
    public const string Switch = "--preflight";
    private const string ProbeSwitch = "--probe-shape";
    private const int ExitRefused = 3;

    private readonly ConcurrentDictionary<CheckedFile, Lazy<Task<Outcome>>> _outcomes = new();

    private sealed record CheckedFile(string Path, long Length, long WrittenTicks, string Probe);

    private sealed record Outcome(string? Problem, bool Lasting);

    /// <summary>Throws <see cref="ModelLoadException"/> when the file must not be loaded in this process.</summary>
    public async Task CheckAsync(string path, string handler, CancellationToken cancellationToken)
    {
        var info = new FileInfo(path);
        if (!options.Preflight || !info.Exists)
        {
            return; // the loader itself says what is wrong with a missing file
        }

        var key = new CheckedFile(info.FullName, info.Length, info.LastWriteTimeUtc.Ticks, ProbeShape(handler));
        var pending = _outcomes.GetOrAdd(key, k => new Lazy<Task<Outcome>>(() => RunChildAsync(k)));
        var outcome = await pending.Value.WaitAsync(cancellationToken);
        if (!outcome.Lasting)
        {
            _outcomes.TryRemove(new KeyValuePair<CheckedFile, Lazy<Task<Outcome>>>(key, pending));
        }

        if (outcome.Problem is { } problem)
        {
            throw new ModelLoadException(problem, rejected: outcome.Lasting);
        }
    }

    /// <summary>
    /// The input a handler always gives its model, as "1,3,224,224"; empty when it depends on the request (the
    /// detector's image size, the tensor handler's tensors) or is not float (the text classifier's token ids).
    /// </summary>
    private static string ProbeShape(string handler) =>
        handler is BuiltInHandlers.ImageClassifier or BuiltInHandlers.ImageSegmenter ? "1,3,224,224" : string.Empty;

    private async Task<Outcome> RunChildAsync(CheckedFile file)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(ModelPreflight).Assembly.Location);
        start.ArgumentList.Add(Switch);
        start.ArgumentList.Add(file.Path);
        if (file.Probe.Length > 0)
        {
            start.ArgumentList.Add(ProbeSwitch);
            start.ArgumentList.Add(file.Probe);
        }

        var clock = Stopwatch.StartNew();
        using var child = Process.Start(start) ?? throw new ModelLoadException("could not start the preflight process");
        var errors = child.StandardError.ReadToEndAsync();
        _ = child.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(options.PreflightTimeout);
        try
        {
            await child.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync(CancellationToken.None);
            return new Outcome($"checking {Path.GetFileName(file.Path)} took longer than {options.PreflightTimeout.TotalSeconds:0} s " +
                               "(Serve:Node:PreflightTimeout); it was not loaded", Lasting: false);
        }

        var stderr = await errors;
        var name = Path.GetFileName(file.Path);
        LogChecked(name, child.ExitCode, clock.ElapsedMilliseconds);
        return child.ExitCode switch
        {
            0 => new Outcome(null, Lasting: true),
            ExitRefused => new Outcome(LastLine(stderr), Lasting: true),
            var code => new Outcome(
                $"{name} is refused: {Died(code)} while a preflight process loaded it, so a worker loading it would die too. " +
                $"libtorch said: {LibTorchErrors.SummarizeAbort(stderr)}", Lasting: true),
        };
    }

    private static string Died(int exitCode) => exitCode switch
    {
        134 => "libtorch aborted (SIGABRT)",
        139 => "the process crashed (SIGSEGV)",
        137 => "the process was killed (SIGKILL; out of memory?)",
        _ => $"the process ended with exit code {exitCode}",
    };

    private static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "the preflight process failed";

    /// <summary>The dotnet host running this process, to start the child the same way.</summary>
    private static string DotnetHost()
    {
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
        {
            return current;
        }

        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }

    /// <summary>
    /// The child's side: load the file on the CPU with one thread and, when a probe shape is given, run one
    /// forward pass of zeros. Exit 0 when all went well, <see cref="ExitRefused"/> with the reason on the
    /// last line of stderr when libtorch threw; a libtorch abort ends the process with SIGABRT by itself.
    /// </summary>
    public static int RunChild(string[] args)
    {
        if (args is not [Switch, var path, ..])
        {
            return 2;
        }

        try
        {
            torch.set_num_threads(1);
            using var scope = torch.NewDisposeScope();
            using var module = ModelLoader.Load(new TorchScriptSource(path), path, torch.CPU);
            if (args is [_, _, ProbeSwitch, var shape])
            {
                using var inference = torch.inference_mode();
                long[] dimensions = [.. shape.Split(',').Select(d => long.Parse(d, CultureInfo.InvariantCulture))];
                module.Forward([torch.zeros(dimensions)]);
            }

            return 0;
        }
        catch (Exception error)
        {
            Console.Error.WriteLine(error is ModelLoadException ? error.Message : $"{Path.GetFileName(path)}: {LibTorchErrors.Summarize(error.Message)}");
            return ExitRefused;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Preflight of {File}: exit code {ExitCode} after {Milliseconds} ms")]
    private partial void LogChecked(string file, int exitCode, long milliseconds);
}
