using System.Text.Json;
using Serve.Node.Handlers;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Bench;

/// <summary>
/// What a .NET team would write instead of Serve: one ASP.NET Core minimal API endpoint that calls
/// TorchSharp directly in the request handler (no queue, no batching, no cluster). The peer in the
/// comparison; it runs in its own process like the servers it is compared with.
/// </summary>
public static class PeerServer
{
    public static async Task RunAsync(string modelName, string store, int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();

        if (modelName == "tiny")
        {
            var script = jit.load(Path.Combine(store, "tiny.pt"));
            script.eval();
            app.MapPost("/predictions/tiny", async (HttpRequest request) =>
            {
                var rows = await JsonSerializer.DeserializeAsync<float[][]>(request.Body) ?? [];
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var input = tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);
                var output = (Tensor)script.forward([input]);
                return Results.Text(BenchModel.NestedJson(output), "application/json");
            });
        }
        else
        {
            var model = BenchModel.BuildResNet18();
            app.MapPost("/predictions/resnet18", async (HttpRequest request) =>
            {
                using var body = new MemoryStream();
                await request.Body.CopyToAsync(body);
                var pixels = ImagePreprocessor.ToNormalizedChw(body.ToArray(), 40_000_000);
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var probabilities = nn.functional.softmax(model.call(tensor(pixels, [1L, 3, 224, 224])), 1);
                var (values, indices) = probabilities.topk(5, dim: 1);
                var top = values.data<float>().ToArray();
                var classes = indices.data<long>().ToArray();
                return Results.Json(Enumerable.Range(0, 5).ToDictionary(i => classes[i].ToString(), i => top[i]));
            });
        }

        await app.RunAsync();
    }
}
