using System.Text;
using System.Text.Json;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Handlers;
using SkiaSharp;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>The image classifier on a seeded resnet18: real decoding, real forward passes.</summary>
public sealed class ImageClassifierTests(TorchFixture torch) : IClassFixture<TorchFixture>, IAsyncLifetime
{
    private ILoadedModel _model = null!;

    public async ValueTask InitializeAsync()
    {
        var labels = Path.Combine(torch.ModelStore, "index_to_name.json");
        var names = Enumerable.Range(0, 1000).ToDictionary(i => i.ToString(), i => new[] { $"n{i:D8}", $"class_{i}" });
        await File.WriteAllTextAsync(labels, JsonSerializer.Serialize(names));
        _model = await torch.LoadAsync(TorchFixture.BuiltIn("resnet18", handler: BuiltInHandlers.ImageClassifier, batchSize: 4, labels: "index_to_name.json"));
    }

    public async ValueTask DisposeAsync() => await _model.DisposeAsync();

    private static void AssertTopFive(JsonElement json)
    {
        var entries = json.EnumerateObject().ToList();
        Assert.Equal(5, entries.Count);
        Assert.All(entries, e => Assert.StartsWith("class_", e.Name));
        var probabilities = entries.Select(e => e.Value.GetDouble()).ToList();
        Assert.Equal(probabilities.OrderDescending(), probabilities);
        Assert.All(probabilities, p => Assert.InRange(p, 0, 1));
        Assert.True(probabilities.Sum() <= 1.0001);
    }

    [Fact]
    public async Task A_jpeg_gets_the_top_five_labels_with_probabilities()
    {
        AssertTopFive(Document(await RunOneAsync(_model, RawInput.FromBody("image/jpeg", Images.Jpeg()))));
    }

    [Fact]
    public async Task Png_base64_and_multipart_data_are_accepted_like_torchserve()
    {
        var png = Images.Png();
        AssertTopFive(Document(await RunOneAsync(_model, RawInput.FromBody("image/png", png))));
        AssertTopFive(Document(await RunOneAsync(_model, RawInput.FromBody("text/plain", Encoding.ASCII.GetBytes(Convert.ToBase64String(png))))));
        AssertTopFive(Document(await RunOneAsync(_model, new RawInput([new PayloadPart("data", "image/png", png)]))));
    }

    [Fact]
    public async Task A_batch_of_images_answers_each_image()
    {
        var result = await RunAsync(_model,
            RawInput.FromBody(null, Images.Jpeg()), RawInput.FromBody(null, Images.Png(400, 260)), RawInput.FromBody(null, Images.Jpeg(224, 224)));
        Assert.All(result.Outcomes, o => AssertTopFive(Document(o)));
        Assert.True(result.DeviceTime > TimeSpan.Zero);
    }

    [Fact]
    public async Task The_same_image_gets_the_same_answer_alone_and_in_a_batch()
    {
        var jpeg = Images.Jpeg();
        var alone = Document(await RunOneAsync(_model, RawInput.FromBody(null, jpeg))).GetRawText();
        var batched = await RunAsync(_model, RawInput.FromBody(null, Images.Png()), RawInput.FromBody(null, jpeg));
        var inBatch = Document(batched.Outcomes[1]);
        var expected = JsonDocument.Parse(alone).RootElement.EnumerateObject().ToList();
        var actual = inBatch.EnumerateObject().ToList();
        Assert.Equal(expected.Select(e => e.Name), actual.Select(e => e.Name));
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Value.GetDouble(), actual[i].Value.GetDouble(), 1e-4);
        }
    }

    [Fact]
    public async Task Over_the_open_inference_protocol_images_come_as_bytes_and_answers_as_json_strings()
    {
        var images = new NamedTensor("data", TensorDataType.BYTES, [2], TensorShapes.WriteBytesElements([Images.Jpeg(), Images.Png()]));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(_model, new TensorInput([images], null))));
        var answers = Assert.Single(output.Tensors);
        Assert.Equal(TensorDataType.BYTES, answers.DataType);
        Assert.Equal([2L], answers.Shape);
        Assert.All(TensorShapes.ReadBytesElements(answers), json => AssertTopFive(JsonDocument.Parse(json).RootElement));
    }

    [Fact]
    public async Task Bodies_that_are_not_images_are_refused_clearly()
    {
        var notImage = Error(await RunOneAsync(_model, RawInput.FromBody("text/plain", "hello"u8.ToArray())));
        Assert.Equal(ServeErrorKind.BadInput, notImage.Kind);
        Assert.Contains("not an image", notImage.Message);

        var truncated = Error(await RunOneAsync(_model, RawInput.FromBody("image/jpeg", Images.Jpeg()[..600])));
        Assert.Contains("truncated or corrupt", truncated.Message);

        var bomb = Error(await RunOneAsync(_model, RawInput.FromBody("image/png", Images.PngClaiming(60_000, 60_000))));
        Assert.Contains("60000x60000", bomb.Message);
        Assert.Contains("more than the allowed", bomb.Message);
    }

    [Fact]
    public async Task A_very_thin_image_is_classified_without_a_huge_intermediate_bitmap()
    {
        var before = GC.GetTotalAllocatedBytes(precise: true);
        AssertTopFive(Document(await RunOneAsync(_model, RawInput.FromBody("image/png", Images.Png(1, 8000)))));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < 50_000_000, $"{allocated} bytes allocated for a 1x8000 image");
    }

    [Fact]
    public async Task A_request_may_not_carry_more_images_than_the_limit()
    {
        var tiny = Images.Png(8, 8);
        var many = new NamedTensor("data", TensorDataType.BYTES, [ImageClassifierHandler.MaxImagesPerRequest + 1],
            TensorShapes.WriteBytesElements([.. Enumerable.Repeat(tiny, ImageClassifierHandler.MaxImagesPerRequest + 1)]));
        var error = Error(await RunOneAsync(_model, new TensorInput([many], null)));
        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains($"1 to {ImageClassifierHandler.MaxImagesPerRequest}", error.Message);
    }

    [Fact]
    public void Preprocessing_normalises_with_imagenet_statistics()
    {
        var gray = Images.Encode(256, 256, SKEncodedImageFormat.Png, new SKColor(128, 128, 128)) ;
        var chw = ImagePreprocessor.ToNormalizedChw(gray, long.MaxValue);
        Assert.Equal(3 * 224 * 224, chw.Length);
        // A corner pixel is outside the circle: grey 128.
        Assert.Equal((128 / 255f - 0.485f) / 0.229f, chw[0], 1e-3f);
        Assert.Equal((128 / 255f - 0.456f) / 0.224f, chw[224 * 224], 1e-3f);
        Assert.Equal((128 / 255f - 0.406f) / 0.225f, chw[2 * 224 * 224], 1e-3f);
    }
}
