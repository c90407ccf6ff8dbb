using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

namespace Serve.TestSupport;

/// <summary>The keys of a server whose key file a test wrote before starting it.</summary>
public sealed record TestKeys(string Inference, string Management, string Api);

/// <summary>
/// Writes a key file in TorchServe's format (<c>key_file.json</c>) before a server starts: Serve keeps keys
/// that are still valid, so the test knows them without reading them back from the server.
/// </summary>
public static class KeyFiles
{
    public static TestKeys Write(string path)
    {
        static string NewKey() => Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        var keys = new TestKeys(NewKey(), NewKey(), NewKey());
        var expires = DateTime.UtcNow.AddMinutes(55).ToString("O", CultureInfo.InvariantCulture);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["inference"] = new Dictionary<string, string> { ["key"] = keys.Inference, ["expiration time"] = expires },
            ["management"] = new Dictionary<string, string> { ["key"] = keys.Management, ["expiration time"] = expires },
            ["API"] = new Dictionary<string, string> { ["key"] = keys.Api },
        }));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return keys;
    }

    /// <summary>An HTTP client for <paramref name="address"/> that presents <paramref name="key"/>.</summary>
    public static HttpClient Client(Uri address, string key, TimeSpan timeout)
    {
        var client = new HttpClient { BaseAddress = address, Timeout = timeout };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
