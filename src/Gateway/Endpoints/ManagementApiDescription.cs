using System.Text.Json.Nodes;
using Serve.Actors.Protocol;
using Serve.Gateway.Security;
using static Serve.Gateway.Endpoints.OpenApi;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// The OpenAPI description of the management listener: TorchServe's <see cref="ManagementApi"/>, the
/// placement endpoint and <c>GET /cluster</c>. Keep it beside the endpoints: a test compares it with them.
/// </summary>
internal static class ManagementApiDescription
{
    /// <summary>Register's parameters, in the query or as the same names in a JSON body (TorchServe's names, then Serve's placement).</summary>
    private static (string Name, Func<JsonObject> Schema)[] RegisterParameters() =>
    [
        ("url", () => Str("What to register: a TorchScript file, .mar archive or archive directory in the model store, or an " +
                          "http(s):// or file:// URL matching Serve:AllowedUrls. Required, here or in the JSON body.")),
        ("model_name", () => Str("The model's name (default: the archive's, or the file name).")),
        ("model_version", () => Str("The version (default: the archive's, or 1.0).")),
        ("handler", () => Str("A built-in handler: tensor (default) or image_classifier.")),
        ("batch_size", () => Int("Most requests in one forward pass (default 1).")),
        ("max_batch_delay", () => Int("Most milliseconds to wait for a batch to fill (default 100).")),
        ("initial_workers", () => Int("Replicas to start (default 0).")),
        ("response_timeout", () => Int("Seconds an inference may take (default 120).")),
        ("synchronous", () => Bool("Wait until the replicas serve (default true, as TorchServe's code).")),
        ("tenant", () => Str("Serve's: the tenant that owns the model (default admin); only it, admin and shared_with may call it.")),
        ("shared_with", () => Str("Serve's: other tenants that may call the model, comma-separated.")),
        ("startup_timeout", () => Int("Seconds a synchronous registration waits for its replicas; not ready by then, it is undone with 500 " +
                                      "(default: the archive's startupTimeout, else Serve:DefaultStartupTimeout, 120; -1 means the default).")),
        ("runtime", () => Str("TorchServe's runtime type: python, python3, LSP or serve (Serve runs every model the same way); others are refused.")),
        ("sha256", () => Str("The SHA-256 (64 hex digits) the model file or .mar must have; a mismatch is refused before anything is unpacked.")),
        .. PlacementParameters(),
    ];

    /// <summary>Where replicas may go: set at registration and changed by PUT .../placement.</summary>
    private static (string Name, Func<JsonObject> Schema)[] PlacementParameters() =>
    [
        ("device_memory_mb", () => Int("MB of device memory each replica declares; placement counts it against each device's memory.")),
        ("nodes", () => Str("Comma-separated worker node names to pin the replicas to.")),
        ("devices", () => Str("Comma-separated device names to pin the replicas to, e.g. cuda:0,cpu:1.")),
        ("spread", () => Bool("At most one replica per node.")),
    ];

