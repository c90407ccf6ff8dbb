using System.Collections;
using System.Runtime.CompilerServices;
using Serve.Actors.Protocol;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Node.Torch;

/// <summary>
/// A loaded model, TorchScript or built-in, behind one call: tensors in, a flat list of tensors out
/// (tuples and lists of outputs are flattened in order). Used only on its device's executor thread.
/// </summary>
public sealed class TorchModule : IDisposable
{
    private readonly jit.ScriptModule? _script;
    private readonly nn.Module<Tensor, Tensor>? _builtIn;
    private volatile ModelSignature _signature;
    private bool _signatureLearned;

    private TorchModule(jit.ScriptModule? script, nn.Module<Tensor, Tensor>? builtIn, ModelSignature signature)
    {
        _script = script;
        _builtIn = builtIn;
        _signature = signature;
        _signatureLearned = builtIn is not null;
        MemoryBytes = ParameterAndBufferBytes((nn.Module?)script ?? builtIn!);
    }

    /// <summary>Bytes the parameters and buffers take on the device (measured once, at load).</summary>
    public long MemoryBytes { get; }

    /// <summary>
    /// Inputs and outputs. Built-in architectures declare theirs; a TorchScript file does not say its
    /// datatypes, ranks or how many outputs its tuple holds, so those are learned from the first forward pass.
    /// </summary>
    public ModelSignature Signature => _signature;

    public static TorchModule FromScript(jit.ScriptModule script, ModelSignature signature) => new(script, null, signature);

    public static TorchModule FromBuiltIn(nn.Module<Tensor, Tensor> module, ModelSignature signature) => new(null, module, signature);

    public Tensor[] Forward(Tensor[] inputs)
    {
        if (_builtIn is not null)
        {
            if (inputs.Length != 1)
            {
                throw new ModelInputException($"this model takes 1 input, got {inputs.Length}");
            }

            return [_builtIn.call(inputs[0])];
        }

        object result;
        try
        {
            result = _script!.forward([.. inputs.Cast<object>()]);
        }
        catch (ArgumentOutOfRangeException error)
        {
            // TorchSharp 0.107 fails this way reading a return value it does not know, such as a dictionary.
            throw new ModelOutputException(
                "the model returned a value TorchSharp cannot read (a dictionary?); export it to return a tensor, or a tuple or list of tensors " +
                $"({error.Message})");
        }

        var outputs = new List<Tensor>();
        Flatten(result, outputs);
        if (!_signatureLearned)
        {
            _signatureLearned = true;
            _signature = _signature with { Inputs = Observe(_signature.Inputs, inputs), Outputs = Observe(_signature.Outputs, outputs) };
        }

        return [.. outputs];
    }

    /// <summary>Datatypes and ranks as seen; names as declared (inputs: forward's arguments; outputs: output__N).</summary>
    private static TensorSpec[] Observe(TensorSpec[] declared, IReadOnlyList<Tensor> tensors) =>
        [.. tensors.Select((t, i) => new TensorSpec(i < declared.Length ? declared[i].Name : $"output__{i}",
            TensorConversion.DataTypeOf(t.dtype) ?? TensorDataType.FP32, [.. Enumerable.Repeat(-1L, (int)t.dim())]))];

    private static void Flatten(object? value, List<Tensor> outputs)
    {
        switch (value)
        {
            case Tensor tensor:
                outputs.Add(tensor);
                break;
            case ITuple tuple:
                for (var i = 0; i < tuple.Length; i++)
                {
                    Flatten(tuple[i], outputs);
                }

                break;
            case IEnumerable items when value is not string:
                foreach (var item in items)
                {
                    Flatten(item, outputs);
                }

                break;
            default:
                throw new ModelOutputException(
                    $"the model returned {value?.GetType().Name ?? "nothing"}; only tensors, tuples and lists of tensors are supported");
        }
    }

    private static long ParameterAndBufferBytes(nn.Module module)
    {
        // A script module hands out new wrappers for its tensors: the scope frees them (not the storage).
        using var scope = NewDisposeScope();
        return module.parameters().Sum(p => p.NumberOfElements * p.ElementSize)
               + module.buffers().Sum(b => b.NumberOfElements * b.ElementSize);
    }

    public void Dispose()
    {
        _script?.Dispose();
        _builtIn?.Dispose();
    }
}

/// <summary>The model produced something the protocol cannot carry (not a tensor, an unsupported datatype). 500.</summary>
public sealed class ModelOutputException(string message) : Exception(message);

/// <summary>The model refused an input (wrong shape, datatype or count). The request fails with 400.</summary>
public sealed class ModelInputException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The request's error, phrased as a sentence.</summary>
    public ServeError ToServeError() =>
        new(ServeErrorKind.BadInput, Message.Length > 0 ? char.ToUpperInvariant(Message[0]) + Message[1..] : Message);
}
