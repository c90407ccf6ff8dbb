namespace Serve.Actors.Hosting;

/// <summary>Cluster membership and remoting for one node. Section <c>Serve:Cluster</c>.</summary>
public sealed class ServeClusterOptions
{
    public const string Section = "Serve:Cluster";

    /// <summary>Name of the actor system; every node of one cluster must use the same. Env: Serve__Cluster__SystemName.</summary>
    public string SystemName { get; set; } = "serve";

    /// <summary>Address remoting binds to; loopback unless configured. Env: Serve__Cluster__Hostname.</summary>
    public string Hostname { get; set; } = "127.0.0.1";

    /// <summary>Remoting port; 0 picks a free one (only useful for a standalone node). Env: Serve__Cluster__Port.</summary>
    public int Port { get; set; } = 4053;

    /// <summary>Address other nodes use to reach this one, when it differs from <see cref="Hostname"/> (NAT, containers).</summary>
    public string? PublicHostname { get; set; }

    /// <summary>
    /// Seed nodes, as <c>host:port</c> or full addresses (<c>akka.ssl.tcp://serve@host:port</c>). Empty: this
    /// node forms a cluster of its own (standalone). Env: Serve__Cluster__Seeds__0, Serve__Cluster__Seeds__1, ...
    /// </summary>
    public string[] Seeds { get; set; } = [];

    /// <summary>The seeds as full addresses: a bare <c>host:port</c> gets this node's scheme and system name.</summary>
    public string[] SeedAddresses => [.. Seeds.Select(seed => seed.Contains("://", StringComparison.Ordinal) ? seed : $"{Protocol}://{SystemName}@{seed}")];

    /// <summary>This node's own address as other nodes name it.</summary>
    public string SelfAddress => $"{Protocol}://{SystemName}@{PublicHostname ?? Hostname}:{Port}";

    /// <summary>
    /// Where a gateway keeps the addresses of the cluster's other members, and adds them to its seeds at the
    /// next start, so that started again alone it rejoins the running workers (<see cref="KnownMembers"/>).
    /// Gateways with seeds default to <c>cluster-members.json</c> in the data directory; empty: nothing kept.
    /// Env: Serve__Cluster__MembersFile.
    /// </summary>
    public string? MembersFile { get; set; }

    /// <summary>A node whose only seed is itself (or that has none) founds the cluster rather than joining one.</summary>
    public bool FoundsCluster => SeedAddresses.All(seed => seed == SelfAddress);

    /// <summary>
    /// Largest remoting frame: bounds the largest request or response that crosses nodes. Must be the same
    /// on every node (a receiver with a smaller limit drops the connection). Env: Serve__Cluster__MaximumFrameSizeBytes.
    /// </summary>
    public long MaximumFrameSizeBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>Room in a frame for everything but the payload (envelope, names, settings).</summary>
    public const long FrameOverheadBytes = 64 * 1024;

    /// <summary>The largest request or answer payload that fits in one frame between nodes.</summary>
    public long MaximumPayloadBytes => MaximumFrameSizeBytes - FrameOverheadBytes;

    /// <summary>
    /// The cluster's certificate (PKCS#12), shared by every node: remoting runs over mutual TLS and a node is
    /// accepted only if it presents this very certificate (pinned by thumbprint) or a trusted one, so a process
    /// without it can neither join nor send the cluster a message. Without a configured keystore a node uses
    /// <c>cluster.p12</c> in its data directory, which the founding node creates on first start.
    /// <see cref="ClusterTlsOptions.TrustedThumbprints"/> adds certificates a node also accepts, for rotating
    /// the certificate one node at a time. Env: Serve__Cluster__Tls__Keystore, Serve__Cluster__Tls__KeystorePassword,
    /// Serve__Cluster__Tls__TrustedThumbprints__N.
    /// </summary>
    public ClusterTlsOptions Tls { get; set; } = new();

    /// <summary>
    /// The opt-out: plain, unauthenticated <c>akka.tcp</c>, where anything that reaches the port can join. Logged
    /// as a warning at every start. Env: Serve__Cluster__Plaintext; switch --cluster-plaintext.
    /// </summary>
    public bool Plaintext { get; set; }

    public bool TlsEnabled => !Plaintext;

    /// <summary>The seed address scheme: <c>akka.ssl.tcp</c> with cluster TLS, else <c>akka.tcp</c>.</summary>
    public string Protocol => TlsEnabled ? "akka.ssl.tcp" : "akka.tcp";

    /// <summary>
    /// How long heartbeats from a node may pause before the failure detector marks it unreachable (Akka's
    /// acceptable-heartbeat-pause; its default is 3 s). Shorter finds a dead node sooner; a node frozen longer
    /// (a GC or CPU pause) is marked unreachable too, and reachable again when it resumes.
    /// </summary>
    public TimeSpan HeartbeatPause { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a node must stay unreachable, with nothing else changing, before the split-brain resolver
    /// downs it (and singletons and shards on it move). Replicas do not wait for this: the registry replaces
    /// those of a worker unreachable for 2 s. The registry singleton and sharding's coordinator do: a gateway
    /// killed is replaced within about HeartbeatPause + StableAfter + 3 s. A node frozen (GC, CPU starvation,
    /// SIGSTOP) longer than about HeartbeatPause + StableAfter + 1 s is downed and must restart; raise this
    /// where such pauses happen, at the cost of slower gateway failover.
    /// </summary>
    public TimeSpan StableAfter { get; set; } = TimeSpan.FromSeconds(3);

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(SystemName))
        {
            problems.Add("Serve:Cluster:SystemName must not be empty");
        }

