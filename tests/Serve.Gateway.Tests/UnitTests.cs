using System.Net;
using Microsoft.Extensions.Configuration;
using Serve.Actors.Configuration;
using Serve.Actors.Protocol;
using Serve.Gateway.Endpoints;
using Serve.Gateway.Hosting;
using Serve.Gateway.Inference;
using Serve.Gateway.Management;
using GrpcCode = Grpc.Core.StatusCode;

namespace Serve.Gateway.Tests;

public sealed class ReplicaSelectorTests
{
    private const string NodeA = "akka.tcp://serve@127.0.0.1:1";
    private const string NodeB = "akka.tcp://serve@127.0.0.1:2";

    /// <summary>A model version with replicas 0..replicas-1 placed (on the node their status names, else A).</summary>
    private static CatalogEntry Entry(int replicas, params (int Index, ReplicaState State, string Node, string? Error)[] statuses) =>
        new(new ModelDefinition("m", "1.0", new TorchScriptSource("m.pt"), BuiltInHandlers.Tensor, replicas, 1, 0, 100, 30, null),
            true,
            [.. statuses.Select(s => new ReplicaStatus(new ReplicaId("m", "1.0", s.Index), s.State, s.Node, "cpu:0", null, 0, s.Error, DateTime.UtcNow))])
        {
            Assignments = [.. Enumerable.Range(0, replicas).Select(i =>
                new ReplicaAssignment(i, statuses.FirstOrDefault(s => s.Index == i).Node ?? NodeA, "cpu:0", Retiring: false))],
        };

    private static Result<int> Choose(CatalogEntry entry, Func<int, int>? outstanding = null, IReadOnlySet<string>? unreachable = null,
        IReadOnlySet<int>? exclude = null) =>
        ReplicaSelector.Choose(entry, unreachable ?? new HashSet<string>(), outstanding ?? (_ => 0), exclude ?? new HashSet<int>(), new Random(1));

    [Fact]
    public void Picks_the_ready_replica_with_fewest_requests_outstanding()
    {
        var entry = Entry(3, (0, ReplicaState.Ready, NodeA, null), (1, ReplicaState.Ready, NodeB, null), (2, ReplicaState.Loading, NodeB, null));
        Assert.Equal(1, Choose(entry, i => i == 0 ? 5 : 1).Value);
    }

    [Fact]
    public void Never_picks_a_replica_on_an_unreachable_node()
    {
        var entry = Entry(2, (0, ReplicaState.Ready, NodeA, null), (1, ReplicaState.Ready, NodeB, null));
        Assert.Equal(1, Choose(entry, i => i == 1 ? 100 : 0, new HashSet<string> { NodeA }).Value);

        var error = Choose(entry, unreachable: new HashSet<string> { NodeA, NodeB }).Error;
        Assert.Equal(ServeErrorKind.Unavailable, error!.Kind);
        Assert.Contains("unreachable", error.Message);
    }

    [Fact]
    public void Falls_back_to_a_replica_that_is_still_loading_or_not_yet_reported()
    {
        Assert.Equal(1, Choose(Entry(2, (0, ReplicaState.Failed, NodeA, "boom"), (1, ReplicaState.Loading, NodeB, null))).Value);
        Assert.Equal(1, Choose(Entry(2, (0, ReplicaState.Failed, NodeA, "boom"))).Value);
    }

    [Fact]
    public void When_every_replica_failed_the_error_carries_the_cause()
    {
        var error = Choose(Entry(1, (0, ReplicaState.Failed, NodeA, "x.pt is not a TorchScript file"))).Error;
        Assert.Equal(ServeErrorKind.Unavailable, error!.Kind);
        Assert.Contains("x.pt is not a TorchScript file", error.Message);
    }

    [Fact]
    public void A_model_scaled_to_zero_has_torchserves_no_worker_message() =>
        Assert.Contains("has no worker to serve inference request", Choose(Entry(0)).Error!.Message);

    [Fact]
    public void A_replica_being_moved_serves_until_its_replacement_is_ready()
    {
        var moving = Entry(2, (0, ReplicaState.Ready, NodeA, null), (1, ReplicaState.Loading, NodeB, null)) is var entry
            ? entry with { Assignments = [new ReplicaAssignment(0, NodeA, "cpu:0", Retiring: true), new ReplicaAssignment(1, NodeB, "cpu:0", Retiring: false)] }
            : null;
        Assert.Equal(0, Choose(moving!).Value);

        var moved = moving! with
        {
            Replicas = [new ReplicaStatus(new ReplicaId("m", "1.0", 0), ReplicaState.Ready, NodeA, "cpu:0", null, 0, null, DateTime.UtcNow),
                new ReplicaStatus(new ReplicaId("m", "1.0", 1), ReplicaState.Ready, NodeB, "cpu:0", null, 0, null, DateTime.UtcNow)],
        };
        Assert.Equal(1, Choose(moved, i => i == 1 ? 50 : 0).Value);
    }

