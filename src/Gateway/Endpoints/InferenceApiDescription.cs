using System.Text.Json.Nodes;
using Serve.Actors.Protocol;
using static Serve.Gateway.Endpoints.OpenApi;

namespace Serve.Gateway.Endpoints;

/// <summary>
/// The OpenAPI description of the inference listener: TorchServe's <see cref="InferenceApi"/> and the Open
/// Inference Protocol's <see cref="OipApi"/>. Keep it beside the endpoints: a test compares it with them.
/// </summary>
internal static class InferenceApiDescription
{
    public static string Describe(JsonObject paths, JsonObject schemas)
    {
        paths["/ping"] = new JsonObject
        {
            ["get"] = WithoutKey(Operation("ping", "TorchServe's health: Unhealthy when a model's default version has only failed replicas. No key needed.", [],
                (200, Status("{\"status\": \"Healthy\"}")),
                (500, Status("{\"status\": \"Unhealthy\"}")))),
        };
        paths["/predictions/{model_name}"] = Predictions("predictions", "predictionsPut", "the model's default version", [Model()]);
        paths["/predictions/{model_name}/{model_version}"] = Predictions("versionPredictions", "versionPredictionsPut", "a version of the model",
            [Model(), Version()]);

        paths["/v2"] = new JsonObject
        {
            ["get"] = Operation("serverMetadata", "Open Inference Protocol server metadata.", [],
                (200, Json("Server name, version and extensions.", Ref("ServerMetadata")))),
        };
        paths["/v2/health/live"] = new JsonObject
        {
            ["get"] = WithoutKey(Operation("serverLive", "Open Inference Protocol liveness. No key needed.", [],
                (200, Json("The server answers.", Ref("ServerLive"))))),
        };
        paths["/v2/health/ready"] = new JsonObject
        {
            ["get"] = WithoutKey(Operation("serverReady", "Open Inference Protocol readiness: every model's default version has a serving replica. No key needed.", [],
                (200, Json("Ready.", Ref("ServerReady"))),
                (503, Json("Not ready.", Ref("ServerReady"))))),
        };
        paths["/v2/models/{model_name}"] = ModelMetadata("modelMetadata", "the model's default version", [Model()]);
        paths["/v2/models/{model_name}/versions/{model_version}"] = ModelMetadata("modelVersionMetadata", "a version of the model", [Model(), Version()]);
        paths["/v2/models/{model_name}/ready"] = ModelReady("modelReady", "the model's default version", [Model()]);
        paths["/v2/models/{model_name}/versions/{model_version}/ready"] = ModelReady("modelVersionReady", "a version of the model", [Model(), Version()]);
        paths["/v2/models/{model_name}/infer"] = ModelInfer("modelInfer", "the model's default version", [Model()]);
        paths["/v2/models/{model_name}/versions/{model_version}/infer"] = ModelInfer("modelVersionInfer", "a version of the model", [Model(), Version()]);

        schemas["OipError"] = Obj(["error"], ("error", Str("What went wrong.")));
        schemas["Datatype"] = StringEnum("An Open Inference Protocol tensor datatype.", System.Enum.GetNames<TensorDataType>());
        schemas["Parameters"] = FreeObject("Open Inference Protocol parameters (accepted; Serve acts on none of them).");
        schemas["Shape"] = ArrayOf(Int("A dimension.", "int64"), "The tensor's shape.");
        schemas["TensorData"] = ArrayOf(AnyJson("An element, or a nested list of elements."),
            "The elements, row-major: flat or nested as the shape. Numbers, booleans for BOOL, strings for BYTES.");
        schemas["RequestInput"] = Obj(["name", "shape", "datatype", "data"],
            ("name", Str("The input's name.")),
            ("shape", Ref("Shape")),
            ("datatype", Ref("Datatype")),
            ("parameters", Ref("Parameters")),
            ("data", Ref("TensorData")));
        schemas["RequestOutput"] = Obj(["name"],
            ("name", Str("An output to return; without a list of outputs, all are returned.")),
            ("parameters", Ref("Parameters")));
        schemas["InferenceRequest"] = Obj(["inputs"],
            ("id", Str("Echoed in the response.")),
            ("parameters", Ref("Parameters")),
            ("inputs", ArrayOf(Ref("RequestInput"), "The input tensors.")),
            ("outputs", ArrayOf(Ref("RequestOutput"), "The outputs wanted.")));
        schemas["ResponseOutput"] = Obj(["name", "shape", "datatype", "data"],
            ("name", Str("The output's name.")),
            ("shape", Ref("Shape")),
            ("datatype", Ref("Datatype")),
            ("parameters", Ref("Parameters")),
            ("data", Ref("TensorData")));
        schemas["InferenceResponse"] = Obj(["model_name", "outputs"],
            ("model_name", Str("The model.")),
            ("model_version", Str("The version that answered.")),
            ("id", Str("The request's id, when it had one.")),
            ("parameters", Ref("Parameters")),
            ("outputs", ArrayOf(Ref("ResponseOutput"), "The output tensors.")));
        schemas["TensorMetadata"] = Obj(["name", "datatype", "shape"],
            ("name", Str("The tensor's name.")),
            ("datatype", Ref("Datatype")),
            ("shape", ArrayOf(Int("A dimension; -1 where any size goes.", "int64"), "The tensor's shape.")));
        schemas["ModelMetadata"] = Obj(["name", "versions", "platform", "inputs", "outputs"],
            ("name", Str("The model.")),
            ("versions", ArrayOf(Str("A version."), "The model's versions.")),
            ("platform", Str("The model's platform, e.g. pytorch_torchscript.")),
            ("inputs", ArrayOf(Ref("TensorMetadata"), "The inputs, once a replica has loaded the model.")),
            ("outputs", ArrayOf(Ref("TensorMetadata"), "The outputs, once a replica has loaded the model.")));
        schemas["ModelReady"] = Obj(["name", "ready"], ("name", Str("The model.")), ("ready", Bool("Whether a replica serves it.")));
        schemas["ServerLive"] = Obj(["live"], ("live", Bool("Always true.")));
        schemas["ServerReady"] = Obj(["ready"], ("ready", Bool("Whether every model's default version has a serving replica.")));
        schemas["ServerMetadata"] = Obj(["name", "version", "extensions"],
            ("name", Str("The server's name.")),
            ("version", Str("The server's version.")),
            ("extensions", ArrayOf(Str("An extension."), "The protocol extensions supported.")));
        return "Serve inference API";
    }

