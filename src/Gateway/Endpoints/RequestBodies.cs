using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Serve.Actors.Protocol;
using Serve.Gateway.Hosting;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// Reads request bodies within max_request_size, refusing larger ones before reading them, and holds the one
/// rule for max_response_size (<see cref="RefuseResponse"/>).
/// </summary>
public sealed partial class RequestBodies(IOptions<GatewayOptions> options)
{
    private readonly long _maxRequestSize = options.Value.MaxRequestSize;

    public long MaxResponseSize { get; } = options.Value.MaxResponseSize;

    /// <summary>
    /// Why a rendered answer of <paramref name="bytes"/> may not be sent (TorchServe's max_response_size), or
    /// null; every protocol asks this once, of the bytes it would send.
    /// </summary>
    public ServeError? RefuseResponse(long bytes) => bytes > MaxResponseSize ? ServeErrors.ResponseTooLarge(bytes, MaxResponseSize) : null;

    /// <summary>The whole body, or an error saying why not.</summary>
    public async Task<Result<byte[]>> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > _maxRequestSize)
        {
            return TooLarge(request.ContentLength.Value);
        }

        try
        {
            // Grow with what arrives rather than trusting Content-Length with an allocation up front.
            using var buffer = new MemoryStream((int)Math.Min(request.ContentLength ?? 4096, 81_920));
            await request.Body.CopyToAsync(buffer, cancellationToken);
            if (buffer.Length > _maxRequestSize)
            {
                return TooLarge(buffer.Length);
            }

            return buffer.ToArray();
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return TooLarge(null);
        }
    }

    /// <summary>TorchServe's inputs: multipart and form fields become named parts; any other body is one part, <c>body</c>.</summary>
    public async Task<Result<InferenceInput>> ReadTorchServeInputAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.HasFormContentType && !IsUrlEncoded(request))
        {
            if (request.ContentLength > _maxRequestSize)
            {
                return TooLarge(request.ContentLength.Value);
            }

            IFormCollection form;
            try
            {
                form = await request.ReadFormAsync(cancellationToken);
            }
            catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                return TooLarge(null);
            }
            catch (Exception error) when (error is InvalidDataException or IOException or BadHttpRequestException)
            {
                return new ServeError(ServeErrorKind.BadInput, $"The form data could not be read: {error.Message}");
            }

            var parts = new List<PayloadPart>();
            foreach (var (name, values) in form)
            {
                parts.AddRange(values.Select(v => new PayloadPart(name, "text/plain", System.Text.Encoding.UTF8.GetBytes(v ?? string.Empty))));
            }

            foreach (var file in form.Files)
            {
                using var stream = new MemoryStream((int)Math.Min(file.Length, 81_920));
                await file.CopyToAsync(stream, cancellationToken);
                parts.Add(new PayloadPart(file.Name, file.ContentType, stream.ToArray()));
            }

            return parts.Count == 0 || parts.All(p => p.Data.Length == 0)
                ? EmptyBody()
                : new RawInput([.. parts]);
        }

        var (body, problem) = await ReadAsync(request, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        if (body!.Length == 0)
        {
            return EmptyBody();
        }

        if (IsUrlEncoded(request) && UrlEncodedFields(body) is { } fields)
        {
            return new RawInput(fields);
        }

        return RawInput.FromBody(request.ContentType, body);
    }

    private static bool IsUrlEncoded(HttpRequest request) =>
        request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>
    /// Fields of a real url-encoded form; null when the body only looks like one (curl -d sends JSON,
    /// base64 or text as url-encoded by default): then the body itself is the input. A real form has
    /// values and plain field names.
    /// </summary>
    private static PayloadPart[]? UrlEncodedFields(byte[] body)
    {
        var text = System.Text.Encoding.UTF8.GetString(body);
        var fields = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(text);
        if (fields.All(f => f.Value.All(string.IsNullOrEmpty)) || !fields.Keys.All(FieldName().IsMatch))
        {
            return null;
        }

        return [.. fields.SelectMany(f => f.Value.Select(v =>
            new PayloadPart(f.Key, "text/plain", System.Text.Encoding.UTF8.GetBytes(v ?? string.Empty))))];
    }

    public static FormOptions FormOptions(long maxRequestSize) => new()
    {
        MultipartBodyLengthLimit = maxRequestSize,
        ValueLengthLimit = (int)Math.Min(int.MaxValue, maxRequestSize),
        ValueCountLimit = 256,
        MultipartHeadersCountLimit = 16,
        BufferBodyLengthLimit = maxRequestSize,
    };

    private static ServeError EmptyBody() =>
        new(ServeErrorKind.BadInput, "The request body is empty: send the model's input (an image, JSON tensors, ...)");

    private ServeError TooLarge(long? size) => new(ServeErrorKind.PayloadTooLarge, size is { } s
        ? $"The request body is {s} bytes, more than max_request_size ({_maxRequestSize} bytes)"
        : $"The request body is larger than max_request_size ({_maxRequestSize} bytes)");

    [System.Text.RegularExpressions.GeneratedRegex(@"^[A-Za-z0-9_.-]{1,64}\z")]
    private static partial System.Text.RegularExpressions.Regex FieldName();
}
