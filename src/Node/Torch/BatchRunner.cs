using System.Runtime.InteropServices;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using static TorchSharp.torch;

namespace Serve.Node.Torch;

/// <summary>The outputs of one request, or why it failed.</summary>
public sealed record RunResult(NamedTensor[]? Outputs, ServeError? Error);

/// <summary>
/// Runs a batch of prepared requests through a module on its device thread. With batching on (the model's
/// batch_size is above 1), requests whose inputs agree in count, datatype and every dimension but the
/// first are concatenated along dimension 0 and run in one forward pass, and the outputs are split back by
/// each request's share of dimension 0. When a combined pass fails, or its outputs do not split, each
/// request runs alone, so one bad request cannot fail the others.
/// </summary>
public static class BatchRunner
{
    public static RunResult[] Run(
        TorchModule module, Device device, IReadOnlyList<NamedTensor[]> requests, bool batchAlongFirstDim,
        Func<Tensor[], Tensor[]> postprocess, IReadOnlyList<string> outputNames)
    {
        var results = new RunResult[requests.Count];
        var groups = batchAlongFirstDim
            ? requests.Select((inputs, index) => (inputs, index)).GroupBy(r => BatchKey(r.inputs)).ToList()
            : requests.Select((inputs, index) => (inputs, index)).GroupBy(r => (string?)r.index.ToString()).ToList();

        foreach (var group in groups)
        {
            var members = group.ToList();
            if (group.Key is not null && members.Count > 1 && TryRunCombined(module, device, members, postprocess, outputNames, results))
            {
                continue;
            }

            foreach (var (inputs, index) in members)
            {
                results[index] = RunAlone(module, device, inputs, postprocess, outputNames);
            }
        }

        return results;
    }

    private static bool TryRunCombined(
        TorchModule module, Device device, List<(NamedTensor[] Inputs, int Index)> members,
        Func<Tensor[], Tensor[]> postprocess, IReadOnlyList<string> outputNames, RunResult[] results)
    {
        var sizes = members.Select(m => m.Inputs[0].Shape[0]).ToArray();
        var total = sizes.Sum();
        Tensor[] outputs;
        try
        {
            var inputCount = members[0].Inputs.Length;
            var combined = new Tensor[inputCount];
            for (var i = 0; i < inputCount; i++)
            {
                combined[i] = cat(members.Select(m => TensorConversion.ToTorch(m.Inputs[i], device)).ToArray(), 0);
            }

            outputs = postprocess(module.Forward(combined));
        }
        catch (Exception error) when (error is ExternalException or ModelInputException)
        {
            return false;
        }

        if (outputs.Any(o => o.dim() == 0 || o.shape[0] != total))
        {
            return false;
        }

        var hostOutputs = outputs.Select((o, i) => TensorConversion.FromTorch(OutputName(outputNames, i), o)).ToArray();
        long offset = 0;
        for (var m = 0; m < members.Count; m++)
        {
            results[members[m].Index] = new RunResult([.. hostOutputs.Select(o => Slice(o, offset, sizes[m]))], null);
            offset += sizes[m];
        }

        return true;
    }

    private static RunResult RunAlone(
        TorchModule module, Device device, NamedTensor[] inputs, Func<Tensor[], Tensor[]> postprocess, IReadOnlyList<string> outputNames)
    {
        try
        {
            var tensors = inputs.Select(t => TensorConversion.ToTorch(t, device)).ToArray();
            var outputs = postprocess(module.Forward(tensors));
            return new RunResult([.. outputs.Select((o, i) => TensorConversion.FromTorch(OutputName(outputNames, i), o))], null);
        }
        catch (ModelInputException error)
        {
            return new RunResult(null, error.ToServeError());
        }
        catch (ExternalException error)
        {
            var message = LibTorchErrors.Summarize(error.Message);
            return message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
                ? new RunResult(null, new ServeError(ServeErrorKind.ResourceExhausted, $"The device ran out of memory: {message}"))
                : new RunResult(null, new ServeError(ServeErrorKind.BadInput, $"The model rejected the input: {message}"));
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            throw new ModelExecutionException(LibTorchErrors.Summarize(error.Message), error);
        }
    }

    /// <summary>Inputs batch together when they agree in count, datatype, rank and all but the first dimension.</summary>
    private static string? BatchKey(NamedTensor[] inputs) =>
        inputs.Length == 0 || inputs.Any(t => t.Shape.Length == 0) || inputs.Select(t => t.Shape[0]).Distinct().Count() != 1
            ? null
            : string.Join(";", inputs.Select(t => $"{t.DataType}:{string.Join(",", t.Shape.Skip(1))}"));

    private static NamedTensor Slice(NamedTensor tensor, long start, long length)
    {
        var rowBytes = tensor.Data.LongLength / Math.Max(1, tensor.Shape[0]);
        var shape = (long[])tensor.Shape.Clone();
        shape[0] = length;
        var data = tensor.Data.AsSpan(checked((int)(start * rowBytes)), checked((int)(length * rowBytes))).ToArray();
        return new NamedTensor(tensor.Name, tensor.DataType, shape, data);
    }

    private static string OutputName(IReadOnlyList<string> names, int index) =>
        index < names.Count ? names[index] : $"output__{index}";
}