    private static JsonObject Model() => PathParameter("model_name", "The model's name.");

    private static JsonObject Version() => PathParameter("model_version", "The model's version.");

    private static JsonObject Predictions(string postId, string putId, string which, JsonObject[] parameters) => new()
    {
        ["post"] = Prediction(postId, $"TorchServe inference on {which}.", parameters),
        ["put"] = Prediction(putId, $"TorchServe inference on {which}, with the body uploaded by PUT (curl -T).",
            [.. parameters.Select(p => (JsonObject)p.DeepClone())]),
    };

    private static JsonObject Prediction(string operationId, string summary, JsonObject[] parameters) => Operation(operationId, summary,
        parameters,
        new JsonObject
        {
            ["description"] = "The input, as the model's handler reads it: JSON (nested lists, {\"data\": ...} or an Open Inference " +
                              "Protocol body), an image, form fields, or raw bytes.",
            ["required"] = true,
            ["content"] = new JsonObject
            {
                ["application/json"] = new JsonObject { ["schema"] = AnyJson("Nested lists, {\"data\": ...} or {\"inputs\": [...]}.") },
                ["multipart/form-data"] = new JsonObject
                {
                    ["schema"] = new JsonObject
                    {
                        ["type"] = "object",
                        ["properties"] = new JsonObject { ["data"] = Binary("The input (an image for image_classifier).") },
                        ["additionalProperties"] = Binary("More named inputs."),
                    },
                },
                ["*/*"] = new JsonObject { ["schema"] = Binary("The input as raw bytes, e.g. a JPEG or PNG.") },
            },
        },
        [(200, InferenceOutput()), .. InferenceErrors(TorchServeError)]);

    private static JsonObject InferenceOutput() => WithReplyHeaders(Json(
        "The handler's output: nested lists for tensor, {\"label\": probability} for image_classifier.", AnyJson("The handler's output.")));

