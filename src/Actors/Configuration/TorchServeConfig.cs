using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Serve.Actors.Configuration;

/// <summary>What reading a TorchServe config.properties gave: Serve's settings, and the keys it did not apply, with why.</summary>
public sealed record TorchServeConfigResult(
    string Path,
    IReadOnlyDictionary<string, string?> Settings,
    IReadOnlyList<string> Applied,
    IReadOnlyList<string> NotApplied,
    IReadOnlyList<string> Unknown,
    IReadOnlyList<string> Problems);

/// <summary>
/// TorchServe's config.properties, so a TorchServe user can bring their file: the keys that mean something
/// to Serve become Serve's configuration keys; the others are reported once (not applicable, not supported
/// yet, or unknown). Values may name environment variables as <c>$$VAR$$</c>; with
/// <c>enable_envvars_config=true</c>, <c>TS_&lt;KEY&gt;</c> environment variables override the file (and
/// <c>TS_ALLOWED_URLS</c> only with <c>use_env_allowed_urls=true</c>), as in TorchServe.
/// </summary>
public static partial class TorchServeConfig
{
    public const string FileName = "config.properties";

    /// <summary>TorchServe keys that map one to one onto a Serve key.</summary>
    private static readonly Dictionary<string, string> Mapped = new(StringComparer.Ordinal)
    {
        ["inference_address"] = "Serve:InferenceAddress",
        ["management_address"] = "Serve:ManagementAddress",
        ["metrics_address"] = "Serve:MetricsAddress",
        ["enable_metrics_api"] = "Serve:EnableMetricsApi",
        ["metrics_mode"] = "Serve:MetricsMode",
        ["model_store"] = "Serve:ModelStore",
        ["load_models"] = "Serve:LoadModels",
        ["default_workers_per_model"] = "Serve:DefaultWorkersPerModel",
        ["job_queue_size"] = "Serve:JobQueueSize",
        ["max_request_size"] = "Serve:MaxRequestSize",
        ["max_response_size"] = "Serve:MaxResponseSize",
        ["default_response_timeout"] = "Serve:DefaultResponseTimeout",
        ["default_startup_timeout"] = "Serve:DefaultStartupTimeout",
        ["enable_model_api"] = "Serve:EnableModelApi",
        ["disable_token_authorization"] = "Serve:Security:DisableTokenAuthorization",
        ["certificate_file"] = "Serve:Tls:CertificateFile",
        ["private_key_file"] = "Serve:Tls:PrivateKeyFile",
        ["keystore"] = "Serve:Tls:Keystore",
        ["keystore_pass"] = "Serve:Tls:KeystorePassword",
        ["token_expiration_min"] = "Serve:Security:TokenExpirationMinutes",
        ["require_signed_archives"] = "Serve:Archives:RequireSigned",
    };

    /// <summary>
    /// TorchServe gives each gRPC listener as a host (<c>grpc_inference_address</c>, default 127.0.0.1) and a
    /// port (<c>grpc_inference_port</c>, default 7070); Serve takes one address, http://host:port.
    /// </summary>
    private static readonly (string Host, string Port, string ServeKey, int DefaultPort)[] GrpcListeners =
    [
        ("grpc_inference_address", "grpc_inference_port", "Serve:GrpcInferenceAddress", 7070),
        ("grpc_management_address", "grpc_management_port", "Serve:GrpcManagementAddress", 7071),
    ];

    /// <summary>Keys that only steer how other keys are read.</summary>
    private static readonly string[] Control = ["enable_envvars_config", "use_env_allowed_urls", "allowed_urls"];

    /// <summary>Keys Serve will apply once the feature exists: setting them must not pass silently.</summary>
    private static readonly Dictionary<string, string> NotYet = new(StringComparer.Ordinal)
    {
        ["grpc_inference_max_connection_age_ms"] = "Serve does not limit the age of gRPC connections",
        ["grpc_management_max_connection_age_ms"] = "Serve does not limit the age of gRPC connections",
        ["grpc_inference_max_connection_age_grace_ms"] = "Serve does not limit the age of gRPC connections",
        ["grpc_management_max_connection_age_grace_ms"] = "Serve does not limit the age of gRPC connections",
        ["metrics_config"] = "Serve's metric families are fixed (README, Metrics)",
        ["models"] = "per-model settings in config.properties are not supported yet: give them in load_models (name=file?batch_size=...) or Serve:Models",
        ["number_of_gpu"] = "Serve uses every CUDA device it finds",
        ["unregister_model_timeout"] = "unregistering does not wait for workers in Serve",
        ["cors_allowed_origin"] = "CORS is not supported yet",
        ["cors_allowed_methods"] = "CORS is not supported yet",
        ["cors_allowed_headers"] = "CORS is not supported yet",
    };

