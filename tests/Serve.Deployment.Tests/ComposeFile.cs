using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Serve.Deployment.Tests;

/// <summary>A published port: host address (null: every interface), host port (null: any) and container port.</summary>
public sealed record PortMapping(string? HostIp, string? Published, string Target, string Text);

/// <summary>A volume or bind mount: source (null for an anonymous volume), container path, read-only or not.</summary>
public sealed record VolumeMount(string? Source, string Target, bool ReadOnly, string Text);

/// <summary>
/// docker-compose.yml read as Compose reads it: YAML merge keys (<c>&lt;&lt;: *anchor</c>) applied, short and long
/// syntaxes of environment, ports, volumes and depends_on both understood. Values are left uninterpolated.
/// </summary>
public sealed class ComposeFile
{
    private ComposeFile(string path, Dictionary<string, object?> root, Dictionary<string, ComposeService> services)
    {
        Path = path;
        Root = root;
        Services = services;
    }

    public string Path { get; }

    public string Directory => System.IO.Path.GetDirectoryName(Path)!;

    public IReadOnlyDictionary<string, object?> Root { get; }

    public IReadOnlyDictionary<string, ComposeService> Services { get; }

    public ComposeService this[string service] =>
        Services.TryGetValue(service, out var found)
            ? found
            : throw new KeyNotFoundException($"{Path} has no service '{service}' (it has: {string.Join(", ", Services.Keys)})");

    public static ComposeFile Load(string path)
    {
        var text = File.ReadAllText(path);

        // Once without merging, to reject duplicate keys as Compose does (merge keys may override on purpose).
        new DeserializerBuilder().WithDuplicateKeyChecking().Build().Deserialize<object>(text);

        using var reader = new StringReader(text);
        var parsed = new DeserializerBuilder().Build().Deserialize<object>(new MergingParser(new Parser(reader)));
        var root = Mapping(parsed, "the document") ?? throw new FormatException($"{path} is empty");
        var services = new Dictionary<string, ComposeService>(StringComparer.Ordinal);
        foreach (var (name, value) in Mapping(root.GetValueOrDefault("services"), "services") ?? [])
        {
            services[name] = new ComposeService(name, Mapping(value, $"services.{name}") ?? []);
        }

        return new ComposeFile(path, root, services);
    }

    /// <summary>A YAML mapping as a dictionary with string keys (null stays null).</summary>
    public static Dictionary<string, object?>? Mapping(object? value, string where) => value switch
    {
        null => null,
        IDictionary<object, object> map => map.ToDictionary(p => Scalar(p.Key)!, p => (object?)p.Value, StringComparer.Ordinal),
        _ => throw new FormatException($"{where} must be a mapping, not {value.GetType().Name}"),
    };

    public static List<object?>? Sequence(object? value, string where) => value switch
    {
        null => null,
        IList<object> list => [.. list],
        _ => throw new FormatException($"{where} must be a sequence, not {value.GetType().Name}"),
    };

    public static string? Scalar(object? value) => value switch
    {
        null => null,
        string s => s,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => throw new FormatException($"expected a scalar, not {value.GetType().Name}"),
    };
}

/// <summary>One service of the compose file.</summary>
public sealed class ComposeService
{
    public ComposeService(string name, Dictionary<string, object?> values)
    {
        Name = name;
        Values = values;
    }

    public string Name { get; }

    public IReadOnlyDictionary<string, object?> Values { get; }

    public object? this[string key] => Values.GetValueOrDefault(key);

    public string? Restart => ComposeFile.Scalar(this["restart"]);

    public IReadOnlyDictionary<string, object?>? Build => this["build"] switch
    {
        null => null,
        string context => new Dictionary<string, object?>(StringComparer.Ordinal) { ["context"] = context },
        var build => ComposeFile.Mapping(build, $"{Name}.build"),
    };

    public string? BuildContext => ComposeFile.Scalar(Build?.GetValueOrDefault("context"));

    /// <summary>The Dockerfile path as written (relative to the build context); Compose's default is "Dockerfile".</summary>
    public string? BuildDockerfile => Build is null ? null : ComposeFile.Scalar(Build.GetValueOrDefault("dockerfile")) ?? "Dockerfile";

    public IReadOnlyDictionary<string, string?> BuildArgs => KeyValues(Build?.GetValueOrDefault("args"), $"{Name}.build.args");

    /// <summary>Environment variables (mapping or <c>KEY=VALUE</c> list), keys compared as .NET configuration compares them.</summary>
    public IReadOnlyDictionary<string, string?> Environment => KeyValues(this["environment"], $"{Name}.environment");

    public IReadOnlyList<string> Profiles =>
        ComposeFile.Sequence(this["profiles"], $"{Name}.profiles")?.Select(p => ComposeFile.Scalar(p)!).ToList() ?? [];

