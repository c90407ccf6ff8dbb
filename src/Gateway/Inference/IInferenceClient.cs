using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Gateway.Inference;

/// <summary>How the HTTP and gRPC endpoints reach a model. Replies are never null and never throw for model errors.</summary>
public interface IInferenceClient
{
    /// <summary>
    /// Runs one request on a replica of <paramref name="model"/>, within the model's response timeout or the
    /// client's <paramref name="deadline"/>, whichever comes first.
    /// </summary>
    /// <param name="model">The model version, as the endpoint's one lookup found it for the calling tenant
    /// (<see cref="ModelLookup.Find"/>): nothing after the edge resolves a name again.</param>
    /// <param name="tenant">Whose request it is: the replica queues it with that tenant's weight and bound.</param>
    Task<InferenceReply> InferAsync(
        CatalogEntry model, InferenceInput input, TenantTag tenant, DateTimeOffset? deadline, CancellationToken cancellationToken);
}