    /// <summary>The <see cref="ResponseHeaders"/> every answered inference carries.</summary>
    private static JsonObject WithReplyHeaders(JsonObject response)
    {
        response["headers"] = new JsonObject
        {
            [ResponseHeaders.RequestId] = Header("The request's id."),
            [ResponseHeaders.Replica] = Header("The replica that answered (model/version/index)."),
            [ResponseHeaders.QueueMicros] = Header("Microseconds the request waited in the replica's queue.", integer: true),
            [ResponseHeaders.DeviceMicros] = Header("Microseconds its batch ran on the device.", integer: true),
            [ResponseHeaders.BatchSize] = Header("Requests in its batch.", integer: true),
        };
        return response;
    }

    private static JsonObject Header(string description, bool integer = false) => new()
    {
        ["description"] = description,
        ["schema"] = integer ? new JsonObject { ["type"] = "integer", ["format"] = "int64" } : new JsonObject { ["type"] = "string" },
    };

    private static JsonObject Binary(string description) => new() { ["type"] = "string", ["format"] = "binary", ["description"] = description };

    /// <summary>The inference failures, one status table for TorchServe's and the protocol's bodies (README, Errors).</summary>
    private static (int, JsonObject)[] InferenceErrors(Func<string, JsonObject> body) =>
    [
        (400, body("Bad input: malformed JSON, wrong shape or datatype, not an image, empty body.")),
        (401, TorchServeError("The inference key is missing, wrong or expired.")),
        (404, body("Unknown model or version.")),
        (413, body("The body is over max_request_size.")),
        (500, body("The model failed.")),
        (503, body("Queue full, or no replica that can serve (with the cause).")),
        (504, body("The deadline passed.")),
        (507, body("Device out of memory, or the response is over max_response_size.")),
    ];

    private static JsonObject OipError(string description) => Json(description, Ref("OipError"));

    private static JsonObject ModelMetadata(string operationId, string which, JsonObject[] parameters) => new()
    {
        ["get"] = Operation(operationId, $"Open Inference Protocol metadata of {which}.", parameters,
            (200, Json("Versions, platform, inputs and outputs.", Ref("ModelMetadata"))),
            (404, OipError("Unknown model or version."))),
    };

    private static JsonObject ModelReady(string operationId, string which, JsonObject[] parameters) => new()
    {
        ["get"] = Operation(operationId, $"Whether {which} has a serving replica.", parameters,
            (200, Json("Ready.", Ref("ModelReady"))),
            (404, OipError("Unknown model or version.")),
            (503, Json("Not ready.", Ref("ModelReady")))),
    };

    private static JsonObject ModelInfer(string operationId, string which, JsonObject[] parameters) => new()
    {
        ["post"] = Operation(operationId, $"Open Inference Protocol inference on {which}.", [.. parameters, BinaryHeader()],
            new JsonObject
            {
                ["required"] = true,
                ["content"] = new JsonObject
                {
                    ["application/json"] = new JsonObject { ["schema"] = Ref("InferenceRequest") },
                    ["application/octet-stream"] = new JsonObject
                    {
                        ["schema"] = new JsonObject { ["type"] = "string", ["format"] = "binary" },
                    },
                },
            },
            [(200, WithReplyHeaders(BinaryOrJson())), .. InferenceErrors(OipError)]),
    };

    /// <summary>The binary tensor extension's header: how many leading bytes of the body are the JSON request.</summary>
    private static JsonObject BinaryHeader() => new()
    {
        ["name"] = OipApi.HeaderLengthHeader,
        ["in"] = "header",
        ["required"] = false,
        ["description"] = "Binary tensor extension: the JSON request is this many bytes; the raw tensor bytes its inputs' " +
                          "binary_data_size parameters claim follow, in the order of the inputs.",
        ["schema"] = new JsonObject { ["type"] = "integer", ["minimum"] = 0 },
    };

    private static JsonObject BinaryOrJson()
    {
        var response = Json("The output tensors; with outputs asked for as binary, the JSON followed by their bytes " +
                            $"(application/octet-stream, {OipApi.HeaderLengthHeader} says where the JSON ends).", Ref("InferenceResponse"));
        response["content"]!.AsObject()["application/octet-stream"] = new JsonObject
        {
            ["schema"] = new JsonObject { ["type"] = "string", ["format"] = "binary" },
        };
        return response;
    }
}
