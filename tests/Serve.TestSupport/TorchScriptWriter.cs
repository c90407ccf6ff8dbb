using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Serve.TestSupport;

/// <summary>
/// Writes small TorchScript archives (the format <c>torch.jit.save</c> writes) without Python, from fixed
/// templates only: libtorch aborts the whole process on TorchScript with a semantic error, so never
/// generate code beyond these tested templates. The archive holds <c>data.pkl</c> (the module object,
/// pickle protocol 2), <c>code/__torch__.py</c>, <c>constants.pkl</c>, <c>version</c> and one raw
/// little-endian storage per parameter under <c>data/</c>.
/// </summary>
public static class TorchScriptWriter
{
    /// <summary><c>forward(x) = relu(x @ weight.T + bias)</c>: weight is [out, in] row-major, bias [out].</summary>
    public static void LinearRelu(string path, float[,] weight, float[] bias)
    {
        var outFeatures = weight.GetLength(0);
        var inFeatures = weight.GetLength(1);
        if (bias.Length != outFeatures)
        {
            throw new ArgumentException($"bias needs {outFeatures} values", nameof(bias));
        }

        var flat = new float[outFeatures * inFeatures];
        Buffer.BlockCopy(weight, 0, flat, 0, flat.Length * sizeof(float));
        WriteModule(path, [new Parameter("weight", flat, [outFeatures, inFeatures]), new Parameter("bias", bias, [outFeatures])], """
              def forward(self: __torch__.Model,
                input: Tensor) -> Tensor:
                bias = self.bias
                weight = self.weight
                return torch.relu(torch.linear(input, weight, bias))

            """);
    }

    /// <summary><c>forward(x, y) = (x + y, x - y)</c>: two inputs, a tuple of two outputs.</summary>
    public static void AddSub(string path) => WriteModule(path, [], """
          def forward(self: __torch__.Model,
            x: Tensor,
            y: Tensor) -> Tuple[Tensor, Tensor]:
            return (torch.add(x, y), torch.sub(x, y))

        """);

    /// <summary><c>forward(x) = x</c>: any datatype and shape, returned unchanged.</summary>
    public static void Identity(string path) => WriteOneInput(path, "Tensor", "x");

    /// <summary><c>forward(x) = [x, x * 2]</c>: a list of outputs.</summary>
    public static void ListOut(string path) => WriteOneInput(path, "List[Tensor]", "[x, torch.mul(x, 2)]");

    /// <summary>
    /// A bag-of-embeddings text classifier: <c>forward(input_ids [B,L] int64) = mean over L of weight[input_ids]</c>,
    /// logits [B,K]; <paramref name="weight"/> is [vocabulary, classes], so each token adds its row.
    /// </summary>
    public static void EmbeddingClassifier(string path, float[,] weight) => WriteModule(path, [Matrix("weight", weight)], """
          def forward(self: __torch__.Model,
            input_ids: Tensor) -> Tensor:
            weight = self.weight
            embedded = torch.embedding(weight, input_ids)
            return torch.mean(embedded, [1])

        """);

    /// <summary>
    /// The same classifier with BERT's three inputs (input_ids, attention_mask, token_type_ids [B,L] int64):
    /// the mean over the tokens the mask keeps, plus the sum of token_type_ids; returns a one-tuple as
    /// Hugging Face models traced with <c>return_dict=False</c> do.
    /// </summary>
    public static void MaskedEmbeddingClassifier(string path, float[,] weight) => WriteModule(path, [Matrix("weight", weight)], """
          def forward(self: __torch__.Model,
            input_ids: Tensor,
            attention_mask: Tensor,
            token_type_ids: Tensor) -> Tuple[Tensor]:
            weight = self.weight
            embedded = torch.embedding(weight, input_ids)
            kept = torch.mul(embedded, torch.unsqueeze(attention_mask, 2))
            mean = torch.div(torch.sum(kept, [1]), torch.sum(attention_mask, [1], True))
            return (torch.add(mean, torch.sum(token_type_ids, [1], True)),)

        """);

    /// <summary>
    /// A detector in Serve's TorchScript form: <c>forward(image [1,3,H,W]) = (boxes [N,4], labels [N] int64,
    /// scores [N])</c>. Boxes and labels are fixed; each score is <c>scores[i] * 2 * mean(image)</c>, so a
    /// black image detects nothing and a brighter one more.
    /// </summary>
    public static void Detector(string path, float[,] boxes, float[] labels, float[] scores) => WriteModule(path, [Matrix("boxes", boxes), new Parameter("labels", labels, [labels.Length]), new Parameter("scores", scores, [scores.Length])], """
          def forward(self: __torch__.Model,
            x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
            boxes = self.boxes
            labels = self.labels
            scores = self.scores
            brightness = torch.mean(x)
            _0 = torch.mul(torch.mul(scores, brightness), 2)
            return (boxes, torch.to(labels, 4), _0)

        """);

    /// <summary>
    /// A segmenter as torchvision's are scripted: <c>forward(x) = {"out": x * weight, "aux": -x}</c>, with
    /// weight [1,C,1,1]: class c's logit at a pixel is channel c times weight[c] (C = 3, the image's channels).
    /// </summary>
    public static void DictSegmenter(string path, float[] weight) => WriteModule(path, [new Parameter("weight", weight, [1, weight.Length, 1, 1])], """
          def forward(self: __torch__.Model,
            x: Tensor) -> Dict[str, Tensor]:
            weight = self.weight
            return {"out": torch.mul(x, weight), "aux": torch.neg(x)}

        """);

