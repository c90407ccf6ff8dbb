using System.Xml.Linq;

namespace Serve.Deployment.Tests;

/// <summary>A <c>dotnet restore|publish|build</c> found in a RUN: verb, project path and arguments.</summary>
public sealed record DotnetCommand(string Verb, string? Project, IReadOnlyList<string> Arguments, DockerInstruction Run)
{
    /// <summary>The value of an option given as <c>-r x</c>, <c>--runtime x</c> or <c>--runtime=x</c>; null when absent.</summary>
    public string? Option(params string[] names)
    {
        for (var i = 0; i < Arguments.Count; i++)
        {
            foreach (var name in names)
            {
                if (Arguments[i] == name && i + 1 < Arguments.Count)
                {
                    return Arguments[i + 1];
                }

                if (Arguments[i].StartsWith(name + "=", StringComparison.Ordinal))
                {
                    return Arguments[i][(name.Length + 1)..];
                }
            }
        }

        return null;
    }

    /// <summary>MSBuild properties given as <c>-p:Name=Value</c>, <c>/p:Name=Value</c> or <c>--property:Name=Value</c>.</summary>
    public Dictionary<string, string> Properties()
    {
        var properties = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var argument in Arguments)
        {
            foreach (var prefix in new[] { "-p:", "/p:", "--property:", "-property:", "/property:" })
            {
                if (argument.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                {
                    var assignment = argument[prefix.Length..];
                    var equals = assignment.IndexOf('=', StringComparison.Ordinal);
                    if (equals > 0)
                    {
                        properties[assignment[..equals]] = assignment[(equals + 1)..];
                    }
                }
            }
        }

        return properties;
    }

    public override string ToString() => $"dotnet {Verb} {string.Join(' ', Arguments)}";

    /// <summary>Every <c>dotnet restore/publish/build</c> in a stage's RUN instructions (commands split at &amp;&amp; and ;).</summary>
    public static IEnumerable<DotnetCommand> In(DockerStage stage)
    {
        foreach (var run in stage.Instructions.Where(i => i.Keyword == "RUN"))
        {
            var words = Dockerfile.ExecForm(run.Arguments) ?? Dockerfile.Words(run.Arguments);
            var command = new List<string>();
            foreach (var word in words.Append("&&"))
            {
                if (word is "&&" or ";" or "||")
                {
                    if (command is ["dotnet", "restore" or "publish" or "build", ..])
                    {
                        var arguments = command.Skip(2).ToList();
                        var project = arguments.FirstOrDefault(a => a.EndsWith(".csproj", StringComparison.OrdinalIgnoreCase));
                        yield return new DotnetCommand(command[1], project, arguments, run);
                    }

                    command.Clear();
                }
                else
                {
                    command.Add(word);
                }
            }
        }
    }
}

/// <summary>What the tests need from a project file: its assembly name and its project references, transitively.</summary>
public static class ProjectFiles
{
    /// <summary>The project and every project it references, directly or not (repository-relative, '/' separated).</summary>
    public static IReadOnlyList<string> Closure(string root, string project)
    {
        var found = new List<string>();
        var pending = new Queue<string>([Normalize(project)]);
        while (pending.Count > 0)
        {
            var next = pending.Dequeue();
            if (found.Contains(next))
            {
                continue;
            }

            found.Add(next);
            var directory = Path.GetDirectoryName(Path.Combine(root, next))!;
            foreach (var reference in Load(root, next).Descendants("ProjectReference"))
            {
                var include = (string?)reference.Attribute("Include");
                if (include is not null)
                {
                    pending.Enqueue(StageFiles.Relative(root, Path.GetFullPath(Path.Combine(directory, include.Replace('\\', '/')))));
                }
            }
        }

        return found;
    }

    /// <summary>The packages a project references itself (its PackageReference items, whatever their condition).</summary>
    public static IEnumerable<string> PackageReferences(string root, string project) =>
        Load(root, project).Descendants("PackageReference").Select(r => (string?)r.Attribute("Include")).OfType<string>();

    public static string AssemblyName(string root, string project) =>
        Load(root, project).Descendants("AssemblyName").Select(e => e.Value.Trim()).FirstOrDefault()
            ?? Path.GetFileNameWithoutExtension(project);

    /// <summary>Projects imported by a props/targets file (paths without MSBuild expressions only).</summary>
    public static IEnumerable<string> Imports(string root, string file)
    {
        var directory = Path.GetDirectoryName(Path.Combine(root, file))!;
        return Load(root, file).Descendants("Import")
            .Select(i => (string?)i.Attribute("Project"))
            .OfType<string>()
            .Where(p => !p.Contains("$(", StringComparison.Ordinal))
            .Select(p => StageFiles.Relative(root, Path.GetFullPath(Path.Combine(directory, p))));
    }

    private static XDocument Load(string root, string file) => XDocument.Load(Path.Combine(root, file));

    private static string Normalize(string path) => path.Replace('\\', '/').TrimStart('.', '/');
}
