using Serve.Actors.Batching;
using Serve.Actors.Protocol;

namespace Serve.Actors.Models;

/// <summary>What a new definition means for a replica.</summary>
public enum DefinitionChange
{
    /// <summary>The first definition it has: load the model.</summary>
    FirstLoad,

    /// <summary>The model itself changed (file, handler, labels, vocabulary): load it again.</summary>
    Reload,

    /// <summary>Only serving settings changed (batching, queue size, timeout): they apply from the next batch.</summary>
    ServingSettingsOnly,
}

/// <summary>
/// A replica's load-and-restart cycle, without Akka: its state and since when, the token of the current
/// load, failures in a row against the restart backoff, the last error, and whether it is handing off.
/// It decides; the actor performs (loads, timers, disposal) and reports what it shows.
/// </summary>
public sealed class ReplicaLifecycle(ReplicaId replica, RestartBackoff backoff, TimeProvider time)
{
    // Identifies the current load; compared by reference, so completions from an earlier load, or from
    // before an actor restart, never pass for the current one.
    private object _generation = new();

    public ReplicaState State { get; private set; } = ReplicaState.Starting;

    public DateTime SinceUtc { get; private set; } = time.GetUtcNow().UtcDateTime;

    public ModelDefinition? Definition { get; private set; }

    /// <summary>The device the registry planned for it; null lets the node choose.</summary>
    public string? PlannedDevice { get; private set; }

    /// <summary>The current load's token; results carry the token they were started under.</summary>
    public object Generation => _generation;

    public int ConsecutiveFailures { get; private set; }

    public int Restarts { get; private set; }

    public string? LastError { get; private set; }

    /// <summary>Moving to another node or stopping: takes no more requests and loads nothing.</summary>
    public bool HandingOff { get; private set; }

    /// <summary>Why a request is refused now; null when it is queued (loading or ready).</summary>
    public string? RefusalReason => HandingOff
        ? "is moving to another node"
        : State is ReplicaState.Failed or ReplicaState.Rejected or ReplicaState.Restarting
            ? $"is {State.ToString().ToLowerInvariant()}: {LastError}"
            : null;

    /// <summary>Takes <paramref name="definition"/>, which must be this replica's, and says what it changes.</summary>
    public DefinitionChange Adopt(ModelDefinition definition, string? plannedDevice)
    {
        if (definition.Key != replica.Key)
        {
            throw new ArgumentException($"replica {replica} was given the definition of {definition.Key}", nameof(definition));
        }

        PlannedDevice = plannedDevice ?? PlannedDevice;
        var previous = Definition;
        Definition = definition;
        if (previous is null)
        {
            return DefinitionChange.FirstLoad;
        }

        if (!SameModel(previous, definition))
        {
            ConsecutiveFailures = 0;
            return DefinitionChange.Reload;
        }

        return DefinitionChange.ServingSettingsOnly;
    }

    /// <summary>A load starts: a fresh token, and the replica is Loading.</summary>
    public object BeginLoad()
    {
        _generation = new object();
        Enter(ReplicaState.Loading);
        return _generation;
    }

    public bool IsCurrent(object generation) => ReferenceEquals(generation, _generation);

    /// <summary>A restart timer fired: load again only if nothing has happened since it was set.</summary>
    public bool RetryIsDue(object generation) => IsCurrent(generation) && State == ReplicaState.Restarting && !HandingOff;

    public void Loaded() => Enter(ReplicaState.Ready);

    /// <summary>A batch ran to completion: the failures in a row end.</summary>
    public void Served() => ConsecutiveFailures = 0;

    /// <summary>
    /// Loading or running failed with <paramref name="cause"/>: Restarting after the returned delay, or, after
    /// too many failures in a row, Failed (null) until its definition changes.
    /// </summary>
    public TimeSpan? Fail(string cause)
    {
        ConsecutiveFailures++;
        LastError = cause;
        if (backoff.GivesUpAfter(ConsecutiveFailures))
        {
            Enter(ReplicaState.Failed);
            return null;
        }

        Restarts++;
        Enter(ReplicaState.Restarting);
        return backoff.DelayAfter(ConsecutiveFailures);
    }

    /// <summary>Failed at once, no backoff and no retry (the device is broken for this process).</summary>
    public void FailForGood(string cause)
    {
        ConsecutiveFailures++;
        LastError = cause;
        Enter(ReplicaState.Failed);
    }

    /// <summary>The model file cannot be used: Rejected, no backoff and no retry, until the definition changes.</summary>
    public void Reject(string cause)
    {
        LastError = cause;
        Enter(ReplicaState.Rejected);
    }

    public void BeginHandOff() => HandingOff = true;

    public void Stopped() => Enter(ReplicaState.Stopped);

    private void Enter(ReplicaState state)
    {
        if (State != state)
        {
            State = state;
            SinceUtc = time.GetUtcNow().UtcDateTime;
        }
    }

    private static bool SameModel(ModelDefinition a, ModelDefinition b) =>
        a.Source == b.Source && a.Handler == b.Handler && a.LabelsPath == b.LabelsPath && a.VocabPath == b.VocabPath;
}
