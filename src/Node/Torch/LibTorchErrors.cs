using System.Text.RegularExpressions;

namespace Serve.Node.Torch;

/// <summary>
/// Turns libtorch's error text (a TorchScript traceback, or a message followed by C++ stack frames) into
/// the one line a client or an operator needs, e.g. "mat1 and mat2 shapes cannot be multiplied (1x3 and 10x6)".
/// </summary>
public static partial class LibTorchErrors
{
    private const int MaxLength = 400;

    public static string Summarize(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var raised = lines.LastOrDefault(l => PythonError().IsMatch(l));
        var line = raised is not null ? PythonError().Replace(raised, string.Empty) : lines.FirstOrDefault() ?? message;
        return line.Length > MaxLength ? line[..MaxLength] + "..." : line;
    }

    /// <summary>
    /// What libtorch printed when it aborted: "terminate called after throwing ...", then "what():" and the
    /// message, which is the part that says what is wrong.
    /// </summary>
    public static string SummarizeAbort(string standardError)
    {
        var lines = standardError.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var what = Array.FindIndex(lines, l => l.StartsWith("what():", StringComparison.Ordinal));
        if (what < 0)
        {
            return Summarize(standardError);
        }

        var rest = lines[what]["what():".Length..].Trim();
        return Summarize(rest.Length > 0 ? string.Join('\n', [rest, .. lines[(what + 1)..]]) : string.Join('\n', lines[(what + 1)..]));
    }

    [GeneratedRegex(@"^[A-Za-z]*(Error|Exception):\s*")]
    private static partial Regex PythonError();
}
