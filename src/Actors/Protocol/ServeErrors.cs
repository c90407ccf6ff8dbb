namespace Serve.Actors.Protocol;

/// <summary>
/// The error messages that more than one place raises, written once so that every API, protocol and node says
/// the same thing. The texts are TorchServe's where TorchServe has one (clients match on them).
/// </summary>
public static class ServeErrors
{
    public static ServeError ModelNotFound(string model) => new(ServeErrorKind.NotFound, $"Model not found: {model}");

    /// <summary>TorchServe's answer for an unknown version of a model that exists (inference, describe, scale).</summary>
    public static ServeError VersionNotFound(string model, string version) =>
        new(ServeErrorKind.NotFound, $"Model version: {version} does not exist for model: {model}");

    /// <summary>
    /// The not-found answer for <paramref name="model"/> at <paramref name="version"/> (null or empty: its
    /// default): the version's message only when the model exists, so an unknown model is never told apart.
    /// </summary>
    public static ServeError NotFound(string model, string? version, bool modelExists) =>
        modelExists && !string.IsNullOrEmpty(version) ? VersionNotFound(model, version) : ModelNotFound(model);

    /// <summary>TorchServe's own wording for an unknown version in set-default, which differs from the others.</summary>
    public static ServeError DefaultVersionNotFound(string model, string version) =>
        new(ServeErrorKind.NotFound, $"Model version {version} does not exist for model {model}");

    public static ServeError ModelFileNotFound(string location) => new(ServeErrorKind.NotFound, $"Model not found at: {location}");

    public static ServeError TenantNotFound(string tenant) => new(ServeErrorKind.NotFound, $"Tenant not found: {tenant}");

    public static ServeError CatalogNotArrived { get; } =
        new(ServeErrorKind.Unavailable, "The cluster is starting: the model catalog has not arrived yet; retry shortly");

    /// <summary>A rendered answer over TorchServe's max_response_size, in whatever protocol it was rendered.</summary>
    public static ServeError ResponseTooLarge(long bytes, long limit) =>
        new(ServeErrorKind.ResourceExhausted, $"The response is {bytes} bytes, more than max_response_size ({limit} bytes)");
}
