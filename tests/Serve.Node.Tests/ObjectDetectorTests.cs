using System.Text.Json;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Handlers;
using Serve.Node.Torch;
using SkiaSharp;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>
/// object_detector on a TorchScript detector the tests write: three fixed boxes whose scores scale with the
/// image's mean brightness (score = s * 2 * mean), so which detections pass the 0.5 threshold depends on the image.
/// </summary>
public sealed class ObjectDetectorTests(TorchFixture torch) : IClassFixture<TorchFixture>, IAsyncLifetime
{
    private static readonly float[,] Boxes = { { 10, 20, 30, 40 }, { 1, 2, 3, 4 }, { 5.5f, 6, 70, 80.25f } };
    private static readonly float[] Classes = [1, 2, 3];
    private static readonly float[] Scores = [0.9f, 0.3f, 0.6f];

    private ILoadedModel _model = null!;

    public async ValueTask InitializeAsync()
    {
        TorchScriptWriter.Detector(Path.Combine(torch.ModelStore, "detector.pt"), Boxes, Classes, Scores);
        await File.WriteAllTextAsync(Path.Combine(torch.ModelStore, "objects.json"), """{"1": "person", "2": "car"}""");
        _model = await torch.LoadAsync(Detector("detector", batchSize: 4));
    }

    public async ValueTask DisposeAsync() => await _model.DisposeAsync();

    private static ModelDefinition Detector(string name, int batchSize = 1, string file = "detector.pt") =>
        TorchFixture.TorchScript(name, file, BuiltInHandlers.ObjectDetector, batchSize) with { LabelsPath = "objects.json" };

    /// <summary>A lossless image of one colour, so its mean is known exactly.</summary>
    internal static byte[] Solid(int width, int height, SKColor color)
    {
        using var bitmap = new SKBitmap(width, height);
        bitmap.Erase(color);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static byte[] Gray(byte level, int width = 64, int height = 48) => Solid(width, height, new SKColor(level, level, level));

    /// <summary>The detections TorchServe would answer: scores at least 0.5, as {"label": box, "score": s}.</summary>
    private static void AssertDetections(JsonElement json, float brightness, params int[] expected)
    {
        Assert.Equal(JsonValueKind.Array, json.ValueKind);
        Assert.Equal(expected.Length, json.GetArrayLength());
        for (var i = 0; i < expected.Length; i++)
        {
            var d = expected[i];
            var detection = json[i].EnumerateObject().ToList();
            Assert.Equal(2, detection.Count);
            var label = d switch { 0 => "person", 1 => "car", _ => "3" };
            Assert.Equal(label, detection[0].Name);
            Assert.Equal([Boxes[d, 0], Boxes[d, 1], Boxes[d, 2], Boxes[d, 3]], detection[0].Value.EnumerateArray().Select(v => v.GetSingle()));
            Assert.Equal("score", detection[1].Name);
            Assert.Equal(Scores[d] * 2 * brightness, detection[1].Value.GetSingle(), 1e-4f);
        }
    }

    [Fact]
    public async Task Detections_at_or_above_the_threshold_come_back_as_label_box_and_score()
    {
        // Mid grey: scores 0.904, 0.301, 0.602 -> the first and third pass.
        AssertDetections(Document(await RunOneAsync(_model, RawInput.FromBody("image/png", Gray(128)))), 128 / 255f, 0, 2);
        // White: 1.8, 0.6, 1.2 -> all pass; black: all 0 -> an empty list.
        AssertDetections(Document(await RunOneAsync(_model, RawInput.FromBody("image/png", Gray(255)))), 1f, 0, 1, 2);
        AssertDetections(Document(await RunOneAsync(_model, RawInput.FromBody("image/png", Gray(0)))), 0f);
    }

    [Fact]
    public void The_image_reaches_the_model_at_its_own_size_as_floats_between_0_and_1()
    {
        var handler = new ObjectDetectorHandler("pytorch_torchscript", null, 10_000_000, 0.5f);
        var input = Assert.Single(handler.Prepare(RawInput.FromBody(null, Solid(321, 123, new SKColor(255, 51, 0)))).Inputs);
        // While it waits for the device the image is bytes (3 a pixel), CHW.
        Assert.Equal(TensorDataType.UINT8, input.DataType);
        Assert.Equal([1L, 3, 123, 321], input.Shape);
        var plane = 123 * 321;
        Assert.Equal([255, 51, 0], new[] { input.Data[0], input.Data[plane + 500], input.Data[2 * plane + 999] });

        // On the device it becomes ToTensor's floats in [0,1].
        using var scope = TorchSharp.torch.NewDisposeScope();
        var modelInput = Assert.Single(handler.ToModelInputs([TensorConversion.ToTorch(input, TorchSharp.torch.CPU)]));
        var values = Floats(TensorConversion.FromTorch("data", modelInput));
        Assert.Equal(1f, values[0]);
        Assert.Equal(0.2f, values[plane + 500], 1e-6f);
        Assert.Equal(0f, values[2 * plane + 999]);
    }

    [Fact]
    public async Task Each_image_of_a_batch_gets_its_own_detections_even_when_the_images_could_be_stacked()
    {
        // Same-size black and white images: a detector run on both at once would see their mean (0.5) for both.
        var result = await RunAsync(_model,
            RawInput.FromBody(null, Gray(0)), RawInput.FromBody(null, Gray(255)), RawInput.FromBody(null, Gray(128, 200, 30)));
        AssertDetections(Document(result.Outcomes[0]), 0f);
        AssertDetections(Document(result.Outcomes[1]), 1f, 0, 1, 2);
        AssertDetections(Document(result.Outcomes[2]), 128 / 255f, 0, 2);
    }

    [Fact]
    public async Task Over_the_open_inference_protocol_one_image_comes_as_bytes_and_the_answer_as_a_json_string()
    {
        var image = new NamedTensor("data", TensorDataType.BYTES, [1], TensorShapes.WriteBytesElements([Gray(255)]));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(_model, new TensorInput([image], null))));
        var answer = Assert.Single(TensorShapes.ReadBytesElements(Assert.Single(output.Tensors)));
        AssertDetections(JsonDocument.Parse(answer).RootElement, 1f, 0, 1, 2);

