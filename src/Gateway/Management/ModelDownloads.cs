using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Management;

/// <summary>Where a registration's model file is, once its URL was accepted: a file name in the model store.</summary>
/// <param name="Downloaded">The file was downloaded for this registration (and is removed if it fails).</param>
public sealed record ModelFile(string FileName, bool Downloaded);

/// <summary>
/// TorchServe's <c>allowed_urls</c>, deny by default: an http(s) or file URL may be registered only when it
/// fully matches one of the configured patterns (case-insensitive). URLs with <c>..</c> (plain or
/// percent-encoded) or user information are refused before any pattern is tried.
/// </summary>
public sealed class AllowedUrls
{
    private static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(100);
    private readonly Regex[] _patterns;

    public AllowedUrls(IEnumerable<string> patterns) =>
        _patterns = [.. patterns.Select(p => new Regex($"^(?:{p})\\z", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, MatchTimeout))];

    /// <summary>Patterns that do not compile, for start-up validation.</summary>
    public static IReadOnlyList<string> Problems(IEnumerable<string> patterns)
    {
        var problems = new List<string>();
        foreach (var pattern in patterns)
        {
            try
            {
                _ = new Regex(pattern, RegexOptions.None, MatchTimeout);
            }
            catch (ArgumentException error)
            {
                problems.Add($"Serve:AllowedUrls pattern '{pattern}' is not a valid regular expression: {error.Message}");
            }
        }

        return problems;
    }

    /// <summary>Null when <paramref name="url"/> may be fetched; else why not, with TorchServe's status and message.</summary>
    public ServeError? Check(string url)
    {
        if (url.Contains("..", StringComparison.Ordinal) || Uri.UnescapeDataString(url).Contains("..", StringComparison.Ordinal))
        {
            return ServeErrors.RelativePathInUrl(url);
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https" or "file")
            || uri.UserInfo.Length > 0
            || !_patterns.Any(p => Matches(p, url)))
        {
            return ServeErrors.UrlNotAllowed(url);
        }

        return null;
    }

    private static bool Matches(Regex pattern, string url)
    {
        try
        {
            return pattern.IsMatch(url);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }
}

/// <summary>
/// Resolves a registration's <c>url</c> to a file in the model store: a bare file name as is; a file URL
/// only inside the model store; an http(s) URL downloaded (redirects followed only to allowed URLs, at
/// most <see cref="GatewayOptions.MaxDownloadSize"/> bytes) into a temporary file that is renamed into
/// the store once complete, so the store never holds half a model.
/// </summary>
public sealed class ModelDownloads(IOptions<GatewayOptions> options) : IDisposable
{
    private const int MaxRedirects = 5;
    private const string PartialSuffix = ".partial";

    private readonly HttpClient _http = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        AutomaticDecompression = System.Net.DecompressionMethods.None,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly AllowedUrls _allowed = new(options.Value.AllowedUrls);

    public static bool IsUrl(string url) => url.Contains("://", StringComparison.Ordinal);

    public async Task<Result<ModelFile>> ResolveAsync(string url, CancellationToken cancellation)
    {
        var settings = options.Value;
        if (!IsUrl(url))
        {
            return new ModelFile(url, Downloaded: false);
        }

        if (_allowed.Check(url) is { } refused)
        {
            return refused;
        }

        if (settings.ModelStore is null)
        {
            return new ServeError(ServeErrorKind.BadInput, "No model store is configured (model_store, --model-store) to register models into");
        }

        var uri = new Uri(url);
        return uri.IsFile ? InStore(uri, settings.ModelStore) : await DownloadAsync(uri, settings, cancellation);
    }

    /// <summary>Removes a file downloaded for a registration that did not happen.</summary>
    public void Discard(ModelFile file)
    {
        if (file.Downloaded && options.Value.ModelStore is { } store)
        {
            File.Delete(Path.Combine(store, file.FileName));
        }
    }

    public void Dispose() => _http.Dispose();

