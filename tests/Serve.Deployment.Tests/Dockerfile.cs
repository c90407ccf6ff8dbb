using System.Text;
using System.Text.Json;

namespace Serve.Deployment.Tests;

/// <summary>One Dockerfile instruction: keyword in upper case, its arguments with continuation lines joined.</summary>
public sealed record DockerInstruction(string Keyword, string Arguments, int Line)
{
    public override string ToString() => $"line {Line}: {Keyword} {Arguments}";
}

/// <summary>A <c>COPY</c> (or <c>ADD</c>): sources, destination and the stage or image named by <c>--from</c>.</summary>
public sealed record CopyInstruction(IReadOnlyList<string> Sources, string Destination, string? From, DockerInstruction Instruction);

/// <summary>One build stage: <c>FROM image [AS name]</c> and the instructions up to the next <c>FROM</c>.</summary>
public sealed record DockerStage(string Image, string? Name, DockerInstruction From, IReadOnlyList<DockerInstruction> Instructions);

/// <summary>
/// Just enough of the Dockerfile syntax for static checks: comments, line continuations, stages, COPY,
/// ENV, ARG and the exec (JSON) form. No variable expansion and no heredocs.
/// </summary>
public sealed class Dockerfile
{
    private Dockerfile(string path, IReadOnlyList<DockerInstruction> instructions)
    {
        Path = path;
        Instructions = instructions;
        var stages = new List<DockerStage>();
        DockerInstruction? from = null;
        var body = new List<DockerInstruction>();
        foreach (var instruction in instructions)
        {
            if (instruction.Keyword == "FROM")
            {
                if (from is not null)
                {
                    stages.Add(MakeStage(from, body));
                }

                from = instruction;
                body = [];
            }
            else if (from is not null)
            {
                body.Add(instruction);
            }
        }

        if (from is not null)
        {
            stages.Add(MakeStage(from, body));
        }

        Stages = stages;
    }

    public string Path { get; }

    public IReadOnlyList<DockerInstruction> Instructions { get; }

    public IReadOnlyList<DockerStage> Stages { get; }

    public DockerStage FinalStage => Stages[^1];

    public string Name => System.IO.Path.GetFileName(Path);

    public static Dockerfile Load(string path)
    {
        var instructions = new List<DockerInstruction>();
        var lines = File.ReadAllLines(path);
        var text = new StringBuilder();
        var start = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith('#') || (line.Length == 0 && text.Length > 0))
            {
                // Comments (parser directives included) and blank lines inside a continuation are skipped.
                continue;
            }

            if (line.Length == 0)
            {
                continue;
            }

            if (text.Length == 0)
            {
                start = i + 1;
            }

            var continues = line.EndsWith('\\');
            text.Append(continues ? line[..^1].TrimEnd() : line).Append(' ');
            if (!continues)
            {
                instructions.Add(Parse(text.ToString().Trim(), start));
                text.Clear();
            }
        }

        if (text.Length > 0)
        {
            instructions.Add(Parse(text.ToString().Trim(), start));
        }

        return new Dockerfile(path, instructions);
    }

    public IEnumerable<CopyInstruction> Copies() =>
        Instructions.Where(i => i.Keyword is "COPY" or "ADD").Select(ParseCopy);

    /// <summary>Arguments of an exec-form instruction (<c>["a", "b"]</c>), or null for the shell form.</summary>
    public static IReadOnlyList<string>? ExecForm(string arguments)
    {
        var trimmed = arguments.Trim();
        if (!trimmed.StartsWith('['))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<string[]>(trimmed);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static CopyInstruction ParseCopy(DockerInstruction instruction)
    {
        var words = Words(instruction.Arguments);
        string? from = null;
        var index = 0;
        for (; index < words.Count && words[index].StartsWith("--", StringComparison.Ordinal); index++)
        {
            if (words[index].StartsWith("--from=", StringComparison.Ordinal))
            {
                from = words[index]["--from=".Length..];
            }
        }

        var rest = string.Join(' ', words.Skip(index));
        var paths = ExecForm(rest) ?? [.. words.Skip(index)];
        if (paths.Count < 2)
        {
            throw new FormatException($"{instruction}: COPY needs a source and a destination");
        }

        return new CopyInstruction([.. paths.Take(paths.Count - 1)], paths[^1], from, instruction);
    }

    /// <summary>Variables set by <c>ENV</c> in <paramref name="stage"/> (both <c>k=v ...</c> and the legacy <c>k v</c> form).</summary>
    public static Dictionary<string, string> Environment(DockerStage stage)
    {
        var variables = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var instruction in stage.Instructions.Where(i => i.Keyword == "ENV"))
        {
            var words = Words(instruction.Arguments);
            if (words.Count > 0 && !words[0].Contains('=', StringComparison.Ordinal))
            {
                variables[words[0]] = string.Join(' ', words.Skip(1));
                continue;
            }

            foreach (var word in words)
            {
                var equals = word.IndexOf('=', StringComparison.Ordinal);
                variables[word[..equals]] = word[(equals + 1)..];
            }
        }

        return variables;
    }

    /// <summary>
    /// Splits on white space outside quotes, removing the quotes and backslash escapes. Enough for COPY, ENV
    /// and ARG; RUN is matched as text.
    /// </summary>
    public static List<string> Words(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        char? quote = null;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote is not null)
            {
                if (c == quote)
                {
                    quote = null;
                }
                else if (c == '\\' && quote == '"' && i + 1 < text.Length)
                {
                    word.Append(text[++i]);
                }
                else
                {
                    word.Append(c);
                }
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }
            }
            else
            {
                word.Append(c == '\\' && i + 1 < text.Length ? text[++i] : c);
                inWord = true;
            }
        }

        if (inWord)
        {
            words.Add(word.ToString());
        }

        return words;
    }

    private static DockerInstruction Parse(string text, int line)
    {
        var space = text.IndexOfAny([' ', '\t']);
        return space < 0
            ? new DockerInstruction(text.ToUpperInvariant(), string.Empty, line)
            : new DockerInstruction(text[..space].ToUpperInvariant(), text[(space + 1)..].Trim(), line);
    }

    private static DockerStage MakeStage(DockerInstruction from, List<DockerInstruction> body)
    {
        var words = Words(from.Arguments).Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToList();
        if (words.Count == 0)
        {
            throw new FormatException($"{from}: FROM without an image");
        }

        var name = words.Count >= 3 && words[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? words[2] : null;
        return new DockerStage(words[0], name, from, body);
    }
}
