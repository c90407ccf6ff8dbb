using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Torch;
using static TorchSharp.torch;

namespace Serve.Node.Handlers;

/// <summary>
/// The <c>text_classifier</c> handler: text in (a UTF-8 body, or JSON <c>{"data": text}</c> /
/// <c>{"text": text}</c>), softmax over the model's logits [N, classes] out as <c>{"label": probability}</c>
/// for every class, as TorchServe's text_classifier answers. Labels come from index_to_name.json when given,
/// else class indices.
/// <para>
/// Tokenisation is BERT's WordPiece with the model's <c>vocab.txt</c> (TorchServe's own text_classifier uses
/// torchtext's basic_english with a pickled vocabulary, which no C# code can read): [CLS] tokens [SEP], cut
/// to the maximum length (128 by default). The model gets as many of <c>input_ids</c>,
/// <c>attention_mask</c> and <c>token_type_ids</c> (int64 [N, L], in that order, as Hugging Face's BERT
/// takes them) as its forward takes. With an attention mask, every text is padded to the maximum length
/// so any requests batch together; without one, padding would change the answer, so texts are not padded
/// and only texts of the same token count share a forward pass. Text is lower-cased (and accents removed)
/// unless the vocabulary holds upper-case tokens, i.e. belongs to a cased model.
/// </para>
/// </summary>
public sealed class TextClassifierHandler : IModelHandler
{
    public const int DefaultMaxLength = 128;

    /// <summary>Texts one Open Inference Protocol request may carry.</summary>
    public const int MaxTextsPerRequest = 64;

    private static readonly string[] InputNames = ["input_ids", "attention_mask", "token_type_ids"];

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly BertTokenizer _tokenizer;
    private readonly int _modelInputs;
    private readonly IReadOnlyDictionary<int, string>? _labels;
    private readonly int _maxLength;

