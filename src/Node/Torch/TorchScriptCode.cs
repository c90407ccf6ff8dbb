using System.IO.Compression;
using System.Text;

namespace Serve.Node.Torch;

/// <summary>
/// Reads the source a TorchScript file carries (<c>torch.jit.save</c> writes it under <c>code/</c>),
/// without running anything: the names of <c>forward</c>'s arguments, and whether the code calls an
/// operator that reads files of the host.
/// </summary>
public static class TorchScriptCode
{
    /// <summary>
    /// TorchScript's operators that open a path on the host (<c>torch.from_file</c> maps any file into a
    /// tensor). A model that calls one could read what the worker's account can; Serve refuses it.
    /// </summary>
    public static readonly string[] FileOperators = ["from_file"];

    // A module's source is small; a larger entry is not read (the names then fall back to input__N).
    private const long MaxSourceBytes = 4 * 1024 * 1024;
    private const int MaxPickleHead = 4096;

    /// <summary>
    /// The first of <see cref="FileOperators"/> the file's code calls, with the source file naming it; null
    /// when none does. A file that is not a readable archive names none (libtorch then refuses it anyway).
    /// </summary>
    public static string? FileOperatorCall(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            foreach (var entry in zip.Entries.Where(e => e.FullName.Contains("/code/", StringComparison.Ordinal) && e.FullName.EndsWith(".py", StringComparison.Ordinal)))
            {
                var source = ReadText(entry);
                if (FileOperators.FirstOrDefault(op => CallsOperator(source, op)) is { } found)
                {
                    return $"{found} (in {entry.FullName})";
                }
            }

            return null;
        }
        catch (Exception error) when (error is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The operator named as a call (<c>torch.from_file(</c>, <c>ops.aten.from_file(</c>), not as part of another name.</summary>
    private static bool CallsOperator(string source, string op)
    {
        for (var at = source.IndexOf(op, StringComparison.Ordinal); at >= 0; at = source.IndexOf(op, at + 1, StringComparison.Ordinal))
        {
            var before = at == 0 ? ' ' : source[at - 1];
            var after = source.AsSpan(at + op.Length).TrimStart();
            if (!char.IsLetterOrDigit(before) && before != '_' && after.StartsWith("("))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Reads the names of the file's <c>forward</c> arguments: <c>data.pkl</c> names the root module's class
    /// (its first pickle opcode is a GLOBAL), and that class's source declares <c>def forward(self, x: Tensor,
    /// y: Tensor)</c>; libtorch gives only their count through TorchSharp. Null when the file does not carry
    /// them (no source, an unexpected layout): callers then name the inputs <c>input__N</c>.
    /// </summary>
    public static string[]? ForwardArgumentNames(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var pickle = zip.Entries
                .Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                .FirstOrDefault();
            if (pickle is null || RootClass(pickle) is not { } root)
            {
                return null;
            }

            var prefix = pickle.FullName[..^"data.pkl".Length];
            var sourcePath = $"{prefix}code/{root.Module.Replace('.', '/')}.py";
            var source = zip.GetEntry(sourcePath);
            return source is null || source.Length > MaxSourceBytes ? null : ForwardArguments(ReadText(source), root.Class);
        }
        catch (Exception error) when (error is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The module and class of the root object: pickle protocol 2, then <c>c</c> module <c>\n</c> class <c>\n</c>.</summary>
    private static (string Module, string Class)? RootClass(ZipArchiveEntry pickle)
    {
        var head = new byte[MaxPickleHead];
        int read;
        using (var stream = pickle.Open())
        {
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }

        var start = head is [0x80, _, ..] ? 2 : 0;
        if (read <= start || head[start] != (byte)'c')
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(head, start + 1, read - start - 1);
        var lines = text.Split('\n', 3);
        return lines.Length == 3 && IsDottedName(lines[0]) && IsIdentifier(lines[1]) ? (lines[0], lines[1]) : null;
    }

    private static string ReadText(ZipArchiveEntry entry)
    {
        using var reader = new StreamReader(entry.Open(), Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The argument names of <c>forward</c> in <c>class <paramref name="className"/></c>, <c>self</c> left out.</summary>
    public static string[]? ForwardArguments(string source, string className)
    {
        var classStart = FindLineStart(source, $"class {className}(", 0);
        if (classStart < 0)
        {
            return null;
        }

        var nextClass = FindLineStart(source, "class ", classStart + 1);
        var end = nextClass < 0 ? source.Length : nextClass;
        var def = source.IndexOf("def forward(", classStart, end - classStart, StringComparison.Ordinal);
        if (def < 0)
        {
            return null;
        }

        var parameters = TopLevelParameters(source, def + "def forward(".Length, end);
        if (parameters is not [var self, .. var rest] || ArgumentName(self) != "self")
        {
            return null;
        }

        var names = rest.Select(ArgumentName).Where(IsIdentifier).OfType<string>().ToArray();
        return names.Length == rest.Count && names.Distinct(StringComparer.Ordinal).Count() == names.Length ? names : null;
    }

    /// <summary>The text between the parentheses of a definition, split at commas outside brackets.</summary>
    private static List<string>? TopLevelParameters(string source, int start, int end)
    {
        var parameters = new List<string>();
        var depth = 0;
        var current = new StringBuilder();
        for (var i = start; i < end; i++)
        {
            var c = source[i];
            switch (c)
            {
                case '(' or '[' or '{':
                    depth++;
                    break;
                case ']' or '}':
                    depth--;
                    break;
                case ')' when depth == 0:
                    if (current.ToString().Trim() is { Length: > 0 } last)
                    {
                        parameters.Add(last);
                    }

                    return parameters;
                case ')':
                    depth--;
                    break;
                case ',' when depth == 0:
                    parameters.Add(current.ToString().Trim());
                    current.Clear();
                    continue;
            }

            current.Append(c);
        }

        return null;
    }

    private static string? ArgumentName(string parameter)
    {
        var colon = parameter.IndexOfAny([':', '=']);
        return (colon < 0 ? parameter : parameter[..colon]).Trim();
    }

    private static int FindLineStart(string source, string text, int from)
    {
        for (var at = source.IndexOf(text, from, StringComparison.Ordinal); at >= 0; at = source.IndexOf(text, at + 1, StringComparison.Ordinal))
        {
            if (at == 0 || source[at - 1] == '\n')
            {
                return at;
            }
        }

        return -1;
    }

    private static bool IsIdentifier(string? name) =>
        name is { Length: > 0 and <= 256 } && (char.IsLetter(name[0]) || name[0] == '_') && name.All(c => char.IsLetterOrDigit(c) || c == '_');

    private static bool IsDottedName(string name) => name.Length <= 1024 && name.Split('.').All(IsIdentifier);
}
