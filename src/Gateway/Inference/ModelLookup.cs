using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Inference;

/// <summary>Finds a model version in the catalog, or says why it cannot (TorchServe's messages).</summary>
public static class ModelLookup
{
    public static ServeError? Find(CatalogState catalog, string model, string? version, out CatalogEntry? entry)
    {
        entry = null;
        if (!catalog.Received)
        {
            return new ServeError(ServeErrorKind.Unavailable, "The cluster is starting: the model catalog has not arrived yet; retry shortly");
        }

        entry = catalog.Find(model, version);
        if (entry is not null)
        {
            return null;
        }

        return new ServeError(ServeErrorKind.NotFound, catalog.VersionsOf(model).Count == 0 || string.IsNullOrEmpty(version)
            ? $"Model not found: {model}"
            : $"Model version: {version} does not exist for model: {model}");
    }
}
