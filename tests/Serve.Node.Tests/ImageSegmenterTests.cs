using System.Text.Json;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using SkiaSharp;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>
/// image_segmenter on a TorchScript model the tests write: logits = normalised image x weight per channel, so
/// class c at a pixel is channel c, and the most likely class of a red pixel is 0, of a blue one 2.
/// </summary>
public sealed class ImageSegmenterTests(TorchFixture torch) : IClassFixture<TorchFixture>, IAsyncLifetime
{
    private static readonly float[] Weight = [1, 1, 1];
    private static readonly float[] Mean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] Std = [0.229f, 0.224f, 0.225f];

    private ILoadedModel _model = null!;

    public async ValueTask InitializeAsync()
    {
        TorchScriptWriter.ChannelScale(Path.Combine(torch.ModelStore, "segmenter.pt"), Weight);
        TorchScriptWriter.DictSegmenter(Path.Combine(torch.ModelStore, "dict-segmenter.pt"), Weight);
        _model = await torch.LoadAsync(TorchFixture.TorchScript("segmenter", "segmenter.pt", BuiltInHandlers.ImageSegmenter, batchSize: 4));
    }

    public async ValueTask DisposeAsync() => await _model.DisposeAsync();

    /// <summary>The class and softmax probability the model gives a pixel of colour (r, g, b).</summary>
    private static (int Class, double Probability) Expected(byte r, byte g, byte b)
    {
        double[] logits = [.. new[] { r, g, b }.Select((v, c) => (v / 255.0 - Mean[c]) / Std[c] * Weight[c])];
        var best = Array.IndexOf(logits, logits.Max());
        return (best, 1 / logits.Sum(l => Math.Exp(l - logits[best])));
    }

    /// <summary>Left half red, right half blue.</summary>
    private static byte[] RedBlue(int width, int height)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.Blue);
            using var red = new SKPaint { Color = SKColors.Red };
            canvas.DrawRect(0, 0, width / 2f, height, red);
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static void AssertPixel(JsonElement pixel, (int Class, double Probability) expected)
    {
        Assert.Equal(2, pixel.GetArrayLength());
        Assert.Equal(expected.Class, pixel[0].GetDouble());
        Assert.Equal(expected.Probability, pixel[1].GetDouble(), 1e-4);
    }

    private static void AssertRedBlue(JsonElement json)
    {
        // [H][W][2], 224 x 224 after resize and centre crop; red on the left, blue on the right.
        Assert.Equal(224, json.GetArrayLength());
        Assert.All(json.EnumerateArray(), row => Assert.Equal(224, row.GetArrayLength()));
        AssertPixel(json[0][0], Expected(255, 0, 0));
        AssertPixel(json[223][50], Expected(255, 0, 0));
        AssertPixel(json[0][223], Expected(0, 0, 255));
        AssertPixel(json[100][180], Expected(0, 0, 255));
    }

    [Fact]
    public async Task Each_pixel_gets_its_most_likely_class_and_probability_as_torchserve_answers()
    {
        AssertRedBlue(Document(await RunOneAsync(_model, RawInput.FromBody("image/png", RedBlue(300, 260)))));
        var green = Document(await RunOneAsync(_model, RawInput.FromBody("image/png", ObjectDetectorTests.Solid(64, 64, SKColors.Lime))));
        AssertPixel(green[17][33], Expected(0, 255, 0));
    }

    [Fact]
    public async Task A_batch_of_images_answers_each_image()
    {
        var result = await RunAsync(_model,
            RawInput.FromBody(null, RedBlue(400, 300)), RawInput.FromBody(null, ObjectDetectorTests.Solid(224, 224, SKColors.Lime)),
            RawInput.FromBody(null, RedBlue(224, 224)));
        AssertRedBlue(Document(result.Outcomes[0]));
        AssertPixel(Document(result.Outcomes[1])[5][5], Expected(0, 255, 0));
        AssertRedBlue(Document(result.Outcomes[2]));
    }

    [Fact]
    public async Task Over_the_open_inference_protocol_images_come_as_bytes_and_answers_as_fp32_n_h_w_2()
    {
        var images = new NamedTensor("data", TensorDataType.BYTES, [2], TensorShapes.WriteBytesElements([RedBlue(300, 300), RedBlue(320, 240)]));
        var output = Assert.Single(Assert.IsType<TensorOutput>(Output(await RunOneAsync(_model, new TensorInput([images], null)))).Tensors);
        Assert.Equal(TensorDataType.FP32, output.DataType);
        Assert.Equal([2L, 224, 224, 2], output.Shape);
        var values = Floats(output);
        var blue = Expected(0, 0, 255);
        // Second image, row 10, column 200: class and probability.
        var at = ((1 * 224 + 10) * 224 + 200) * 2;
        Assert.Equal(blue.Class, values[at]);
        Assert.Equal(blue.Probability, values[at + 1], 1e-4);
    }

    [Fact]
    public async Task Bodies_that_are_not_images_are_refused_with_a_400()
    {
        var error = Error(await RunOneAsync(_model, RawInput.FromBody("text/plain", "hello"u8.ToArray())));
        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains("not an image", error.Message);

        var wrongShape = Error(await RunOneAsync(_model, new TensorInput([Fp32("data", [1, 3, 2, 2], new float[12])], null)));
        Assert.Contains("segmenter takes an image (JPEG or PNG)", wrongShape.Message);
    }

    [Fact]
    public async Task Models_that_return_a_dictionary_or_no_class_dimension_are_refused_clearly()
    {
        // The preflight probes a segmenter with an image-shaped input, so a dictionary is caught at load.
        var dictionary = await Assert.ThrowsAsync<ModelLoadException>(
            () => torch.LoadAsync(TorchFixture.TorchScript("dict", "dict-segmenter.pt", BuiltInHandlers.ImageSegmenter)));
        Assert.Contains("cannot read (a dictionary?)", dictionary.Message);
        Assert.True(dictionary.Rejected);

        await using var classifier = await torch.LoadAsync(TorchFixture.BuiltIn("resnet18", handler: BuiltInHandlers.ImageSegmenter,
            parameters: ("num_classes", "4")));
        var flat = Error(await RunOneAsync(classifier, RawInput.FromBody(null, RedBlue(64, 64))));
        Assert.Equal(ServeErrorKind.ModelFailed, flat.Kind);
        Assert.Contains("must output [batch, classes, height, width]", flat.Message);
    }
}