    /// <summary><c>forward(x) = x * weight</c> with weight [1,C,1,1]: a segmenter whose logits are a tensor [B,C,H,W].</summary>
    public static void ChannelScale(string path, float[] weight) => WriteModule(path, [new Parameter("weight", weight, [1, weight.Length, 1, 1])], """
          def forward(self: __torch__.Model,
            x: Tensor) -> Tensor:
            weight = self.weight
            return torch.mul(x, weight)

        """);

    /// <summary>
    /// <c>forward(x) = x + sum(first 4 bytes of /etc/passwd)</c> through <c>torch.from_file</c>: a model that reads a
    /// file of the host. Serve must refuse it before libtorch ever loads it.
    /// </summary>
    public static void ReadsHostFile(string path) => WriteOneInput(path, "Tensor", "torch.add(x, torch.sum(torch.from_file(\"/etc/passwd\", False, 4, dtype=0)))");

    /// <summary>
    /// Well-formed TorchScript whose code names an undefined value: libtorch aborts the process that loads
    /// it (SIGABRT) instead of throwing. Only ever load it in a child process.
    /// </summary>
    public static void AbortsOnLoad(string path) => WriteOneInput(path, "Tensor", "torch.add(x, undefined_value)");

    private sealed record Parameter(string Name, float[] Values, int[] Shape);

    private static Parameter Matrix(string name, float[,] values)
    {
        var flat = new float[values.Length];
        Buffer.BlockCopy(values, 0, flat, 0, flat.Length * sizeof(float));
        return new Parameter(name, flat, [values.GetLength(0), values.GetLength(1)]);
    }

    /// <summary>A module without parameters whose <c>forward(x)</c> returns <paramref name="expression"/>.</summary>
    private static void WriteOneInput(string path, string returnType, string expression) => WriteModule(path, [], $"""
          def forward(self: __torch__.Model,
            x: Tensor) -> {returnType}:
            return {expression}

        """);

    /// <summary>
    /// The module class as torch.jit.save writes it: each parameter declared as a Tensor attribute, then
    /// <paramref name="forward"/> (the method, indented by two spaces).
    /// </summary>
    private static void WriteModule(string path, IReadOnlyList<Parameter> parameters, string forward)
    {
        var header = new StringBuilder("class Model(Module):\n")
            .Append("  __parameters__ = [").AppendJoin(string.Empty, parameters.Select(p => $"\"{p.Name}\", ")).Append("]\n")
            .Append("  __buffers__ = []\n")
            .AppendJoin(string.Empty, parameters.Select(p => $"  {p.Name} : Tensor\n"))
            .Append("  training : bool\n");
        Write(path, header + forward, parameters);
    }

    private static void Write(string path, string code, IReadOnlyList<Parameter> parameters)
    {
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        Add(zip, "model/data.pkl", ModulePickle(parameters));
        Add(zip, "model/code/__torch__.py", Encoding.UTF8.GetBytes(code.Replace("\r\n", "\n", StringComparison.Ordinal)));
        Add(zip, "model/constants.pkl", [0x80, 0x02, (byte)')', (byte)'.']);
        Add(zip, "model/version", "3\n"u8.ToArray());
        for (var i = 0; i < parameters.Count; i++)
        {
            var bytes = new byte[parameters[i].Values.Length * sizeof(float)];
            for (var v = 0; v < parameters[i].Values.Length; v++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(v * sizeof(float)), parameters[i].Values[v]);
            }

            Add(zip, $"model/data/{i}", bytes);
        }
    }

    private static void Add(ZipArchive zip, string name, byte[] content)
    {
        var entry = zip.CreateEntry(name, CompressionLevel.NoCompression);
        using var stream = entry.Open();
        stream.Write(content);
    }

    /// <summary>The pickled module: <c>__torch__.Model</c> with <c>training=True</c> and its parameters.</summary>
    private static byte[] ModulePickle(IReadOnlyList<Parameter> parameters)
    {
        var p = new Pickler();
        p.Op(0x80).Op(2);
        p.Global("__torch__", "Model").Op(')').Op(0x81).Op('}').Op('(');
        p.Unicode("training").Op(0x88);
        for (var i = 0; i < parameters.Count; i++)
        {
            p.Unicode(parameters[i].Name);
            Tensor(p, parameters[i], storageKey: i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        p.Op('u').Op('b').Op('.');
        return p.ToArray();
    }

    private static void Tensor(Pickler p, Parameter parameter, string storageKey)
    {
        p.Global("torch._utils", "_rebuild_tensor_v2").Op('(');
        p.Op('(').Unicode("storage").Global("torch", "FloatStorage").Unicode(storageKey).Unicode("cpu").Int(parameter.Values.Length).Op('t').Op('Q');
        p.Int(0);
        p.Op('(');
        foreach (var dim in parameter.Shape)
        {
            p.Int(dim);
        }

        p.Op('t').Op('(');
        var stride = 1;
        var strides = new int[parameter.Shape.Length];
        for (var d = parameter.Shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= parameter.Shape[d];
        }

        foreach (var s in strides)
        {
            p.Int(s);
        }

        p.Op('t').Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R').Op('t').Op('R');
    }

    private sealed class Pickler
    {
        private readonly ArrayBufferWriter<byte> _buffer = new();

        public Pickler Op(char code) => Op((byte)code);

        public Pickler Op(byte code)
        {
            _buffer.Write([code]);
            return this;
        }

        public Pickler Global(string module, string name)
        {
            _buffer.Write("c"u8);
            _buffer.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
            return this;
        }

        public Pickler Unicode(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)bytes.Length);
            _buffer.Write("X"u8);
            _buffer.Write(length);
            _buffer.Write(bytes);
            return this;
        }

        public Pickler Int(int value)
        {
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
            _buffer.Write("J"u8);
            _buffer.Write(bytes);
            return this;
        }

        public byte[] ToArray() => _buffer.WrittenSpan.ToArray();
    }
}
