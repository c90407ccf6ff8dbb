using Serve.Actors.Protocol;

namespace Serve.Gateway.Inference;

/// <summary>How the HTTP and gRPC endpoints reach a model. Replies are never null and never throw for model errors.</summary>
public interface IInferenceClient
{
    /// <summary>
    /// Runs one request on a replica of <paramref name="model"/> (its default version when <paramref name="version"/>
    /// is null), within the model's response timeout or the client's <paramref name="deadline"/>, whichever comes first.
    /// </summary>
    /// <param name="tenant">Whose request it is: the replica queues it with that tenant's weight and bound.</param>
    Task<InferenceReply> InferAsync(
        string model, string? version, InferenceInput input, TenantTag tenant, DateTimeOffset? deadline, CancellationToken cancellationToken);
}