    private static Result<ModelFile> InStore(Uri uri, string modelStore)
    {
        var store = Path.GetFullPath(modelStore);
        var path = Path.GetFullPath(uri.LocalPath);
        return Path.GetDirectoryName(path) == store.TrimEnd(Path.DirectorySeparatorChar)
            ? new ModelFile(Path.GetFileName(path), Downloaded: false)
            : new ServeError(ServeErrorKind.NotFound, $"A file URL must name a file directly in the model store: {uri}");
    }

    private async Task<Result<ModelFile>> DownloadAsync(Uri uri, GatewayOptions settings, CancellationToken cancellation)
    {
        var fileName = Path.GetFileName(Uri.UnescapeDataString(uri.AbsolutePath));
        if (fileName.Length == 0 || fileName.Contains(PartialSuffix, StringComparison.Ordinal) || fileName.StartsWith('.'))
        {
            return new ServeError(ServeErrorKind.BadInput, $"The URL does not end in a model file name: {uri}");
        }

        var target = Path.Combine(settings.ModelStore!, fileName);
        if (File.Exists(target))
        {
            return AlreadyExists(fileName);
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(TimeSpan.FromSeconds(settings.DefaultStartupTimeout));
        var partial = Path.Combine(settings.ModelStore!, $".{fileName}.{Guid.NewGuid():N}{PartialSuffix}");
        try
        {
            var (fetched, refused) = await GetFollowingAllowedRedirectsAsync(uri, deadline.Token);
            using var response = fetched;
            if (refused is not null)
            {
                return refused;
            }

            if (response is null || !response.IsSuccessStatusCode)
            {
                return DownloadFailed(uri);
            }

            if (response.Content.Headers.ContentLength > settings.MaxDownloadSize)
            {
                return TooLarge(uri, settings);
            }

            await using (var body = await response.Content.ReadAsStreamAsync(deadline.Token))
            await using (var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                if (!await CopyAtMostAsync(body, file, settings.MaxDownloadSize, deadline.Token))
                {
                    return TooLarge(uri, settings);
                }
            }

            // Atomic within one file system; refuses (rather than replaces) a file that appeared meanwhile.
            try
            {
                File.Move(partial, target, overwrite: false);
            }
            catch (IOException) when (File.Exists(target))
            {
                return AlreadyExists(fileName);
            }

            return new ModelFile(fileName, Downloaded: true);
        }
        catch (Exception error) when (error is HttpRequestException or IOException
                                      || (error is OperationCanceledException && !cancellation.IsCancellationRequested))
        {
            return DownloadFailed(uri);
        }
        finally
        {
            File.Delete(partial);
        }
    }

    /// <summary>The response, or why a redirect was refused: every hop must be an allowed http(s) URL.</summary>
    private async Task<(HttpResponseMessage? Response, ServeError? Refused)> GetFollowingAllowedRedirectsAsync(Uri uri, CancellationToken cancellation)
    {
        for (var hop = 0; hop <= MaxRedirects; hop++)
        {
            var response = await _http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellation);
            if ((int)response.StatusCode is < 300 or > 399 || response.Headers.Location is not { } location)
            {
                return (response, null);
            }

            response.Dispose();
            uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
            if (uri.IsFile || _allowed.Check(uri.AbsoluteUri) is not null)
            {
                return (null, ServeErrors.UrlNotAllowed($"{uri} (a redirect)"));
            }
        }

        return (null, null);
    }

    private static async Task<bool> CopyAtMostAsync(Stream from, Stream to, long limit, CancellationToken cancellation)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = await from.ReadAsync(buffer, cancellation)) > 0)
        {
            total += read;
            if (total > limit)
            {
                return false;
            }

            await to.WriteAsync(buffer.AsMemory(0, read), cancellation);
        }

        return true;
    }

    private static ServeError AlreadyExists(string fileName) => new(ServeErrorKind.Internal, $"Model file already exists {fileName}");

    private static ServeError DownloadFailed(Uri uri) => new(ServeErrorKind.BadInput, $"Failed to download archive from: {uri}");

    private static ServeError TooLarge(Uri uri, GatewayOptions settings) => new(ServeErrorKind.PayloadTooLarge,
        $"The model at {uri} is larger than Serve:MaxDownloadSize ({settings.MaxDownloadSize} bytes)");
}
