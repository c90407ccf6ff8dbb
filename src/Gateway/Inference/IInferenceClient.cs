using Serve.Actors.Protocol;

namespace Serve.Gateway.Inference;

/// <summary>How the HTTP (and later gRPC) endpoints reach a model. Replies are never null and never throw for model errors.</summary>
public interface IInferenceClient
{
    /// <summary>Runs one request on a replica of <paramref name="model"/> (its default version when <paramref name="version"/> is null).</summary>
    Task<InferenceReply> InferAsync(string model, string? version, InferenceInput input, CancellationToken cancellationToken);
}