    public IReadOnlyList<string> DependsOn => this["depends_on"] switch
    {
        null => [],
        IDictionary<object, object> => [.. ComposeFile.Mapping(this["depends_on"], $"{Name}.depends_on")!.Keys],
        var list => ComposeFile.Sequence(list, $"{Name}.depends_on")!.Select(s => ComposeFile.Scalar(s)!).ToList(),
    };

    public IReadOnlyDictionary<string, object?>? Healthcheck => ComposeFile.Mapping(this["healthcheck"], $"{Name}.healthcheck");

    /// <summary>The health check's command as words (<c>CMD</c>/<c>CMD-SHELL</c> dropped), or empty when none or disabled.</summary>
    public IReadOnlyList<string> HealthcheckCommand
    {
        get
        {
            var health = Healthcheck;
            if (health is null || ComposeFile.Scalar(health.GetValueOrDefault("disable")) is "true" or "True")
            {
                return [];
            }

            var words = health.GetValueOrDefault("test") switch
            {
                null => [],
                string shell => [shell],
                var list => ComposeFile.Sequence(list, $"{Name}.healthcheck.test")!.Select(w => ComposeFile.Scalar(w)!).ToList(),
            };
            return words is ["NONE", ..] ? [] : words.SkipWhile(w => w is "CMD" or "CMD-SHELL").ToList();
        }
    }

    public IReadOnlyList<PortMapping> Ports =>
        ComposeFile.Sequence(this["ports"], $"{Name}.ports")?.Select(p => ParsePort(p, Name)).ToList() ?? [];

    public IReadOnlyList<VolumeMount> Volumes =>
        ComposeFile.Sequence(this["volumes"], $"{Name}.volumes")?.Select(v => ParseVolume(v, Name)).ToList() ?? [];

    public override string ToString() => Name;

    private static Dictionary<string, string?> KeyValues(object? value, string where)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        switch (value)
        {
            case null:
                break;
            case IDictionary<object, object>:
                foreach (var (key, item) in ComposeFile.Mapping(value, where)!)
                {
                    result[key] = ComposeFile.Scalar(item);
                }

                break;
            default:
                foreach (var item in ComposeFile.Sequence(value, where)!.Select(ComposeFile.Scalar))
                {
                    var equals = item!.IndexOf('=', StringComparison.Ordinal);
                    result[equals < 0 ? item : item[..equals]] = equals < 0 ? null : item[(equals + 1)..];
                }

                break;
        }

        return result;
    }

    /// <summary>Short syntax <c>[[IP:](HOST_PORT):]CONTAINER_PORT[/PROTOCOL]</c> or the long mapping syntax.</summary>
    private static PortMapping ParsePort(object? value, string service)
    {
        if (value is IDictionary<object, object>)
        {
            var map = ComposeFile.Mapping(value, $"{service}.ports")!;
            return new PortMapping(
                ComposeFile.Scalar(map.GetValueOrDefault("host_ip")),
                ComposeFile.Scalar(map.GetValueOrDefault("published")),
                ComposeFile.Scalar(map.GetValueOrDefault("target")) ?? throw new FormatException($"{service}: a long-syntax port needs a target"),
                string.Join(", ", map.Select(p => $"{p.Key}: {p.Value}")));
        }

        var text = ComposeFile.Scalar(value)!;
        var spec = text.Split('/')[0];
        string? ip = null;
        if (spec.StartsWith('['))
        {
            var close = spec.IndexOf(']', StringComparison.Ordinal);
            ip = spec[1..close];
            spec = spec[(close + 2)..];
        }

        var parts = spec.Split(':');
        return parts.Length switch
        {
            1 => new PortMapping(ip, null, parts[0], text),
            2 => new PortMapping(ip, parts[0], parts[1], text),
            3 => new PortMapping(parts[0], parts[1], parts[2], text),
            _ => throw new FormatException($"{service}: port '{text}' is not [IP:]HOST:CONTAINER"),
        };
    }

    /// <summary>Short syntax <c>[SOURCE:]TARGET[:MODE]</c> or the long mapping syntax.</summary>
    private static VolumeMount ParseVolume(object? value, string service)
    {
        if (value is IDictionary<object, object>)
        {
            var map = ComposeFile.Mapping(value, $"{service}.volumes")!;
            return new VolumeMount(
                ComposeFile.Scalar(map.GetValueOrDefault("source")),
                ComposeFile.Scalar(map.GetValueOrDefault("target")) ?? throw new FormatException($"{service}: a long-syntax volume needs a target"),
                ComposeFile.Scalar(map.GetValueOrDefault("read_only")) is "true" or "True",
                string.Join(", ", map.Select(p => $"{p.Key}: {p.Value}")));
        }

        var text = ComposeFile.Scalar(value)!;
        var parts = text.Split(':');
        return parts.Length switch
        {
            1 => new VolumeMount(null, parts[0], false, text),
            2 => new VolumeMount(parts[0], parts[1], false, text),
            _ => new VolumeMount(parts[0], parts[1], parts[2].Split(',').Contains("ro"), text),
        };
    }
}
