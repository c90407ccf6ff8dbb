using System.Text;
using System.Text.RegularExpressions;

namespace Serve.Deployment.Tests;

/// <summary>
/// .dockerignore rules as Docker applies them: paths relative to the context root, <c>*</c> and <c>?</c> within
/// one path segment, <c>**</c> across any number of segments, <c>!</c> re-includes, the last matching rule wins,
/// and a rule that matches a directory matches everything under it.
/// </summary>
public sealed class DockerIgnore
{
    private readonly List<(string Text, Regex Pattern, bool Excludes)> _rules;

    private DockerIgnore(List<(string Text, Regex Pattern, bool Excludes)> rules) => _rules = rules;

    public IEnumerable<string> Patterns => _rules.Select(r => r.Text);

    public static DockerIgnore Load(string path)
    {
        var rules = new List<(string, Regex, bool)>();
        foreach (var raw in File.ReadAllLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var excludes = !line.StartsWith('!');
            var pattern = (excludes ? line : line[1..].Trim()).Trim('/');
            if (pattern.StartsWith("./", StringComparison.Ordinal))
            {
                pattern = pattern[2..];
            }

            rules.Add((line, ToRegex(pattern), excludes));
        }

        return new DockerIgnore(rules);
    }

    /// <summary>Whether <paramref name="relativePath"/> (relative to the context root, '/' separated) is left out of the context.</summary>
    public bool IsExcluded(string relativePath) => Deciding(relativePath) is { Excludes: true };

    /// <summary>The rule that decides <paramref name="relativePath"/>'s fate (the last that matches), for failure messages.</summary>
    public string? RuleFor(string relativePath) => Deciding(relativePath)?.Text;

    private (string Text, Regex Pattern, bool Excludes)? Deciding(string relativePath)
    {
        var path = relativePath.Replace('\\', '/').Trim('/');
        if (path.StartsWith("./", StringComparison.Ordinal))
        {
            path = path[2..];
        }

        if (path.Length == 0 || path == ".")
        {
            return null;
        }

        // The path itself and every directory above it.
        var candidates = new List<string>();
        for (var slash = path.IndexOf('/', StringComparison.Ordinal); slash >= 0; slash = path.IndexOf('/', slash + 1))
        {
            candidates.Add(path[..slash]);
        }

        candidates.Add(path);
        (string, Regex, bool)? deciding = null;
        foreach (var rule in _rules)
        {
            if (candidates.Any(rule.Pattern.IsMatch))
            {
                deciding = rule;
            }
        }

        return deciding;
    }

    private static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                var slashAfter = i + 2 < pattern.Length && pattern[i + 2] == '/';
                regex.Append(slashAfter ? "(.*/)?" : ".*");
                i += slashAfter ? 2 : 1;
            }
            else if (c == '*')
            {
                regex.Append("[^/]*");
            }
            else if (c == '?')
            {
                regex.Append("[^/]");
            }
            else
            {
                regex.Append(Regex.Escape(c.ToString()));
            }
        }

        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