    public static string Describe(JsonObject paths, JsonObject schemas)
    {
        paths["/models"] = new JsonObject
        {
            ["get"] = Operation("listModels", "The registered models' default versions, sorted by name, a page at a time.",
                [
                    Query("limit", Int("Models per page, 1 to 100 (default and most: 100).")),
                    Query("next_page_token", Str("The nextPageToken of the previous page.")),
                ],
                (200, Json("A page of models.", Ref("ModelList")))),
            ["post"] = Operation("registerModel",
                "Register a model (405 unless Serve:EnableModelApi, TorchServe's enable_model_api, is true).",
                [.. RegisterParameters().Select(p => Query(p.Name, p.Schema()))],
                new JsonObject
                {
                    ["description"] = "The parameters as a JSON object, instead of (or besides) the query; the body's win.",
                    ["required"] = false,
                    ["content"] = new JsonObject
                    {
                        ["application/json"] = new JsonObject
                        {
                            ["schema"] = Obj([], [.. RegisterParameters().Select(p => (p.Name, p.Schema()))]),
                        },
                    },
                },
                (200, Status("Registered (and serving, when synchronous with initial_workers).")),
                (202, Status("Registered; replicas starting (synchronous=false).")),
                (400, TorchServeError("Bad parameter, or a refused archive or model file.")),
                (404, TorchServeError("File not found, or URL not allowed.")),
                (405, TorchServeError("The model API is disabled.")),
                (409, TorchServeError("The version is already registered.")),
                (500, TorchServeError("The replicas failed to start; the registration is undone.")),
                (507, TorchServeError("The replicas do not fit on any allowed device."))),
        };

        paths["/models/{model_name}"] = new JsonObject
        {
            ["get"] = Describe("describeModel", "Describe the model's default version.", [Model()]),
            ["put"] = Scale("scaleModel", "Set the replica count of the model's default version.", [Model()]),
            ["delete"] = Unregister("unregisterModel", "Unregister the model's default version.", [Model()]),
        };
        paths["/models/{model_name}/{model_version}"] = new JsonObject
        {
            ["get"] = Describe("describeModelVersion", "Describe a version of the model, or all of them (model_version=all).", [Model(), Version()]),
            ["put"] = Scale("scaleModelVersion", "Set the replica count of a version.", [Model(), Version()]),
            ["delete"] = Unregister("unregisterModelVersion", "Unregister a version.", [Model(), Version()]),
        };
        paths["/models/{model_name}/{model_version}/set-default"] = new JsonObject
        {
            ["put"] = Operation("setDefaultVersion", "Make this version the one requests without a version go to.", [Model(), Version()],
                (200, Status("The default version changed.")),
                (404, TorchServeError("Unknown model or version."))),
        };
        paths["/models/{model_name}/{model_version}/placement"] = new JsonObject
        {
            ["put"] = Operation("setPlacement", "Change where the version's replicas may run.",
                [
                    Model(), Version(), .. PlacementParameters().Select(p => Query(p.Name, p.Schema())),
                    Query("synchronous", Bool("Wait until the replicas that must move serve where they now go (default false).")),
                ],
                (200, Status("The placement changed (and, when synchronous, every replica serves where it now goes).")),
                (206, Status("Some replicas were still moving when the start-up timeout passed (synchronous=true).")),
                (400, TorchServeError("Bad parameter.")),
                (404, TorchServeError("Unknown model or version.")),
                (507, TorchServeError("The replicas do not fit on any allowed device."))),
        };
        paths["/cluster"] = new JsonObject
        {
            ["get"] = Operation("describeCluster", "The cluster's members, their devices and the replicas on them, and what could not be placed.", [],
                (200, Json("The cluster.", Ref("Cluster")))),
        };

        paths["/token"] = new JsonObject
        {
            ["get"] = Operation("rotateKey", "Replaces the management or inference key (and its expiry) and rewrites the key file; needs the API key.",
                [Query("type", Str("management or inference"), required: true)],
                (200, Json("The new key and its expiry, under the key's name.", FreeObject("{\"management\": {\"key\", \"expiration time\"}}"))),
                (400, TorchServeError("type is neither management nor inference.")),
                (401, TorchServeError("The API key is missing or wrong."))),
        };

        paths["/tenants"] = new JsonObject
        {
            ["get"] = Operation("listTenants", "Each tenant's weight and quotas, and its use of them on this gateway since it started.", [],
                (200, Json("The tenants, the built-in admin tenant first.", FreeObject("{\"tenants\": [{id, name, source, weight, keys, quotas, usage}]}")))),
            ["post"] = Operation("createTenant", "Creates a tenant and answers its inference key, once (only its SHA-256 is kept). Settings may also come as a JSON object.",
                [.. TenantApi.CreateSettings.Select(n => Query(n, Str(TenantSettingDescription(n))))],
                (201, Json("The tenant's id, key and key id.", FreeObject("{\"status\", \"id\", \"key\", \"keyId\"}"))),
                (400, TorchServeError("A setting is wrong.")),
                (409, TorchServeError("The tenant exists."))),
        };
        paths["/tenants/{id}"] = new JsonObject
        {
            ["patch"] = Operation("updateTenant", "Changes the settings given (query or JSON object); the others and the keys stay.",
                [PathParameter("id", "The tenant."), .. TenantApi.UpdateSettings.Select(n => Query(n, Str(TenantSettingDescription(n))))],
                (200, Json("The tenant as it now is.", FreeObject("{\"status\", \"tenant\"}"))),
                (400, TorchServeError("A setting is wrong.")),
                ConfiguredTenant,
                (404, TorchServeError("No such tenant."))),
            ["delete"] = Operation("removeTenant", "Removes a tenant created through this API (its models stay, for the admin tenant).",
                [PathParameter("id", "The tenant.")],
                (200, Status("Removed.")),
                ConfiguredTenant,
                (404, TorchServeError("No such tenant."))),
        };
        paths["/tenants/{id}/keys"] = new JsonObject
        {
            ["post"] = Operation("addTenantKey", "Gives the tenant another inference key, answered once; its other keys keep working until revoked.",
                [PathParameter("id", "The tenant.")],
                (201, Json("The new key and its id.", FreeObject("{\"status\", \"id\", \"key\", \"keyId\"}"))),
                ConfiguredTenant,
                (404, TorchServeError("No such tenant.")),
                (409, TorchServeError($"The tenant has {Serve.Actors.Registry.DesiredState.MaxKeysPerTenant} keys already."))),
        };
        paths["/tenants/{id}/keys/{keyId}"] = new JsonObject
        {
            ["delete"] = Operation("revokeTenantKey", "Revokes one of the tenant's keys (not its last one).",
                [PathParameter("id", "The tenant."), PathParameter("keyId", "The key's id, as listed by GET /tenants.")],
                (200, Status("Revoked.")),
                ConfiguredTenant,
                (404, TorchServeError("No such tenant or key.")),
                (409, TorchServeError("It is the tenant's only key."))),
        };

        schemas["ModelList"] = Obj(["models"],
            ("models", ArrayOf(Obj(["modelName", "modelUrl"],
                ("modelName", Str("The model.")),
                ("modelUrl", Str("What it was registered from."))), "The page's models.")),
            ("nextPageToken", Str("Pass as next_page_token for the next page; absent on the last page.")));
        schemas["ModelDescription"] = Obj(["modelName", "modelVersion", "workers"],
            ("modelName", Str("The model.")),
            ("modelVersion", Str("The version.")),
            ("modelUrl", Str("What it was registered from.")),
            ("runtime", Str("Always serve.")),
            ("minWorkers", Int("Replicas wanted.")),
            ("maxWorkers", Int("Replicas wanted (Serve does not autoscale).")),
            ("batchSize", Int("Most requests in one forward pass.")),
            ("maxBatchDelay", Int("Most milliseconds to wait for a batch to fill.")),
            ("responseTimeout", Int("Seconds an inference may take.")),
            ("jobQueueSize", Int("Requests each replica queues before answering 503.")),
            ("handler", Str("The built-in handler.")),
            ("isDefault", Bool("Whether requests without a version go here.")),
            ("deviceType", StringEnum("gpu when a replica runs on a GPU.", ["cpu", "gpu"])),
            ("deviceMemoryMb", Int("MB of device memory each replica declares (0: none).")),
            ("placement", Obj(["nodes", "devices", "spread"],
                ("nodes", ArrayOf(Str("A node name or host:port."), "Nodes the replicas are pinned to (empty: any).")),
                ("devices", ArrayOf(Str("A device, e.g. cuda:0."), "Devices the replicas are pinned to (empty: any).")),
                ("spread", Bool("At most one replica per node.")))),
            ("unplaced", OrNull(Str("Why some replicas could not be placed."))),
            ("workers", ArrayOf(Ref("Worker"), "The replicas.")));
        schemas["Worker"] = Obj(["id", "status"],
            ("id", Str("The replica (model/version/index).")),
            ("startTime", Timestamp("When it entered its status.")),
            ("status", StringEnum("The replica's state; UNREACHABLE while its node cannot be reached.",
                System.Enum.GetNames<ReplicaState>().Select(s => s.ToUpperInvariant()).Append("UNREACHABLE"))),
            ("gpu", Bool("Whether it runs on a GPU.")),
            ("memoryUsage", OrNull(Int("Bytes its model's parameters and buffers take on the device.", "int64"))),
            ("node", Str("The node it runs on (cluster address).")),
            ("nodeName", OrNull(Str("The node's name (what nodes= names)."))),
            ("device", Str("The device, e.g. cuda:0 or cpu:0.")),
            ("retiring", Bool("Replaced by a moved replica: it serves until the replacement is ready, then stops.")),
            ("restarts", Int("How often it was restarted.")),
            ("lastError", OrNull(Str("Why it last failed."))));
        schemas["Cluster"] = Obj(["members", "unplaced"],
            ("members", ArrayOf(Ref("Member"), "The cluster's members.")),
            ("unplaced", ArrayOf(Obj(["model", "version", "reason"],
                ("model", Str("The model.")),
                ("version", Str("The version.")),
                ("reason", Str("Why its replicas found no device."))), "Versions with replicas that could not be placed.")));
        schemas["Member"] = Obj(["address", "roles", "status", "devices"],
            ("address", Str("The member's cluster address.")),
            ("name", OrNull(Str("The worker's name (what nodes= names); null for a gateway."))),
            ("roles", ArrayOf(Str("A role."), "The member's cluster roles.")),
            ("status", Str("The member's cluster status, e.g. Up.")),
            ("devices", ArrayOf(Ref("Device"), "The member's devices.")));
        schemas["Device"] = Obj(["name", "kind", "replicas"],
            ("name", Str("The device, e.g. cuda:0 or cpu:0 (what devices= names).")),
            ("kind", StringEnum("The kind of device.", ["cpu", "cuda"])),
            ("totalMemoryMb", OrNull(Int("MB of memory on the device (for CPU slots, the node's memory shared among them).", "int64"))),
            ("declaredMemoryMb", Int("MB declared by the replicas placed on it (device_memory_mb).", "int64")),
            ("usedMemoryMb", OrNull(Int("MB in use: a GPU's as its driver measures it; a CPU slot's as its replicas' parameters and buffers (null before any reports).", "int64"))),
            ("replicas", ArrayOf(Ref("PlacedReplica"), "The replicas placed on it.")));
        schemas["PlacedReplica"] = Obj(["id", "status", "retiring"],
            ("id", Str("The replica (model/version/index).")),
            ("status", Str("Its state, or PLACED before it reports.")),
            ("retiring", Bool("Replaced by a moved replica; stops once the replacement serves.")),
            ("declaredMemoryMb", Int("MB its model version declares.")));
        return "Serve management API";
    }