    public TextClassifierHandler(string platform, int modelInputs, BertTokenizer tokenizer, IReadOnlyDictionary<int, string>? labels, int maxLength)
    {
        if (modelInputs is < 1 or > 3)
        {
            throw new ModelLoadException(
                $"text_classifier gives a model 1 to 3 inputs (input_ids, attention_mask, token_type_ids); this model takes {modelInputs}",
                rejected: true);
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        _tokenizer = tokenizer;
        _modelInputs = modelInputs;
        _labels = labels;
        _maxLength = maxLength;
        Signature = new ModelSignature(platform,
            [new TensorSpec("data", TensorDataType.BYTES, [-1])],
            [new TensorSpec("output__0", TensorDataType.BYTES, [-1])]);
    }

    public ModelSignature Signature { get; }

    /// <summary>
    /// A BERT tokenizer over <paramref name="vocabPath"/> (one token per line, as Hugging Face's vocab.txt), lower-casing
    /// unless the vocabulary has upper-case tokens. Throws <see cref="ModelLoadException"/> for a file it cannot use.
    /// </summary>
    public static BertTokenizer LoadVocabulary(string vocabPath)
    {
        try
        {
            var cased = File.ReadLines(vocabPath).Any(token => !IsSpecial(token) && token.Any(char.IsUpper));
            return BertTokenizer.Create(vocabPath, new BertOptions { LowerCaseBeforeTokenization = !cased, RemoveNonSpacingMarks = !cased });
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException($"could not read the vocabulary {vocabPath}: {error.Message}", error);
        }
        catch (Exception error) when (error is ArgumentException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new ModelLoadException(
                $"{vocabPath} is not a BERT vocabulary (one token per line, with [UNK], [CLS], [SEP], [PAD] and [MASK]): {error.Message}",
                error, rejected: true);
        }
    }

    private static bool IsSpecial(string token) => token.StartsWith('[') && token.EndsWith(']');

    public PreparedRequest Prepare(InferenceInput input) => HandlerInputs.Bind(Signature.Inputs, input) switch
    {
        RawInput raw => new PreparedRequest(Encode([Text(HandlerInputs.MainPart(raw).Data)]), ResponseStyle.Document, null),
        TensorInput { Tensors: [var tensor] } when tensor.DataType == TensorDataType.BYTES =>
            new PreparedRequest(Encode([.. HandlerData.BytesElements(tensor, MaxTextsPerRequest, "texts").Select(NonEmpty)]), ResponseStyle.Tensors, null),
        _ => throw new ModelInputException(
            "text_classifier takes text as the body (UTF-8, or JSON {\"data\": \"...\"} or {\"text\": \"...\"}), "
            + "or over the Open Inference Protocol one BYTES input of texts"),
    };

    /// <summary>Tokenising is quick for the short texts a classifier takes; long ones go to the thread pool.</summary>
    public bool PreparesInline(InferenceInput input) => input switch
    {
        RawInput raw => raw.Parts.Sum(p => (long)p.Data.Length) <= 4096,
        TensorInput tensors => tensors.Tensors.Sum(t => (long)t.Data.Length) <= 4096,
        _ => false,
    };

    public bool CombinesRequests => true;

    public Tensor[] Postprocess(Tensor[] outputs)
    {
        var logits = outputs[0];
        if (logits.dim() != 2)
        {
            throw new ModelOutputException($"a text classifier must output logits [batch, classes], this one gave [{string.Join(",", logits.shape)}]");
        }

        return [nn.functional.softmax(logits.to_type(ScalarType.Float32), 1)];
    }

    public InferenceOutput Render(PreparedRequest request, NamedTensor[] outputs)
    {
        var probabilities = outputs[0];
        var rows = (int)probabilities.Shape[0];
        var classes = (int)probabilities.Shape[1];
        return HandlerData.Documents(request, [.. Enumerable.Range(0, rows).Select(row => JsonBytes.Write(writer =>
        {
            writer.WriteStartObject();
            for (var c = 0; c < classes; c++)
            {
                writer.WriteNumber(HandlerData.Label(_labels, c), BinaryPrimitives.ReadSingleLittleEndian(probabilities.Data.AsSpan((row * classes + c) * 4)));
            }

            writer.WriteEndObject();
        }, indented: true))]);
    }

    /// <summary>The model's inputs for <paramref name="texts"/>: token ids and, when it takes them, the attention mask and token types.</summary>
    private NamedTensor[] Encode(IReadOnlyList<string> texts)
    {
        var encoded = texts.Select(text => _tokenizer.EncodeToIds(text, _maxLength, addSpecialTokens: true, out _, out _)).ToList();
        var padded = _modelInputs > 1;
        var length = padded ? _maxLength : encoded[0].Count;
        if (!padded && encoded.Any(ids => ids.Count != length))
        {
            throw new ModelInputException(
                "this model takes no attention mask, so texts of different token counts cannot share a request; send them one per request");
        }

        var ids = new long[texts.Count * length];
        var mask = new long[ids.Length];
        Array.Fill(ids, _tokenizer.PaddingTokenId);
        for (var row = 0; row < encoded.Count; row++)
        {
            for (var i = 0; i < encoded[row].Count; i++)
            {
                ids[row * length + i] = encoded[row][i];
                mask[row * length + i] = 1;
            }
        }

        long[] shape = [texts.Count, length];
        NamedTensor[] all = [HandlerData.Longs(InputNames[0], shape, ids), HandlerData.Longs(InputNames[1], shape, mask),
            HandlerData.Longs(InputNames[2], shape, new long[ids.Length])];
        return all[.._modelInputs];
    }

    /// <summary>The text of a TorchServe request: the body as UTF-8, or the "data" or "text" string of a JSON body.</summary>
    private static string Text(byte[] body)
    {
        var text = Utf8(body);
        var start = text.AsSpan().TrimStart();
        if (start.Length > 0 && start[0] is '{' or '"')
        {
            JsonDocument? document = null;
            try
            {
                document = JsonDocument.Parse(text);
            }
            catch (JsonException)
            {
                // Not JSON after all: the body is the text.
            }

            if (document is not null)
            {
                using (document)
                {
                    text = JsonText(document.RootElement);
                }
            }
        }

        return string.IsNullOrWhiteSpace(text) ? throw new ModelInputException("the text is empty") : text;
    }

    private static string JsonText(JsonElement root)
    {
        if (root.ValueKind == JsonValueKind.String)
        {
            return root.GetString()!;
        }

        foreach (var name in (ReadOnlySpan<string>)["data", "text"])
        {
            if (root.TryGetProperty(name, out var value))
            {
                return value.ValueKind == JsonValueKind.String
                    ? value.GetString()!
                    : throw new ModelInputException($"the JSON body's \"{name}\" must be a string, not {value.ValueKind.ToString().ToLowerInvariant()}");
            }
        }

        throw new ModelInputException("a JSON body needs the text as a \"data\" or \"text\" string");
    }

    private static string NonEmpty(byte[] element)
    {
        var text = Utf8(element);
        return string.IsNullOrWhiteSpace(text) ? throw new ModelInputException("a text in the BYTES input is empty") : text;
    }

    private static string Utf8(byte[] bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ModelInputException("the text is not valid UTF-8");
        }
    }
}
