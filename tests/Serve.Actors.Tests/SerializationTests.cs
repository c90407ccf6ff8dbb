using Akka.Serialization;
using Serve.Actors.Hosting;
using Serve.Actors.Protocol;
using Serve.Actors.Registry;

namespace Serve.Actors.Tests;

/// <summary>Every message that crosses nodes survives the cluster serializer; nothing else gets through it.</summary>
public sealed class SerializationTests(ClusterFixture cluster) : IClassFixture<ClusterFixture>
{
    private static readonly ReplicaId Replica = new("resnet18", "1.0", 2);

    private static readonly ModelDefinition Definition = new("resnet18", "1.0",
        new BuiltInSource("resnet18", "/models/w.pth", 7, [new ModelParameter("num_classes", "10")]),
        BuiltInHandlers.ImageClassifier, 2, 8, 5, 100, 120, "/models/index_to_name.json");

    private static readonly NamedTensor Tensor = new("x", TensorDataType.FP32, [1, 2], [0, 0, 128, 63, 0, 0, 0, 64]);

    private static readonly ReplicaStatus Status = new(Replica, ReplicaState.Ready, "akka.tcp://serve@127.0.0.1:4053", "cpu:0",
        new ModelSignature("pytorch_torchscript", [new TensorSpec("input__0", TensorDataType.FP32, [-1, 10])], []), 3, "boom",
        new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc));

    private static readonly TenantDefinition Tenant = new("team-a", "Team A", [new string('a', 64)], 2, 50, 100, 16, 32, 3, 8, 40_000);

    public static TheoryData<IServeMessage> Messages() =>
    [
        Definition,
        Definition with { Source = new TorchScriptSource("tiny.pt") },
        Definition with { VocabPath = "/models/vocab.txt" },
        new EnsureReplica(Replica, Definition),
        new InferenceRequest(Replica, "r1", RawInput.FromBody("image/jpeg", [1, 2, 3]), TimeSpan.FromSeconds(120), TenantTag.Admin),
        new InferenceRequest(Replica, "r2", new RawInput([new PayloadPart("data", null, [9]), new PayloadPart("other", "text/plain", [])]), TimeSpan.FromSeconds(1), TenantTag.Admin),
        new InferenceRequest(Replica, "r3", new TensorInput([Tensor], ["out"]), TimeSpan.FromMilliseconds(1), TenantTag.Admin),
        new InferenceRequest(Replica, "r4", new TensorInput([Tensor], null), TimeSpan.Zero, TenantTag.Admin),
        new InferenceRequest(Replica, "r5", RawInput.FromBody(null, [7]), TimeSpan.FromSeconds(30), new TenantTag("team-a", 4, 25)),
        new CancelInference(Replica, "r1"),
        new InferenceSucceeded("r1", new DocumentOutput("application/json", "{}"u8.ToArray()), new InferenceTiming(1, 2, 3, "m/1/0", "cpu:0")),
        new InferenceSucceeded("r1", new TensorOutput([Tensor]), new InferenceTiming(1, 2, 3, "m/1/0", "cuda:1")),
        new InferenceFailed("r1", new ServeError(ServeErrorKind.Overloaded, "full")),
        new ReplicaStatusReport(Status),
        new ReplicaStatusReport(Status with { Signature = null, LastError = null }),
        new ResolveModel(Replica.Key),
        new ModelResolved(Replica.Key, Definition),
        new ModelResolved(Replica.Key, null),
        new RegisterModels([Definition]),
        new ModelsRegistered("abc", ["resnet18/1.0"], ["x: bad"], ["old/1.0"]),
        GetCatalog.Instance,
        ReportNow.Instance,
        new CatalogSnapshot("abc", 4, [new CatalogEntry(Definition, true, [Status])]),
        Definition with { Placement = new ModelPlacement(["gpu-a"], ["cuda:1"], Spread: true), DeviceMemoryMb = 1500 },
        new EnsureReplica(Replica, Definition, "cuda:1"),
        new ReplicaStatusReport(Status with { MemoryBytes = 46_800_000 }),
        new NodeInventory("akka.tcp://serve@10.0.0.1:4054", "gpu-a", [new DeviceCapacity("cuda:0", 81_559, 1_024), new DeviceCapacity("cuda:1", 81_559, -1)]),
        new ChangePlacement("resnet18", "1.0", null, ["cuda:0"], 1, 2_000),
        new ModelVersionPlaced(Replica.Key, new ModelPlacement(["gpu-a", "gpu-b"], [], Spread: true), 0),
        new RegisterModel(Definition with { Owner = "team-a", SharedWith = "team-b,team-c" }) { Limits = new TenantLimits("team-a", 3, 8, 40_000) },
        new ScaleModel("resnet18", null, 4) { Limits = new TenantLimits("team-a", 0, 8, 0) },
        new DefineTenant(Tenant),
        new TenantDefined(Tenant),
        new RemoveTenant("team-a"),
        new UpdateTenant("team-a", "Team A", 3, -1, -1, 4, -1, -1, -1, 1024),
        new UpdateTenant("team-a", null, -1, -1, -1, -1, -1, -1, -1, -1),
        new AddTenantKey("team-a", new string('d', 64)),
        new RevokeTenantKey("team-a", "dddddddddddddddd"),
        new TenantRemoved("team-a"),
        new RegistrySnapshot([Definition], [new DefaultVersion("resnet18", "1.0")], []) { Tenants = [Tenant] },
        new RegistrySnapshot([Definition with { Owner = "team-a", SharedWith = "team-b" }], [], [Definition]),
        new ModelVersionRegistered(Definition with { Url = "resnet.mar", VocabPath = "v.txt", DeviceMemoryMb = 300 }, FromConfiguration: true),
        new ModelVersionRegistered(Definition with { Source = new TorchScriptSource("tiny.pt"), LabelsPath = null }, FromConfiguration: false),
        new ModelVersionUnregistered(Replica.Key),
        new ModelVersionScaled(Replica.Key, 3),
        new DefaultVersionSet("resnet18", "2.0"),
        new UnregisterModel("resnet18", null),
        new UnregisterModel("resnet18", "1.0"),
        new SetDefaultVersion("resnet18", "2.0"),
        new StopReplica(Replica),
        new RegistryResult(null, "Model \"resnet18\" unregistered"),
        new RegistryResult(new ServeError(ServeErrorKind.Conflict, "exists"), "exists"),
        new ServeError(ServeErrorKind.BadInput, "no"),
        Status,
        Tenant,
        new TenantLimits("team-a", 3, 8, 40_000),
        new CatalogSnapshot("abc", 6, []) { Tenants = [Tenant], ReplanPending = true },
        new CatalogSnapshot("abc", 5, [new CatalogEntry(Definition, true, [Status])
        {
            Assignments = [new ReplicaAssignment(2, "akka.tcp://serve@127.0.0.1:4053", "cpu:0", Retiring: true)],
            Unplaced = "1 replica of model resnet18 version 1.0 cannot be placed: no worker node has joined the cluster",
        }])
        {
            Nodes = [new NodeInventory("akka.tcp://serve@127.0.0.1:4053", "w", [new DeviceCapacity("cpu:0", 24_000, -1)])],
        },
    ];

    [Theory]
    [MemberData(nameof(Messages))]
    public void Round_trips_through_its_serializer(IServeMessage message)
    {
        // Journaled events and the snapshot are written in the registry's versioned format; live messages by Hyperion.
        var serializer = cluster.System.Serialization.FindSerializerFor(message);
        if (RegistryJournalSerializer.Types.Contains(message.GetType()))
        {
            Assert.IsType<RegistryJournalSerializer>(serializer);
        }
        else
        {
            Assert.IsType<HyperionSerializer>(serializer);
        }

        var bytes = serializer.ToBinary(message);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        var back = cluster.System.Serialization.Deserialize(bytes, serializer.Identifier, manifest);

        Assert.IsType(message.GetType(), back);
        Assert.Equivalent(message, back, strict: true);
    }

    [Fact]
    public void Every_protocol_message_type_has_a_round_trip_case()
    {
        var covered = Messages().Select(row => row.Data.GetType()).ToHashSet();
        var missing = typeof(IServeMessage).Assembly.GetTypes()
            .Where(t => t is { IsAbstract: false, IsInterface: false } && typeof(IServeMessage).IsAssignableFrom(t) && !covered.Contains(t))
            .Select(t => t.Name).Order(StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0, $"no round-trip case in Messages() for: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Types_outside_the_protocol_are_refused_when_read()
    {
        // A peer's message naming a type that is not in the protocol must not be constructed.
        var serializer = cluster.System.Serialization.FindSerializerFor(Definition);
        var foreign = new Hyperion.Serializer();
        using var stream = new MemoryStream();
        foreign.Serialize(new NotInTheProtocol("rm -rf /"), stream);

        var error = Assert.ThrowsAny<Exception>(() => serializer.FromBinary<object>(stream.ToArray()));
        Assert.Contains("NotInTheProtocol", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Types_outside_the_protocol_are_refused_when_sent() =>
        Assert.ThrowsAny<Exception>(() => cluster.System.Serialization.FindSerializerFor(Definition).ToBinary(new NotInTheProtocol("x")));

    [Fact]
    public void Akkas_json_serializer_is_gone_a_frame_naming_it_is_refused_unread_and_an_unbound_type_is_not_sent()
    {
        var serialization = cluster.System.Serialization;
        // What Akka's JSON serializer would have read: a .NET type name to instantiate.
        var frame = System.Text.Encoding.UTF8.GetBytes(
            $$"""{"$type":"{{typeof(NotInTheProtocol).AssemblyQualifiedName}}","Command":"rm -rf /"}""");

        Assert.IsType<UnboundTypeSerializer>(serialization.FindSerializerForType(typeof(object)));
        var refused = Assert.ThrowsAny<Exception>(() =>
            serialization.Deserialize(frame, UnboundTypeSerializer.JsonSerializerId, typeof(NotInTheProtocol).AssemblyQualifiedName));
        Assert.Contains("Refused a message written with Akka's JSON serializer", refused.ToString(), StringComparison.Ordinal);
        var unsent = Assert.ThrowsAny<Exception>(() => serialization.FindSerializerFor(new NotInTheProtocol("x")).ToBinary(new NotInTheProtocol("x")));
        Assert.Contains(nameof(NotInTheProtocol), unsent.Message, StringComparison.Ordinal);
    }

    public sealed record NotInTheProtocol(string Command);

    [Theory]
    [InlineData("Serve.Actors.Protocol.InferenceRequest, Serve.Actors", true)]
    [InlineData("Serve.Actors.Protocol.NamedTensor[], Serve.Actors", true)]
    [InlineData("System.String, System.Private.CoreLib", true)]
    [InlineData("Serve.Actors.Protocol.GetCatalog, Serve.Actors, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null", true)]
    [InlineData("System.Byte[], System.Private.CoreLib", true)]
    [InlineData("System.IO.FileInfo, System.Private.CoreLib", false)]
    [InlineData("Serve.Actors.Protocol.InferenceRequest, Evil", false)]
    [InlineData("System.Collections.Generic.List`1[[System.IO.FileInfo, System.Private.CoreLib]], System.Private.CoreLib", false)]
    [InlineData("Serve.Actors.Models.ModelActor, Serve.Actors", false)]
    public void Type_filter_allows_only_protocol_types_and_plain_values(string typeName, bool allowed) =>
        Assert.Equal(allowed, ServeSerialization.IsAllowedTypeName(typeName));
}