    private static JsonObject Model() => PathParameter("model_name", "The model's name.");

    /// <summary>Tenants from the configuration are not changed through the API (a new node each time: nodes have one parent).</summary>
    private static (int Status, JsonObject Response) ConfiguredTenant => (403, TorchServeError("The tenant is configured, not created through the API."));

    private static string TenantSettingDescription(string name) => name switch
    {
        "id" => "The tenant's id (letters, digits, '.', '_', '-').",
        "name" => "The tenant's display name.",
        "weight" => "The tenant's share of a busy model, 1-1000 (default 1).",
        _ => $"The tenant's {name.Replace('_', ' ')} quota (0: none).",
    };

    private static JsonObject Version() => PathParameter("model_version", "The model's version.");

    private static JsonObject Timestamp(string description) => new() { ["type"] = "string", ["format"] = "date-time", ["description"] = description };

    private static JsonObject Describe(string operationId, string summary, JsonObject[] parameters) => Operation(operationId, summary, parameters,
        (200, Json("An array with one description per version.", ArrayOf(Ref("ModelDescription"), "The descriptions."))),
        (404, TorchServeError("Unknown model or version.")));

    private static JsonObject Scale(string operationId, string summary, JsonObject[] parameters) => Operation(operationId, summary,
        [
            .. parameters,
            Query("min_worker", Int("The replica count (default 1).")),
            Query("max_worker", Int("At least min_worker (default min_worker); Serve does not autoscale.")),
            Query("synchronous", Bool("Wait until the replicas serve (default false).")),
        ],
        (200, Status("Scaled, and the replicas serve (synchronous=true).")),
        (202, Status("Scaling (synchronous=false).")),
        (206, Status("Some replicas did not serve within the start-up timeout (synchronous=true).")),
        (400, TorchServeError("Bad parameter.")),
        (404, TorchServeError("Unknown model or version.")));

    private static JsonObject Unregister(string operationId, string summary, JsonObject[] parameters) => Operation(operationId, summary, parameters,
        (200, Status("Unregistered.")),
        (403, TorchServeError("A default version that still has others.")),
        (404, TorchServeError("Unknown model or version.")),
        (405, TorchServeError("The model API is disabled.")));
}
