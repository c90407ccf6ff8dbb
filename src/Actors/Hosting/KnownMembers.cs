using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace Serve.Actors.Hosting;

/// <summary>
/// The other members of the cluster as a gateway last saw them, kept in a file in its data directory. A
/// gateway started again alone, when its seeds name only itself, would otherwise found a new cluster of
/// one beside the workers still running; with them appended to its seeds it asks them first, joins the
/// cluster they are in, and founds a new one only if none answers (after Akka's seed-node-timeout, 5 s) or
/// none is in a cluster (every node of the cluster restarted too).
/// </summary>
public static class KnownMembers
{
    public const string DefaultFileName = "cluster-members.json";

    /// <summary>The addresses in <paramref name="path"/>; none when it is missing or unreadable (it is only a hint).</summary>
    public static IReadOnlyList<string> Read(string? path)
    {
        try
        {
            return !string.IsNullOrEmpty(path) && File.Exists(path)
                ? JsonSerializer.Deserialize<string[]>(File.ReadAllText(path)) ?? []
                : [];
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Replaces the file whole (a reader never sees half of it).</summary>
    public static void Write(string path, IEnumerable<string> addresses)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(addresses.Order(StringComparer.Ordinal).ToArray()));
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>
    /// The addresses to join through: the configured seeds, then the remembered members that are not among
    /// them (never this node itself). Akka asks every seed; the first that answers from a cluster wins.
    /// </summary>
    public static string[] SeedsWithRemembered(ServeClusterOptions options)
    {
        var seeds = options.SeedAddresses;
        return [.. seeds, .. Read(options.MembersFile).Where(m => m != options.SelfAddress && !seeds.Contains(m)).Distinct()];
    }
}

/// <summary>Keeps <see cref="KnownMembers"/>' file in step with the cluster's membership, as this node sees it.</summary>
public sealed class KnownMembersWriter : ReceiveActor
{
    private readonly SortedSet<string> _members = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _path;

    public KnownMembersWriter(string path)
    {
        _path = path;
        var self = Cluster.Get(Context.System).SelfAddress;
        Receive<ClusterEvent.IMemberEvent>(change =>
        {
            var address = change.Member.Address;
            var changed = address != self && (change is ClusterEvent.MemberRemoved
                ? _members.Remove(address.ToString())
                : _members.Add(address.ToString()));
            if (!changed)
            {
                return;
            }

            try
            {
                KnownMembers.Write(path, _members);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _log.Warning("Could not keep the cluster's members in {0} (a gateway started again alone may found a new cluster): {1}", path, e.Message);
            }
        });
    }

    public static Props Props(string path) => Akka.Actor.Props.Create(() => new KnownMembersWriter(path));

    protected override void PreStart()
    {
        // The file still holds what the last run saw: those addresses are among the seeds of this start.
        if (KnownMembers.Read(_path) is { Count: > 0 } remembered)
        {
            _log.Info("Joining through the configured seeds and the {0} member(s) last seen ({1}), before founding a new cluster",
                remembered.Count, string.Join(", ", remembered));
        }

        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
    }

    protected override void PostStop() => Cluster.Get(Context.System).Unsubscribe(Self);
}