    /// <summary>TLS keys read with others: the keystore's type, and whether the gRPC listeners serve TLS.</summary>
    private static readonly string[] Tls = ["keystore_type", "enable_grpc_ssl"];

    /// <summary>Keys about TorchServe's Python workers, Netty or Java: they have no meaning in Serve.</summary>
    private static readonly string[] NotApplicable =
    [
        "number_of_netty_threads", "netty_client_threads", "prefer_direct_buffer", "use_native_io", "io_ratio", "async_logging",
        "initial_worker_port", "initial_distribution_port", "install_py_dep_per_model", "blacklist_env_vars",
        "default_service_handler", "service_envelope", "decode_input_request", "limit_max_image_pixels",
        "ipex_enable", "ipex_gpu_enable", "cpu_launcher_enable", "cpu_launcher_args", "model_server_home", "python",
        "cpp_log_config", "debug", "vmargs", "plugins_path", "workflow_store", "model_snapshot", "model_metrics_auto_detect",
        "disable_system_metrics", "system_metrics_cmd", "metric_time_interval", "ts_open_inference_protocol",
        "ts_header_key_sequence_id", "ts_header_key_sequence_start", "ts_header_key_sequence_end",
    ];

    /// <summary>
    /// The file to read: <c>TS_CONFIG_FILE</c>, else <paramref name="explicitPath"/> (<c>--ts-config</c>), else
    /// config.properties in the working directory when it exists. Null when there is none.
    /// </summary>
    public static string? Locate(string? explicitPath, Func<string, string?> environment)
    {
        if (environment("TS_CONFIG_FILE") is { Length: > 0 } fromEnvironment)
        {
            return fromEnvironment;
        }

        if (!string.IsNullOrEmpty(explicitPath))
        {
            return explicitPath;
        }

        return File.Exists(FileName) ? System.IO.Path.GetFullPath(FileName) : null;
    }

    public static TorchServeConfigResult Read(string path, Func<string, string?> environment)
    {
        if (!File.Exists(path))
        {
            return new TorchServeConfigResult(path, new Dictionary<string, string?>(), [], [], [], [$"TorchServe configuration {path} does not exist"]);
        }

        return Translate(path, ParseProperties(File.ReadAllText(path)), environment);
    }

