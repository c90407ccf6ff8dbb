namespace Serve.Actors.Protocol;

/// <summary>
/// The kinds of failure a request can meet, anywhere in the cluster. The gateway's error table maps each
/// to one HTTP status and one gRPC code, so every protocol reports a failure the same way.
/// </summary>
public enum ServeErrorKind
{
    /// <summary>The request itself is wrong (malformed, wrong shape or datatype, not an image).</summary>
    BadInput,

    /// <summary>No such model or version.</summary>
    NotFound,

    /// <summary>It exists already (a model version registered twice).</summary>
    Conflict,

    /// <summary>Not allowed in this state (removing the default version while others exist).</summary>
    Forbidden,

    /// <summary>Turned off on this server (registering models when the model API is disabled).</summary>
    Disabled,

    /// <summary>The model's queue is full.</summary>
    Overloaded,

    /// <summary>No replica can serve now (none placed, loading failed, restarting, node lost).</summary>
    Unavailable,

    /// <summary>The request's deadline passed before it could be answered.</summary>
    DeadlineExceeded,

    /// <summary>The client went away.</summary>
    Cancelled,

    /// <summary>The request body is larger than the configured maximum.</summary>
    PayloadTooLarge,

    /// <summary>The device ran out of memory or another resource.</summary>
    ResourceExhausted,

    /// <summary>The model failed while running (not because of the input).</summary>
    ModelFailed,

    /// <summary>A fault in Serve itself.</summary>
    Internal,

    /// <summary>The caller did not prove who it is (no credentials, or wrong ones).</summary>
    Unauthenticated,

    /// <summary>The caller is known but may not do this.</summary>
    PermissionDenied,

    /// <summary>The caller's quota is used up for now; retrying later can succeed.</summary>
    QuotaExceeded,
}

public sealed record ServeError(ServeErrorKind Kind, string Message) : IServeMessage;