    [Fact]
    public void A_model_with_no_replica_placed_says_why()
    {
        var unplaced = Entry(1) with { Assignments = [], Unplaced = "1 replica of model m version 1.0 cannot be placed: no worker node has joined the cluster" };
        var error = Choose(unplaced).Error!;
        Assert.Equal(ServeErrorKind.Unavailable, error.Kind);
        Assert.EndsWith("no worker node has joined the cluster", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Replicas_already_tried_are_skipped()
    {
        var entry = Entry(2, (0, ReplicaState.Ready, NodeA, null), (1, ReplicaState.Ready, NodeB, null));
        Assert.Equal(1, Choose(entry, exclude: new HashSet<int> { 0 }).Value);
    }
}

public sealed class ErrorTableTests
{
    [Theory]
    [InlineData(ServeErrorKind.BadInput, HttpStatusCode.BadRequest, GrpcCode.InvalidArgument)]
    [InlineData(ServeErrorKind.NotFound, HttpStatusCode.NotFound, GrpcCode.NotFound)]
    [InlineData(ServeErrorKind.Conflict, HttpStatusCode.Conflict, GrpcCode.AlreadyExists)]
    [InlineData(ServeErrorKind.Forbidden, HttpStatusCode.Forbidden, GrpcCode.FailedPrecondition)]
    [InlineData(ServeErrorKind.Disabled, HttpStatusCode.MethodNotAllowed, GrpcCode.PermissionDenied)]
    [InlineData(ServeErrorKind.Overloaded, HttpStatusCode.ServiceUnavailable, GrpcCode.Unavailable)]
    [InlineData(ServeErrorKind.Unavailable, HttpStatusCode.ServiceUnavailable, GrpcCode.Unavailable)]
    [InlineData(ServeErrorKind.DeadlineExceeded, HttpStatusCode.GatewayTimeout, GrpcCode.DeadlineExceeded)]
    [InlineData(ServeErrorKind.Cancelled, (HttpStatusCode)499, GrpcCode.Cancelled)]
    [InlineData(ServeErrorKind.PayloadTooLarge, HttpStatusCode.RequestEntityTooLarge, GrpcCode.ResourceExhausted)]
    [InlineData(ServeErrorKind.ResourceExhausted, HttpStatusCode.InsufficientStorage, GrpcCode.ResourceExhausted)]
    [InlineData(ServeErrorKind.QuotaExceeded, HttpStatusCode.TooManyRequests, GrpcCode.ResourceExhausted)]
    [InlineData(ServeErrorKind.Unauthenticated, HttpStatusCode.Unauthorized, GrpcCode.Unauthenticated)]
    [InlineData(ServeErrorKind.PermissionDenied, HttpStatusCode.Forbidden, GrpcCode.PermissionDenied)]
    [InlineData(ServeErrorKind.ModelFailed, HttpStatusCode.InternalServerError, GrpcCode.Internal)]
    [InlineData(ServeErrorKind.Internal, HttpStatusCode.InternalServerError, GrpcCode.Internal)]
    public void Each_kind_has_its_http_status_and_grpc_code(ServeErrorKind kind, HttpStatusCode status, GrpcCode code)
    {
        Assert.Equal((int)status, ErrorTable.Http(kind).Status);
        Assert.Equal(code, ErrorTable.Grpc(kind));
    }

    [Fact]
    public void Every_kind_is_in_the_table_and_only_faults_are_internal()
    {
        Assert.All(Enum.GetValues<ServeErrorKind>(), kind => Assert.InRange(ErrorTable.Http(kind).Status, 400, 599));
        Assert.Equal([ServeErrorKind.ModelFailed, ServeErrorKind.Internal],
            Enum.GetValues<ServeErrorKind>().Where(k => ErrorTable.Grpc(k) == GrpcCode.Internal));
    }
}

public sealed class StartupModelsTests
{
    private static GatewayOptions Options(string? loadModels, string? store = null) => new()
    {
        LoadModels = loadModels,
        ModelStore = store,
        DefaultModel = new DefaultModelOptions { Enabled = true },
    };

    [Fact]
    public void Torchserve_style_models_with_settings()
    {
        var models = StartupModels.Build(Options("tiny=tiny.pt?replicas=2&batch_size=8&max_batch_delay=5,other.pt", "/store"), out var problems);
        Assert.Empty(problems);
        var tiny = models.Single(m => m.Name == "tiny");
        Assert.Equal((2, 8, 5), (tiny.Replicas, tiny.BatchSize, tiny.MaxBatchDelayMs));
        Assert.Equal(new TorchScriptSource("tiny.pt"), tiny.Source);
        Assert.Equal(BuiltInHandlers.Tensor, tiny.Handler);
        Assert.Equal("1.0", tiny.Version);
        var other = models.Single(m => m.Name == "other");
        Assert.Equal(1, other.Replicas);
    }

    [Fact]
    public void Without_a_model_store_paths_become_absolute()
    {
        var models = StartupModels.Build(Options("m=models/m.pt"), out _);
        Assert.Equal(Path.GetFullPath("models/m.pt"), ((TorchScriptSource)models[0].Source).Path);
    }

    [Fact]
    public void The_default_model_is_served_only_when_nothing_else_is_configured()
    {
        var defaults = StartupModels.Build(Options(null), out var problems);
        Assert.Empty(problems);
        var resnet = Assert.Single(defaults);
        Assert.Equal(BuiltInHandlers.ImageClassifier, resnet.Handler);
        Assert.Equal("resnet18", ((BuiltInSource)resnet.Source).Architecture);
        Assert.Null(((BuiltInSource)resnet.Source).WeightsPath);

        Assert.DoesNotContain(StartupModels.Build(Options("m=m.pt", "/store"), out _), m => m.Name == "resnet18");
    }

    [Fact]
    public void Every_problem_is_reported_at_once()
    {
        StartupModels.Build(Options("-bad=a.pt?replicas=x&colour=blue,ok=b.pt?handler=python_handler,dup=c.pt,dup=d.pt", "/store"), out var problems);
        Assert.Contains(problems, p => p.Contains("replicas=x is not an integer"));
        Assert.Contains(problems, p => p.Contains("unknown setting 'colour'"));
        Assert.Contains(problems, p => p.Contains("model name '-bad' is invalid"));
        Assert.Contains(problems, p => p.Contains("handler 'python_handler' is not a built-in handler"));
        Assert.Contains(problems, p => p.Contains("configured more than once"));
    }

    [Fact]
    public void All_loads_every_torchscript_file_in_the_store()
    {
        var store = Directory.CreateTempSubdirectory("serve-store-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(store, "a.pt"), [1]);
            File.WriteAllBytes(Path.Combine(store, "b.ts"), [1]);
            File.WriteAllBytes(Path.Combine(store, "notes.txt"), [1]);
            var models = StartupModels.Build(Options("all", store), out var problems);
            Assert.Empty(problems);
            Assert.Equal(["a", "b"], models.Select(m => m.Name));
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }
}

public sealed class GatewayOptionsTests
{
    [Fact]
    public void A_request_size_that_would_not_fit_between_nodes_is_refused_at_start_up()
    {
        var payload = new Serve.Actors.Hosting.ServeClusterOptions().MaximumPayloadBytes;
        Assert.Empty(ServeGatewayExtensions.ValidateGateway(new GatewayOptions(), payload));
        var problems = ServeGatewayExtensions.ValidateGateway(new GatewayOptions { MaxRequestSize = payload + 1 }, payload);
        Assert.Contains(problems, p => p.Contains("MaximumFrameSizeBytes"));
    }
}

public sealed class CommandLineTests
{
    private static IConfiguration Read(params string[] args) => new ConfigurationBuilder().AddServeCommandLine(args).Build();

    [Fact]
    public void Torchserves_valueless_flags_turn_their_setting_on_without_taking_the_next_argument()
    {
        var configuration = Read("--dt", "--model-store", "store", "--enable-model-api");
        Assert.Equal("true", configuration["Serve:Security:DisableTokenAuthorization"]);
        Assert.Equal("true", configuration["Serve:EnableModelApi"]);
        Assert.Equal("store", configuration["Serve:ModelStore"]);

        Assert.Equal("true", Read("--disable-token-auth")["Serve:Security:DisableTokenAuthorization"]);

        // torchserve --start --ncs --model-store ms: the switches Serve has no use for do not eat the next argument.
        Assert.Equal("ms", Read("--start", "--ncs", "--model-store", "ms", "--foreground")["Serve:ModelStore"]);
        var none = Read("--model-store", "store");
        Assert.Null(none["Serve:Security:DisableTokenAuthorization"]);
        Assert.Null(none["Serve:EnableModelApi"]);
    }
}

public sealed class ListenerAddressTests
{
    [Theory]
    [InlineData("http://127.0.0.1:8080", "127.0.0.1", 8080)]
    [InlineData("http://localhost:9000", "127.0.0.1", 9000)]
    [InlineData("http://[::1]:8080", "::1", 8080)]
    [InlineData("http://0.0.0.0:8080", "0.0.0.0", 8080)]
    public void Parses_torchserve_addresses(string address, string ip, int port)
    {
        var endpoint = Listeners.ParseAddress(address, ListenerKind.Inference);
        Assert.Equal(IPAddress.Parse(ip), endpoint.Address);
        Assert.Equal(port, endpoint.Port);
    }

    [Theory]
    [InlineData("127.0.0.1:8080")]
    [InlineData("ftp://127.0.0.1:8080")]
    [InlineData("http://example.com:8080")]
    [InlineData("http://127.0.0.1:8080/path")]
    public void Refuses_what_it_cannot_bind(string address) =>
        Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => Listeners.ParseAddress(address, ListenerKind.Inference));
}