    /// <summary>Turns TorchServe keys into Serve's settings (pure: the environment is passed in).</summary>
    public static TorchServeConfigResult Translate(string path, IReadOnlyDictionary<string, string> properties, Func<string, string?> environment)
    {
        var problems = new List<string>();
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, raw) in properties)
        {
            values[key] = SubstituteEnvironment(key, raw, environment, problems);
        }

        if (IsTrue(values, "enable_envvars_config"))
        {
            foreach (var key in Mapped.Keys.Concat(GrpcListeners.SelectMany(g => new[] { g.Host, g.Port })).Append("allowed_urls"))
            {
                if (key == "allowed_urls" && !IsTrue(values, "use_env_allowed_urls"))
                {
                    continue;
                }

                if (environment("TS_" + key.ToUpperInvariant()) is { } overridden)
                {
                    values[key] = overridden;
                }
            }
        }

        var settings = new Dictionary<string, string?>(StringComparer.Ordinal);
        var applied = new List<string>();
        var notApplied = new List<string>();
        var unknown = new List<string>();
        foreach (var (key, value) in values.OrderBy(v => v.Key, StringComparer.Ordinal))
        {
            if (Mapped.TryGetValue(key, out var serveKey))
            {
                settings[serveKey] = value;
                applied.Add(key);
            }
            else if (key == "allowed_urls")
            {
                var patterns = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                for (var i = 0; i < patterns.Length; i++)
                {
                    settings[$"Serve:AllowedUrls:{i}"] = patterns[i];
                }

                applied.Add(key);
            }
            else if (GrpcListeners.Any(g => g.Host == key || g.Port == key))
            {
                applied.Add(key);
            }
            else if (Control.Contains(key))
            {
                applied.Add(key);
            }
            else if (Tls.Contains(key))
            {
                // keystore_type: Serve reads PKCS#12 only; anything else would fail later with a less clear message.
                if (key == "keystore_type" && !value.Equals("PKCS12", StringComparison.OrdinalIgnoreCase))
                {
                    problems.Add($"keystore_type {value} is not supported: convert the keystore to PKCS#12 (keytool -importkeystore -deststoretype PKCS12)");
                }

                applied.Add(key);
            }
            else if (NotYet.TryGetValue(key, out var why))
            {
                notApplied.Add($"{key} ({why})");
            }
            else if (NotApplicable.Contains(key))
            {
                notApplied.Add($"{key} (does not apply to Serve)");
            }
            else
            {
                unknown.Add(key);
            }
        }

        foreach (var (hostKey, portKey, serveKey, defaultPort) in GrpcListeners)
        {
            if (GrpcAddress(values, hostKey, portKey, defaultPort, problems) is { } address)
            {
                settings[serveKey] = address;
            }
        }

        return new TorchServeConfigResult(path, settings, applied, notApplied, unknown, problems);
    }

    private static string? GrpcAddress(Dictionary<string, string> values, string hostKey, string portKey, int defaultPort, List<string> problems)
    {
        var host = values.GetValueOrDefault(hostKey);
        var portText = values.GetValueOrDefault(portKey);
        if (host is null && portText is null)
        {
            // enable_grpc_ssl alone: TorchServe's default address, with TLS.
            return IsTrue(values, "enable_grpc_ssl") ? $"https://127.0.0.1:{defaultPort}" : null;
        }

        // Serve's own form (http://host:port) is taken as it is.
        if (host is not null && host.Contains("://", StringComparison.Ordinal))
        {
            return host;
        }

        var port = defaultPort;
        if (portText is not null && !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port))
        {
            problems.Add($"{portKey} must be a port number, not '{portText}'");
            return null;
        }

        host = string.IsNullOrEmpty(host) ? "127.0.0.1" : host;
        var scheme = IsTrue(values, "enable_grpc_ssl") ? "https" : "http";
        return $"{scheme}://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host.Trim('[', ']')}]" : host)}:{port}";
    }

    /// <summary>
    /// Java's properties format: <c>key=value</c>, <c>key: value</c> or <c>key value</c>; <c>#</c> and <c>!</c>
    /// comments; a line ending in an odd number of backslashes continues on the next; Java's escapes.
    /// </summary>
    public static Dictionary<string, string> ParseProperties(string text)
    {
        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in LogicalLines(text))
        {
            var (key, value) = SplitKeyValue(line);
            properties[Unescape(key)] = Unescape(value);
        }

        return properties;
    }

    private static IEnumerable<string> LogicalLines(string text)
    {
        var pending = new StringBuilder();
        foreach (var physical in text.ReplaceLineEndings("\n").Split('\n'))
        {
            var line = physical.TrimStart(' ', '\t', '\f');
            if (pending.Length == 0 && (line.Length == 0 || line[0] is '#' or '!'))
            {
                continue;
            }

            var trailingBackslashes = line.Length - line.TrimEnd('\\').Length;
            if (trailingBackslashes % 2 == 1)
            {
                pending.Append(line, 0, line.Length - 1);
                continue;
            }

            pending.Append(line);
            yield return pending.ToString();
            pending.Clear();
        }

        if (pending.Length > 0)
        {
            yield return pending.ToString();
        }
    }

    private static (string Key, string Value) SplitKeyValue(string line)
    {
        var end = 0;
        while (end < line.Length && line[end] is not ('=' or ':' or ' ' or '\t' or '\f'))
        {
            end += line[end] == '\\' ? 2 : 1;
        }

        end = Math.Min(end, line.Length);
        var rest = end;
        while (rest < line.Length && line[rest] is ' ' or '\t' or '\f')
        {
            rest++;
        }

        if (rest < line.Length && line[rest] is '=' or ':')
        {
            rest++;
            while (rest < line.Length && line[rest] is ' ' or '\t' or '\f')
            {
                rest++;
            }
        }

        return (line[..end], line[rest..]);
    }

    private static string Unescape(string text)
    {
        if (!text.Contains('\\', StringComparison.Ordinal))
        {
            return text;
        }

        var result = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] != '\\' || i + 1 == text.Length)
            {
                result.Append(text[i]);
                continue;
            }

            var next = text[++i];
            if (next == 'u' && i + 4 < text.Length
                && int.TryParse(text.AsSpan(i + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code))
            {
                result.Append((char)code);
                i += 4;
                continue;
            }

            result.Append(next switch { 't' => '\t', 'n' => '\n', 'r' => '\r', 'f' => '\f', _ => next });
        }

        return result.ToString();
    }

    private static string SubstituteEnvironment(string key, string value, Func<string, string?> environment, List<string> problems) =>
        EnvironmentReference().Replace(value, match =>
        {
            var name = match.Groups["name"].Value;
            if (environment(name) is { } found)
            {
                return found;
            }

            problems.Add($"{key}: environment variable {name} (referenced as $${name}$$) is not set");
            return string.Empty;
        });

    private static bool IsTrue(Dictionary<string, string> values, string key) =>
        values.TryGetValue(key, out var value) && bool.TryParse(value, out var flag) && flag;

    [GeneratedRegex(@"\$\$(?<name>[A-Za-z_][A-Za-z0-9_]*)\$\$", RegexOptions.CultureInvariant)]
    private static partial Regex EnvironmentReference();
}
