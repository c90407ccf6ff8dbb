using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Inference;

/// <summary>Finds a model version in the catalog, or says why it cannot (TorchServe's messages).</summary>
public static class ModelLookup
{
    /// <summary>
    /// Finds the model as <paramref name="tenant"/> sees it: a model it may not call is "not found", with the
    /// same message as one that does not exist, so names do not leak between tenants.
    /// </summary>
    public static ServeError? Find(CatalogState catalog, string model, string? version, out CatalogEntry? entry, string tenant = ModelDefinition.AdminTenant)
    {
        entry = null;
        if (!catalog.Received)
        {
            return ServeErrors.CatalogNotArrived;
        }

        entry = catalog.Find(model, version);
        if (entry is not null && entry.Definition.VisibleTo(tenant))
        {
            return null;
        }

        entry = null;
        return ServeErrors.NotFound(model, version, modelExists: catalog.VersionsOf(model).Any(e => e.Definition.VisibleTo(tenant)));
    }
}
