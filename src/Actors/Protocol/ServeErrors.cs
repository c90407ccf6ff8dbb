namespace Serve.Actors.Protocol;

/// <summary>
/// Serve's error messages, written once so that every API, protocol and node says the same thing. The texts are
/// TorchServe's where TorchServe has one (clients match on them).
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

    // A replica's answers when a request does not run.

    /// <summary>The replica cannot take requests now; <paramref name="why"/> reads after "replica N".</summary>
    public static ServeError ReplicaUnavailable(ReplicaId replica, string why) =>
        new(ServeErrorKind.Unavailable, $"Model \"{replica.Model}\" replica {replica.Index} {why}");

    public static ServeError ReplicaStopped(ReplicaId replica) => new(ServeErrorKind.Unavailable,
        $"replica {replica} stopped (moved to another node or removed); retry the request");

    public static ServeError TenantQueueFull(string tenant, int held, ReplicaId replica) => new(ServeErrorKind.QuotaExceeded,
        $"Tenant \"{tenant}\" has {held} requests queued for model \"{replica.Model}\" version {replica.Version} (its queue limit); try again later");

    public static ServeError QueueFull(ReplicaId replica, int capacity) => new(ServeErrorKind.Overloaded,
        $"Model \"{replica.Model}\" version {replica.Version} has {capacity} requests queued (job_queue_size); try again later");

    /// <summary>The queue was full and another tenant was owed room: the newest request of the tenant most over its share leaves.</summary>
    public static ServeError PushedOut(string tenant, int held, ReplicaId replica, int capacity) => new(ServeErrorKind.QuotaExceeded,
        $"Tenant \"{tenant}\" has {held} requests queued for model \"{replica.Model}\" version {replica.Version}, more than its share of the full queue ({capacity}, job_queue_size) while other tenants wait; try again later");

    public static ServeError DeadlinePassed(string model) => new(ServeErrorKind.DeadlineExceeded,
        $"The request's deadline passed while it waited for model \"{model}\"");

    public static ServeError CancelledBeforeRun { get; } =
        new(ServeErrorKind.Cancelled, "The client cancelled the request before it ran");

    /// <summary>The model's batch threw; a cancelled batch (the replica stopping) is Unavailable, anything else ModelFailed.</summary>
    public static ServeError FailedWhileRunning(string model, string cause, bool cancelled) =>
        new(cancelled ? ServeErrorKind.Unavailable : ServeErrorKind.ModelFailed, $"Model \"{model}\" failed while running: {cause}");

    /// <summary>A replica's answer too large for a frame between nodes (Akka.Remote would drop it silently).</summary>
    public static ServeError ReplyTooLarge(long bytes, long limit) => new(ServeErrorKind.ResourceExhausted,
        $"The answer is {bytes} bytes, more than the {limit} a message between nodes can carry (Serve:Cluster:MaximumFrameSizeBytes)");

    // The gateway's answers when no replica answered.

    /// <summary>TorchServe's answer for a model version scaled to no workers.</summary>
    public static ServeError NoWorkers(ModelKey model) => new(ServeErrorKind.Unavailable,
        $"Model \"{model.Name}\" Version {model.Version} has no worker to serve inference request. Please use scale workers API to add workers.");

    public static ServeError NoReplicaPlaced(ModelKey model, string? unplaced) => new(ServeErrorKind.Unavailable,
        $"Model \"{model.Name}\" Version {model.Version} has no replica placed yet: {unplaced ?? "the registry is placing them"}");

    public static ServeError NoReplicaCanServe(ModelKey model, string why) => new(ServeErrorKind.Unavailable,
        $"Model \"{model.Name}\" Version {model.Version} has no replica that can serve now: {why}");

    /// <summary>A decoded request larger than a message to another node can carry (Akka.Remote would drop it silently).</summary>
    public static ServeError PayloadTooLargeForFrame(long bytes, long limit) => new(ServeErrorKind.PayloadTooLarge,
        $"The request is {bytes} bytes once decoded (JSON numbers become binary tensors, INT64 and FP64 at 8 bytes each), " +
        $"more than the {limit} bytes a message to another node can carry (Serve:Cluster:MaximumFrameSizeBytes); " +
        "send smaller requests, or raise the frame size on every node");

    public static ServeError ClientDeadlinePassed(string model) =>
        new(ServeErrorKind.DeadlineExceeded, $"The request's deadline passed before model \"{model}\" answered");

    public static ServeError ResponseTimeout(string model, int seconds) =>
        new(ServeErrorKind.DeadlineExceeded, $"Model \"{model}\" did not answer within its response timeout of {seconds} s");

    public static ServeError ReplicaDidNotAnswer(ReplicaId replica, TimeSpan left) => new(ServeErrorKind.DeadlineExceeded,
        $"Replica {replica} did not answer within the {left.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)} s left before the request's deadline");

    public static ServeError ClientCancelled { get; } = new(ServeErrorKind.Cancelled, "The client cancelled the request");

    public static ServeError ReplicaGone(ReplicaId replica) => new(ServeErrorKind.Unavailable,
        $"Replica {replica} stopped, or its node became unreachable or left the cluster");

    // Requests the gateway refuses before any model sees them.

    /// <summary>One message whatever was wrong with the key, so an answer never says which part failed.</summary>
    public static ServeError TokenAuthorizationFailed { get; } = new(ServeErrorKind.Unauthenticated,
        "Token authorization failed: the token is missing, wrong or expired. Send " +
        "'Authorization: Bearer <key>' with the key for this API from the server's key file.");

    public static ServeError InvalidJsonBody(string reason) => new(ServeErrorKind.BadInput, $"The request body is not valid JSON: {reason}");

    /// <summary>TorchServe's wording for a request without a model name (gRPC), also used by the Open Inference Protocol.</summary>
    public static ServeError ModelNameRequired { get; } = new(ServeErrorKind.BadInput, "Parameter model_name is required.");

    /// <summary>A reply type the gateway does not know: a bug, never a client's fault.</summary>
    public static ServeError UnexpectedReply(object reply) => new(ServeErrorKind.Internal, $"unexpected reply {reply.GetType().Name}");

    // Management: TorchServe's texts where TorchServe has them.

    public static ServeError ModelApiDisabled { get; } = new(ServeErrorKind.Disabled,
        "Registering and unregistering models is disabled on this server. Enable it with enable_model_api=true " +
        "(Serve:EnableModelApi, environment Serve__EnableModelApi=true) if clients of the management API may change the models.");

    public static ServeError UrlRequired { get; } = new(ServeErrorKind.BadInput, "Parameter url is required.");

    public static ServeError RelativePathInUrl(string url) => new(ServeErrorKind.NotFound, $"Relative path is not allowed in url: {url}");

    public static ServeError UrlNotAllowed(string url) => new(ServeErrorKind.NotFound, $"Given URL {url} does not match any allowed URL(s)");

    public static ServeError InvalidRuntime(string runtime) => new(ServeErrorKind.BadInput, $"Invalid RuntimeType value: {runtime}");

    public static ServeError MaxWorkerBelowMinWorker { get; } = new(ServeErrorKind.BadInput, "max_worker cannot be less than min_worker.");

    public static ServeError NotRegistered(ModelKey model, string refusal) =>
        new(ServeErrorKind.BadInput, $"Model {model.Name} version {model.Version} was not registered: {refusal}");

    public static ServeError FailedToStartWorkers(ModelKey model) =>
        new(ServeErrorKind.Internal, $"Failed to start workers for model {model.Name} version: {model.Version}");

    public static ServeError TenantExists(string tenant) => new(ServeErrorKind.Conflict, $"Tenant \"{tenant}\" already exists");
}
