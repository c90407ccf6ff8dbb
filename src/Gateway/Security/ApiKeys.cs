using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serve.Actors.Hosting;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Security;

/// <summary>Which key a request needs: TorchServe's three.</summary>
public enum KeyKind
{
    /// <summary>The inference APIs (HTTP 8080, gRPC 7070).</summary>
    Inference,

    /// <summary>The management APIs (HTTP 8081, gRPC 7071).</summary>
    Management,

    /// <summary>Only for rotating the other two (<c>/token</c>); never expires.</summary>
    Api,
}

/// <summary>
/// The server's keys, kept in TorchServe's <c>key_file.json</c> format
/// (<c>{"management": {"key", "expiration time"}, "inference": {...}, "API": {"key"}}</c>), readable by its
/// owner only. Keys still valid in an existing file are kept across restarts, so clients need not fetch new
/// ones after every restart; expired ones are replaced. Each key is 32 random bytes (TorchServe: 6).
/// </summary>
public sealed class ApiKeys
{
    private const string KeyField = "key";
    private const string ExpiryField = "expiration time";

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly Dictionary<KeyKind, (string Key, DateTimeOffset? Expires)> _keys;

    public ApiKeys(IOptions<SecurityOptions> security, IOptions<GatewayOptions> gateway, TimeProvider time)
    {
        _time = time;
        _lifetime = TimeSpan.FromMinutes(security.Value.TokenExpirationMinutes);
        FilePath = Path.GetFullPath(security.Value.KeyFile ?? Path.Combine(gateway.Value.DataDirectory, "key_file.json"));
        lock (_lock)
        {
            _keys = Load() ?? [];
            foreach (var kind in Enum.GetValues<KeyKind>())
            {
                if (!_keys.TryGetValue(kind, out var existing) || Expired(existing.Expires))
                {
                    _keys[kind] = New(kind);
                }
            }

            Save();
        }
    }

    /// <summary>The key file's full path (logged at start-up, so an operator can find the keys).</summary>
    public string FilePath { get; }

    /// <summary>
    /// Whether <paramref name="presented"/> is the current, unexpired key of <paramref name="kind"/>. The
    /// comparison takes the same time however much of the key matches.
    /// </summary>
    public bool Accepts(KeyKind kind, string? presented)
    {
        (string Key, DateTimeOffset? Expires) current;
        lock (_lock)
        {
            current = _keys[kind];
        }

        // Hashing first gives equal lengths, so even the length of the key is not revealed by timing.
        var equal = CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(presented ?? string.Empty)),
            SHA256.HashData(Encoding.UTF8.GetBytes(current.Key)));
        return equal && presented is not null && !Expired(current.Expires);
    }

    /// <summary>Replaces the key of <paramref name="kind"/> (with a new expiry) and rewrites the file; returns the new one.</summary>
    public (string Key, DateTimeOffset? Expires) Rotate(KeyKind kind)
    {
        lock (_lock)
        {
            _keys[kind] = New(kind);
            Save();
            return _keys[kind];
        }
    }

    /// <summary>The current key (for tests and tools running beside the server; clients read the file).</summary>
    public string Current(KeyKind kind)
    {
        lock (_lock)
        {
            return _keys[kind].Key;
        }
    }

    public static string Name(KeyKind kind) => kind switch
    {
        KeyKind.Inference => "inference",
        KeyKind.Management => "management",
        _ => "API",
    };

    /// <summary>A new key: 32 random bytes, base64url (the server's keys and tenants' keys alike).</summary>
    public static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private (string Key, DateTimeOffset? Expires) New(KeyKind kind) =>
        (NewKey(), kind == KeyKind.Api ? null : _time.GetUtcNow() + _lifetime);

    private bool Expired(DateTimeOffset? expires) => expires is { } at && at <= _time.GetUtcNow();

    private Dictionary<KeyKind, (string, DateTimeOffset?)>? Load()
    {
        if (!File.Exists(FilePath))
        {
            return null;
        }

        try
        {
            var root = JsonNode.Parse(File.ReadAllText(FilePath))?.AsObject();
            var keys = new Dictionary<KeyKind, (string, DateTimeOffset?)>();
            foreach (var kind in Enum.GetValues<KeyKind>())
            {
                if (root?[Name(kind)]?[KeyField]?.GetValue<string>() is not { Length: >= 32 } key)
                {
                    continue;
                }

                DateTimeOffset? expires = null;
                if (kind != KeyKind.Api)
                {
                    if (!DateTimeOffset.TryParse(root[Name(kind)]?[ExpiryField]?.GetValue<string>(), out var at))
                    {
                        continue;
                    }

                    // A key is never kept longer than the configured lifetime allows from now.
                    expires = at <= _time.GetUtcNow() + _lifetime ? at : null;
                    if (expires is null)
                    {
                        continue;
                    }
                }

                keys[kind] = (key, expires);
            }

            return keys;
        }
        catch (Exception error) when (error is JsonException or InvalidOperationException or FormatException)
        {
            // An unreadable file is replaced by new keys.
            return null;
        }
    }

    private void Save()
    {
        var root = new JsonObject();
        foreach (var (kind, (key, expires)) in _keys.OrderBy(k => k.Key))
        {
            var entry = new JsonObject { [KeyField] = key };
            if (expires is { } at)
            {
                entry[ExpiryField] = at.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture);
            }

            root[Name(kind)] = entry;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
        // A name of its own, so two processes sharing a key file never write the same staging file.
        var staging = $"{FilePath}.{Guid.NewGuid():N}.tmp";
        // Owner-only from the moment it exists, as TorchServe's key file.
        using (var stream = new FileStream(staging, OwnerOnlyFile.CreateNew()))
        {
            stream.Write(Encoding.UTF8.GetBytes(root.ToJsonString(new JsonSerializerOptions { WriteIndented = true })));
        }

        // Replaced in one step: a reader never sees half a file, and the mode is the new file's.
        File.Move(staging, FilePath, overwrite: true);
    }
}