        if (Port is < 0 or > 65535)
        {
            problems.Add($"Serve:Cluster:Port must be 0-65535, not {Port}");
        }

        if (HeartbeatPause < TimeSpan.FromSeconds(1) || StableAfter < TimeSpan.FromSeconds(1))
        {
            problems.Add($"Serve:Cluster:HeartbeatPause ({HeartbeatPause}) and StableAfter ({StableAfter}) must each be at least 1 s: shorter downs healthy nodes");
        }

        if (MaximumFrameSizeBytes < 128_000)
        {
            problems.Add($"Serve:Cluster:MaximumFrameSizeBytes must be at least 128000, not {MaximumFrameSizeBytes}");
        }

        foreach (var seed in SeedAddresses)
        {
            if (!seed.StartsWith($"{Protocol}://{SystemName}@", StringComparison.Ordinal))
            {
                problems.Add($"seed '{seed}' must look like host:port or {Protocol}://{SystemName}@host:port" + (TlsEnabled
                    ? " (cluster TLS is on; plain akka.tcp only with Serve:Cluster:Plaintext=true)"
                    : " (Serve:Cluster:Plaintext is on)"));
            }
        }

        if (TlsEnabled)
        {
            problems.AddRange(KeystoreProblems());
        }

        foreach (var thumbprint in Tls.TrustedThumbprints)
        {
            if (ClusterTlsOptions.Normalize(thumbprint) is not { Length: 40 } normalized || !normalized.All(Uri.IsHexDigit))
            {
                problems.Add($"Serve:Cluster:Tls:TrustedThumbprints: '{thumbprint}' is not a certificate thumbprint (40 hex digits, the SHA-1 " +
                             "that openssl x509 -fingerprint -sha1 prints)");
            }
        }

        if (Tls.TrustedThumbprints.Length > 0 && Plaintext)
        {
            problems.Add("Serve:Cluster:Tls:TrustedThumbprints is set but cluster TLS is off (Serve:Cluster:Plaintext)");
        }

        return problems;
    }

    private IEnumerable<string> KeystoreProblems()
    {
        if (string.IsNullOrEmpty(Tls.Keystore))
        {
            // Only a host that skips AddServeCluster (which fills in the data directory's file) gets here.
            yield return "cluster TLS needs Serve:Cluster:Tls:Keystore (or Serve:Cluster:Plaintext=true)";
            yield break;
        }

        if (!File.Exists(Tls.Keystore))
        {
            yield return $"cluster TLS is on and this node has no cluster certificate at {Tls.Keystore}. Every node needs a copy of the " +
                         $"same one: copy the founding gateway's (its data directory's {ClusterCertificate.DefaultFileName}) and set " +
                         $"Serve:Cluster:Tls:Keystore to it, or make one for all nodes with 'dotnet Serve.Node.dll {ClusterCertificate.Verb} PATH'. " +
                         "Plain unauthenticated akka.tcp only with Serve:Cluster:Plaintext=true";
            yield break;
        }

        string? error = null;
        try
        {
            using var certificate = Tls.Load();
            if (!certificate.HasPrivateKey)
            {
                error = "it holds no private key";
            }
        }
        catch (Exception failure) when (failure is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
        {
            error = failure.Message;
        }

        if (error is not null)
        {
            yield return $"Serve:Cluster:Tls:Keystore {Tls.Keystore} could not be loaded: {error}";
        }
    }
}

/// <summary>The cluster's PKCS#12 certificate; see <see cref="ServeClusterOptions.Tls"/>.</summary>
public sealed class ClusterTlsOptions
{
    public string? Keystore { get; set; }

    public string? KeystorePassword { get; set; }

    /// <summary>
    /// Thumbprints (SHA-1, hex; colons and spaces ignored) of other certificates this node accepts from its
    /// peers besides its own. Rotation: trust the new certificate on every node, then give each node the new
    /// certificate with the old one trusted, then drop the old one; the cluster stays up throughout.
    /// </summary>
    public string[] TrustedThumbprints { get; set; } = [];

    /// <summary>Every thumbprint a peer may present: this node's certificate's and the trusted ones.</summary>
    public string[] AcceptedThumbprints(System.Security.Cryptography.X509Certificates.X509Certificate2 own) =>
        [own.Thumbprint, .. TrustedThumbprints.Select(Normalize)];

    public static string Normalize(string thumbprint) =>
        new([.. thumbprint.Where(c => c is not (':' or ' '))]);

    public System.Security.Cryptography.X509Certificates.X509Certificate2 Load() =>
        System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(
            Keystore!, KeystorePassword, System.Security.Cryptography.X509Certificates.X509KeyStorageFlags.Exportable);
}

/// <summary>Cluster roles. A standalone node has both.</summary>
public static class ServeRoles
{
    public const string Gateway = "gateway";
    public const string Worker = "worker";
}
