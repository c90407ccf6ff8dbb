using System.Text;
using System.Text.Json;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Handlers;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>
/// text_classifier on bag-of-embeddings TorchScript models the tests write, with a WordPiece vocabulary the
/// tests write: each token adds its row of the embedding to the logits, so the expected probabilities follow
/// from the tokens alone.
/// </summary>
public sealed class TextClassifierTests(TorchFixture torch) : IClassFixture<TorchFixture>, IAsyncLifetime
{
    /// <summary>Token ids are line numbers.</summary>
    private static readonly string[] Vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "##s", "the", "was"];

    private const int Cls = 2, Sep = 3, Good = 5, Bad = 6, Movie = 7, PluralS = 8, The = 9, Was = 10, Unknown = 1;

    /// <summary>
    /// Logit rows [negative, positive] per token; [CLS], [SEP] and [UNK] add nothing, [PAD] much to one class (so
    /// padding that reached the mean would show).
    /// </summary>
    private static readonly float[,] Weight =
    {
        { 9, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 4 }, { 4, 0 }, { 1, 1 }, { 0, 2 }, { 0.5f, 0 }, { 0, 0.25f },
    };

    private ILoadedModel _bag = null!;
    private ILoadedModel _bert = null!;

    private string Store(string name) => Path.Combine(torch.ModelStore, name);

    public async ValueTask InitializeAsync()
    {
        await File.WriteAllLinesAsync(Store("vocab.txt"), Vocabulary);
        await File.WriteAllTextAsync(Store("sentiment.json"), """{"0": "negative", "1": ["n1", "positive"]}""");
        TorchScriptWriter.EmbeddingClassifier(Store("bag.pt"), Weight);
        TorchScriptWriter.MaskedEmbeddingClassifier(Store("bert.pt"), Weight);
        _bag = await torch.LoadAsync(Text("bag", "bag.pt", batchSize: 4));
        _bert = await torch.LoadAsync(Text("bert", "bert.pt", batchSize: 4));
    }

    public async ValueTask DisposeAsync()
    {
        await _bag.DisposeAsync();
        await _bert.DisposeAsync();
    }

    private static ModelDefinition Text(string name, string path, int batchSize = 1, string? vocab = "vocab.txt", string? labels = "sentiment.json") =>
        TorchFixture.TorchScript(name, path, BuiltInHandlers.TextClassifier, batchSize) with { LabelsPath = labels, VocabPath = vocab };

    /// <summary>softmax(mean of the tokens' rows), as the model computes it.</summary>
    private static double[] Expected(params int[] tokens)
    {
        var logits = new double[2];
        foreach (var token in tokens)
        {
            logits[0] += Weight[token, 0] / (double)tokens.Length;
            logits[1] += Weight[token, 1] / (double)tokens.Length;
        }

        var max = logits.Max();
        var exp = logits.Select(l => Math.Exp(l - max)).ToArray();
        return [.. exp.Select(e => e / exp.Sum())];
    }

    private static void AssertAnswer(JsonElement json, double[] expected)
    {
        var entries = json.EnumerateObject().ToList();
        Assert.Equal(["negative", "positive"], entries.Select(e => e.Name));
        Assert.Equal(expected[0], entries[0].Value.GetDouble(), 1e-5);
        Assert.Equal(expected[1], entries[1].Value.GetDouble(), 1e-5);
    }

    [Fact]
    public async Task Raw_text_is_word_piece_tokenised_and_every_class_gets_its_probability()
    {
        // "Good movies" -> [CLS] good movie ##s [SEP]: lower-cased, "movies" split into word pieces.
        AssertAnswer(Document(await RunOneAsync(_bag, RawInput.FromBody("text/plain", "Good movies"u8.ToArray()))),
            Expected(Cls, Good, Movie, PluralS, Sep));
        AssertAnswer(Document(await RunOneAsync(_bag, RawInput.FromBody(null, "the movie was BAD, zzz"u8.ToArray()))),
            Expected(Cls, The, Movie, Was, Bad, Unknown, Unknown, Sep));
    }

    [Fact]
    public async Task Json_data_or_text_fields_and_multipart_data_carry_the_text_too()
    {
        var expected = Expected(Cls, Bad, Movie, Sep);
        AssertAnswer(Document(await RunOneAsync(_bag, Json("""{"data": "bad movie"}"""))), expected);
        AssertAnswer(Document(await RunOneAsync(_bag, Json("""{"text": "bad movie"}"""))), expected);
        AssertAnswer(Document(await RunOneAsync(_bag, Json("\"bad movie\""))), expected);
        AssertAnswer(Document(await RunOneAsync(_bag, new RawInput([new PayloadPart("data", "text/plain", "bad movie"u8.ToArray())]))), expected);
    }

    [Fact]
    public async Task A_model_with_an_attention_mask_gets_padded_inputs_and_ignores_the_padding()
    {
        // The masked model averages only the tokens the mask keeps and adds the token types (all 0): the same answer.
        AssertAnswer(Document(await RunOneAsync(_bert, RawInput.FromBody(null, "Good movies"u8.ToArray()))),
            Expected(Cls, Good, Movie, PluralS, Sep));
    }

    [Fact]
    public async Task Texts_of_different_lengths_batch_and_each_gets_its_own_answer()
    {
        foreach (var model in new[] { _bag, _bert })
        {
            var result = await RunAsync(model,
                RawInput.FromBody(null, "good"u8.ToArray()), RawInput.FromBody(null, "bad bad movie"u8.ToArray()), Json("""{"data": "the movies"}"""));
            AssertAnswer(Document(result.Outcomes[0]), Expected(Cls, Good, Sep));
            AssertAnswer(Document(result.Outcomes[1]), Expected(Cls, Bad, Bad, Movie, Sep));
            AssertAnswer(Document(result.Outcomes[2]), Expected(Cls, The, Movie, PluralS, Sep));
        }
    }

    [Fact]
    public async Task Over_the_open_inference_protocol_texts_come_as_bytes_and_answers_as_json_strings()
    {
        var texts = new NamedTensor("data", TensorDataType.BYTES, [2], TensorShapes.WriteBytesElements(["good"u8.ToArray(), "bad movie"u8.ToArray()]));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(_bert, new TensorInput([texts], null))));
        var answers = TensorShapes.ReadBytesElements(Assert.Single(output.Tensors));
        AssertAnswer(JsonDocument.Parse(answers[0]).RootElement, Expected(Cls, Good, Sep));
        AssertAnswer(JsonDocument.Parse(answers[1]).RootElement, Expected(Cls, Bad, Movie, Sep));

        // Without an attention mask, texts of different token counts cannot share one request.
        var error = Error(await RunOneAsync(_bag, new TensorInput([texts], null)));
        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains("no attention mask", error.Message);
    }

    [Fact]
    public async Task Without_labels_classes_are_named_by_index()
    {
        await using var model = await torch.LoadAsync(Text("bag-nolabels", "bag.pt", labels: null));
        var json = Document(await RunOneAsync(model, RawInput.FromBody(null, "good"u8.ToArray())));
        Assert.Equal(["0", "1"], json.EnumerateObject().Select(e => e.Name));
    }

    [Theory]
    [InlineData("   \n", "The text is empty")]
    [InlineData("""{"data": "  "}""", "The text is empty")]
    [InlineData("""{"inputs": "good"}""", "a \"data\" or \"text\" string")]
    [InlineData("""{"data": 42}""", "\"data\" must be a string, not number")]
    public async Task Empty_or_unusable_text_is_refused_with_a_400(string body, string message)
    {
        var error = Error(await RunOneAsync(_bag, RawInput.FromBody(null, Encoding.UTF8.GetBytes(body))));
        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public async Task Bodies_that_are_not_text_are_refused_with_a_400()
    {
        var empty = Error(await RunOneAsync(_bag, RawInput.FromBody(null, [])));
        Assert.Equal(ServeErrorKind.BadInput, empty.Kind);
        Assert.Contains("empty", empty.Message);

        var binary = Error(await RunOneAsync(_bag, RawInput.FromBody("application/octet-stream", [0xff, 0xfe, 0x00, 0xc3])));
        Assert.Equal(ServeErrorKind.BadInput, binary.Kind);
        Assert.Contains("not valid UTF-8", binary.Message);

        var numbers = Error(await RunOneAsync(_bag, new TensorInput([Fp32("data", [1], 1)], null)));
        Assert.Contains("takes text as the body", numbers.Message);
    }

    [Fact]
    public void Long_texts_are_cut_to_the_maximum_length_with_cls_and_sep_kept()
    {
        var tokenizer = TextClassifierHandler.LoadVocabulary(Store("vocab.txt"));
        var bag = new TextClassifierHandler("pytorch_torchscript", 1, tokenizer, null, maxLength: 4);
        var ids = Assert.Single(bag.Prepare(RawInput.FromBody(null, "good bad movie good bad"u8.ToArray())).Inputs);
        Assert.Equal("input_ids", ids.Name);
        Assert.Equal([1L, 4L], ids.Shape);
        Assert.Equal([Cls, Good, Bad, Sep], Longs(ids));

        var bert = new TextClassifierHandler("pytorch_torchscript", 3, tokenizer, null, maxLength: 6);
        var inputs = bert.Prepare(RawInput.FromBody(null, "good movie"u8.ToArray())).Inputs;
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], inputs.Select(i => i.Name));
        Assert.All(inputs, i => Assert.Equal([1L, 6L], i.Shape));
        Assert.Equal([Cls, Good, Movie, Sep, 0, 0], Longs(inputs[0]));
        Assert.Equal([1L, 1, 1, 1, 0, 0], Longs(inputs[1]));
        Assert.Equal([0L, 0, 0, 0, 0, 0], Longs(inputs[2]));
    }

    [Fact]
    public async Task A_cased_vocabulary_keeps_the_case()
    {
        await File.WriteAllLinesAsync(Store("cased.txt"), [.. Vocabulary, "Good"]);
        var handler = new TextClassifierHandler("pytorch_torchscript", 1, TextClassifierHandler.LoadVocabulary(Store("cased.txt")), null, 8);
        var ids = Assert.Single(handler.Prepare(RawInput.FromBody(null, "Good good"u8.ToArray())).Inputs);
        Assert.Equal([Cls, Vocabulary.Length, Good, Sep], Longs(ids));
    }

    [Fact]
    public async Task A_model_without_a_usable_vocabulary_fails_to_load_with_the_reason()
    {
        var missing = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(Text("novocab", "bag.pt", vocab: null)));
        Assert.Contains("vocab.txt", missing.Message);
        Assert.True(missing.Rejected);

        await File.WriteAllLinesAsync(Store("nomask.txt"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good"]);
        var bad = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(Text("badvocab", "bag.pt", vocab: "nomask.txt")));
        Assert.Contains("is not a BERT vocabulary", bad.Message);
        Assert.True(bad.Rejected);
    }

    [Fact]
    public async Task A_model_that_does_not_output_logits_fails_the_request_clearly()
    {
        // x * weight[1,3,1,1] turns the token ids [1, L] into [1, 3, 1, L].
        TorchScriptWriter.ChannelScale(Store("scale.pt"), [1, 1, 1]);
        await using var model = await torch.LoadAsync(Text("scale", "scale.pt"));
        var error = Error(await RunOneAsync(model, RawInput.FromBody(null, "good"u8.ToArray())));
        Assert.Equal(ServeErrorKind.ModelFailed, error.Kind);
        Assert.Contains("must output logits [batch, classes]", error.Message);
    }

    private static long[] Longs(NamedTensor tensor) =>
        [.. Enumerable.Range(0, tensor.Data.Length / 8).Select(i => BitConverter.ToInt64(tensor.Data, i * 8))];
}
