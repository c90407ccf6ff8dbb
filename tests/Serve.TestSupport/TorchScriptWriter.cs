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
        Write(path, """
            class Model(Module):
              __parameters__ = ["weight", "bias", ]
              __buffers__ = []
              weight : Tensor
              bias : Tensor
              training : bool
              def forward(self: __torch__.Model,
                input: Tensor) -> Tensor:
                bias = self.bias
                weight = self.weight
                return torch.relu(torch.linear(input, weight, bias))

            """,
            [new Parameter("weight", flat, [outFeatures, inFeatures]), new Parameter("bias", bias, [outFeatures])]);
    }

    /// <summary><c>forward(x, y) = (x + y, x - y)</c>: two inputs, a tuple of two outputs.</summary>
    public static void AddSub(string path) => Write(path, """
        class Model(Module):
          __parameters__ = []
          __buffers__ = []
          training : bool
          def forward(self: __torch__.Model,
            x: Tensor,
            y: Tensor) -> Tuple[Tensor, Tensor]:
            return (torch.add(x, y), torch.sub(x, y))

        """, []);

    /// <summary><c>forward(x) = x</c>: any datatype and shape, returned unchanged.</summary>
    public static void Identity(string path) => WriteOneInput(path, "Tensor", "x");

    /// <summary><c>forward(x) = [x, x * 2]</c>: a list of outputs.</summary>
    public static void ListOut(string path) => WriteOneInput(path, "List[Tensor]", "[x, torch.mul(x, 2)]");

    /// <summary>
    /// Well-formed TorchScript whose code names an undefined value: libtorch aborts the process that loads
    /// it (SIGABRT) instead of throwing. Only ever load it in a child process.
    /// </summary>
    public static void AbortsOnLoad(string path) => WriteOneInput(path, "Tensor", "torch.add(x, undefined_value)");

    private sealed record Parameter(string Name, float[] Values, int[] Shape);

    /// <summary>A module without parameters whose <c>forward(x)</c> returns <paramref name="expression"/>.</summary>
    private static void WriteOneInput(string path, string returnType, string expression) => Write(path, $"""
        class Model(Module):
          __parameters__ = []
          __buffers__ = []
          training : bool
          def forward(self: __torch__.Model,
            x: Tensor) -> {returnType}:
            return {expression}

        """, []);

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
