using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace Serve.TestSupport;

/// <summary>
/// One process (a Serve gateway or worker, or a benchmark peer) started from a built dll, with its output kept for
/// assertions and failure messages. Disposing kills it, and only it, by process id.
/// </summary>
public sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private ServeProcess(string name, Process process)
    {
        Name = name;
        _process = process;
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public IEnumerable<string> Lines => _lines;

    /// <summary>The built dll of a src project, in the configuration (Debug/Release) the caller was built in.</summary>
    public static string BuiltDll(string project, string assembly)
    {
        // Callers run from <project>/bin/<Configuration>/net10.0/.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        var path = Path.Combine(Fixtures.RepositoryRoot, "src", project, "bin", configuration, "net10.0", assembly);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is not built: dotnet build -c {configuration} Serve.sln", path);
    }

    public static ServeProcess Start(string name, string dll, params string[] arguments) =>
        Start(name, dll, new Dictionary<string, string>(), arguments);

    public static ServeProcess Start(string name, string dll, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Keep the processes' logs plain and their environment free of the test host's settings.
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["Logging__Console__FormatterName"] = "simple";
        // Timestamps, so a failure's tail shows how long each step took.
        start.Environment["Logging__Console__FormatterOptions__TimestampFormat"] = "HH:mm:ss.fff ";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        return new ServeProcess(name, Process.Start(start) ?? throw new InvalidOperationException($"could not start {name}"));
    }

    /// <summary>Waits for the process to end on its own (a command, or a node refused at start-up); its exit code.</summary>
    public async Task<int> ExitCodeAsync(TimeSpan timeout)
    {
        using var wait = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Name} still running after {timeout.TotalSeconds:0} s{Environment.NewLine}{Tail()}");
        }

        return _process.ExitCode;
    }

    public bool Logged(string text) => _lines.Any(l => l.Contains(text, StringComparison.Ordinal));

    /// <summary>The last lines of output, for failure messages.</summary>
    public string Tail(int count = 40)
    {
        var lines = _lines.ToArray();
        var builder = new StringBuilder().AppendLine($"--- last output of {Name} (pid {Id}{(HasExited ? $", exited {_process.ExitCode}" : "")}) ---");
        foreach (var line in lines.Skip(Math.Max(0, lines.Length - count)))
        {
            builder.AppendLine(line);
        }

        return builder.ToString();
    }

    /// <summary>SIGTERM (by process id): the process shuts down gracefully, as on a planned restart.</summary>
    public void Terminate() => Signal("-TERM");

    /// <summary>SIGSTOP, then SIGCONT (by process id): the process freezes, as under a long GC or CPU pause.</summary>
    public void Pause() => Signal("-STOP");

    public void Resume() => Signal("-CONT");

    private void Signal(string signal)
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start("kill", [signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            kill?.WaitForExit();
        }
    }

    /// <summary>SIGKILL: the node dies without leaving the cluster.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(wait.Token);
        _process.Dispose();
    }

    private const int KeptLines = 20_000;

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _lines.Enqueue(line);
            while (_lines.Count > KeptLines)
            {
                _lines.TryDequeue(out _);
            }
        }
    }
}
