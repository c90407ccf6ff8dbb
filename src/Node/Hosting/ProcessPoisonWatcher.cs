using Akka.Actor;
using Akka.Event;
using Serve.Actors.Models;

namespace Serve.Node.Hosting;

/// <summary>
/// On a worker: when a replica reports that a device is broken for this process (<see cref="ProcessPoisoned"/>:
/// a sticky CUDA error), stops the process once, gracefully (it leaves the cluster and hands its other
/// replicas off, so the registry places them elsewhere at once), with exit code
/// <see cref="ExitCode"/> for its supervisor (compose's restart policy, systemd, Kubernetes) to start a
/// fresh one. Reloading in place would only fail again on the same broken context.
/// </summary>
public sealed class ProcessPoisonWatcher : ReceiveActor
{
    /// <summary>EX_TEMPFAIL: the process failed, and starting it again is the cure.</summary>
    public const int ExitCode = 75;

    public ProcessPoisonWatcher(Action<ProcessPoisoned> restartProcess)
    {
        var log = Context.GetLogger();
        Receive<ProcessPoisoned>(poisoned =>
        {
            log.Error("Device {0} is broken for this process (replica {1}: {2}). Leaving the cluster and exiting with code {3} " +
                      "so that the process supervisor starts a fresh worker", poisoned.Device, poisoned.Replica, poisoned.Cause, ExitCode);
            restartProcess(poisoned);
            Become(() => Receive<ProcessPoisoned>(_ => { })); // once: the process is already stopping
        });
    }

    public static Props Props(Action<ProcessPoisoned> restartProcess) =>
        Akka.Actor.Props.Create(() => new ProcessPoisonWatcher(restartProcess));

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(ProcessPoisoned));

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);
}