        var two = new NamedTensor("data", TensorDataType.BYTES, [2], TensorShapes.WriteBytesElements([Gray(255), Gray(0)]));
        var error = Error(await RunOneAsync(_model, new TensorInput([two], null)));
        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains("1 to 1", error.Message);
    }

    [Fact]
    public async Task Bodies_that_are_not_images_or_are_too_large_are_refused_with_a_400()
    {
        var text = Error(await RunOneAsync(_model, RawInput.FromBody("text/plain", "a cat"u8.ToArray())));
        Assert.Equal(ServeErrorKind.BadInput, text.Kind);
        Assert.Contains("not an image", text.Message);

        var bomb = Error(await RunOneAsync(_model, RawInput.FromBody("image/png", Images.PngClaiming(50_000, 50_000))));
        Assert.Equal(ServeErrorKind.BadInput, bomb.Kind);
        Assert.Contains("more than the allowed", bomb.Message);

        var tooLarge = Error(await RunOneAsync(_model, new TensorInput([Fp32("data", [1, 3, 5000, 5000])], null)));
        Assert.Contains("more than the allowed", tooLarge.Message);
    }

    [Fact]
    public async Task A_model_that_does_not_return_boxes_labels_and_scores_fails_the_request_clearly()
    {
        await using var identity = await torch.LoadAsync(Detector("not-a-detector", file: "identity.pt"));
        var error = Error(await RunOneAsync(identity, RawInput.FromBody(null, Gray(10))));
        Assert.Equal(ServeErrorKind.ModelFailed, error.Kind);
        Assert.Contains("must return a tuple (boxes [N,4], labels [N], scores [N])", error.Message);
    }
}
