using Serve.Actors.Protocol;

namespace Serve.Actors.Models;

/// <summary>
/// The seam between the actors and libtorch. The worker node implements it with TorchSharp; the actors
/// only see inputs, outputs and failures.
/// </summary>
public interface IInferenceBackend
{
    /// <summary>
    /// Loads one replica's model on <paramref name="device"/> (the registry's plan) when this node has it,
    /// else on a device the node chooses. Throws <see cref="ModelLoadException"/> with a message that names
    /// the file and the cause.
    /// </summary>
    Task<ILoadedModel> LoadAsync(ReplicaId replica, ModelDefinition definition, string? device, CancellationToken cancellationToken);
}

/// <summary>A model loaded on one device, ready to run batches.</summary>
public interface ILoadedModel : IAsyncDisposable
{
    /// <summary>The device it runs on, e.g. <c>cuda:0</c> or <c>cpu:1</c>.</summary>
    string Device { get; }

    ModelSignature Signature { get; }

    /// <summary>Bytes the model's parameters and buffers take on its device; -1 when not known.</summary>
    long MemoryBytes => -1;

    /// <summary>
    /// Starts decoding one request (images, JSON) as soon as it is queued, so that pre-processing
    /// overlaps the device's work on the batch before it. Never throws: problems surface in
    /// <see cref="InferAsync"/> as that request's outcome.
    /// </summary>
    IPreparedInput Prepare(InferenceInput input);

    /// <summary>
    /// Runs one batch of prepared requests. A request the model cannot take (bad input) fails alone, as an
    /// outcome; a fault of the model itself throws <see cref="ModelExecutionException"/> and fails the batch.
    /// </summary>
    Task<BatchResult> InferAsync(IReadOnlyList<IPreparedInput> batch, CancellationToken cancellationToken);
}

/// <summary>A request being or already decoded by the model that will run it; opaque to the actors.</summary>
public interface IPreparedInput;

public sealed record BatchResult(IReadOnlyList<InferenceOutcome> Outcomes, TimeSpan DeviceTime);

/// <summary>The result for one request of a batch.</summary>
public abstract record InferenceOutcome
{
    public sealed record Success(InferenceOutput Output) : InferenceOutcome;

    public sealed record Failure(ServeError Error) : InferenceOutcome;
}

/// <summary>Loading a model failed; the message says which file and why.</summary>
/// <param name="Rejected">The file itself is unusable (not a model libtorch loads, or one that would crash
/// the node): loading it again cannot succeed, so the replica is not retried.</param>
public sealed class ModelLoadException(string message, Exception? inner = null, bool rejected = false) : Exception(message, inner)
{
    public bool Rejected { get; } = rejected;
}

/// <summary>The model failed while running, not because of its input; the replica restarts.</summary>
public sealed class ModelExecutionException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A fault that breaks <see cref="Device"/> for the whole process: a CUDA device-side assert or illegal
/// memory access sticks to the process's CUDA context until the process exits, so every later call on that
/// device fails too and reloading the replica in place cannot help. The replica fails for good and the
/// worker publishes <see cref="ProcessPoisoned"/>: its process must restart.
/// </summary>
public sealed class DeviceFaultException(string device, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Device { get; } = device;
}

/// <summary>On the local event stream: a replica hit a <see cref="DeviceFaultException"/>; only a new process recovers.</summary>
public sealed record ProcessPoisoned(ReplicaId Replica, string Device, string Cause);
