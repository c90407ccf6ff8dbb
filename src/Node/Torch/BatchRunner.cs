using System.Runtime.InteropServices;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using TorchSharp;
using static TorchSharp.torch;

namespace Serve.Node.Torch;

/// <summary>What a handler does on the device thread around the forward pass.</summary>
public sealed record ModelSteps(Func<Tensor[], Tensor[]> ToModelInputs, Func<Tensor[], Tensor[]> Postprocess);

/// <summary>The outputs of one request, or why it failed.</summary>

/// <summary>
/// Runs a batch of prepared requests through a module on its device thread. With batching on (the model's
/// batch_size is above 1), requests whose inputs agree in count, datatype and every dimension but the
/// first are concatenated along dimension 0 and run in one forward pass, and the outputs are split back by
/// each request's share of dimension 0. When a combined pass fails, or its outputs do not split, each
/// request runs alone, so one bad request cannot fail the others. Each attempt has its own dispose scope,
/// so a failed pass frees its tensors before the next one starts.
/// </summary>
public static class BatchRunner
{
    /// <exception cref="DeviceFaultException">The device is broken for this process (a sticky CUDA error).</exception>
    public static Result<NamedTensor[]>[] Run(
        TorchModule module, Device device, IReadOnlyList<NamedTensor[]> requests, bool batchAlongFirstDim,
        ModelSteps steps, IReadOnlyList<string> outputNames)
    {
        try
        {
            return RunGroups(module, device, requests, batchAlongFirstDim, steps, outputNames);
        }
        catch (Exception error) when ((error as ExternalException ?? error.InnerException as ExternalException) is { } cuda
                                      && BreaksTheProcess(cuda.Message))
        {
            throw new DeviceFaultException(device.ToString(), LibTorchErrors.Summarize(cuda.Message), error);
        }
    }

    /// <summary>
    /// CUDA errors that stick to the process's context: after one, every call on the device fails until
    /// the process exits (PyTorch's own advice is to restart it). Other CUDA errors restart the replica.
    /// </summary>
    internal static bool BreaksTheProcess(string message) =>
        StickyCudaErrors.Any(sticky => message.Contains(sticky, StringComparison.OrdinalIgnoreCase));

    private static readonly string[] StickyCudaErrors =
    [
        "device-side assert triggered", "an illegal memory access was encountered", "misaligned address",
        "an illegal instruction was encountered", "unspecified launch failure", "uncorrectable ECC error",
    ];

    private static Result<NamedTensor[]>[] RunGroups(
        TorchModule module, Device device, IReadOnlyList<NamedTensor[]> requests, bool batchAlongFirstDim,
        ModelSteps steps, IReadOnlyList<string> outputNames)
    {
        var results = new Result<NamedTensor[]>[requests.Count];
        var indexed = requests.Select((inputs, index) => (Inputs: inputs, Index: index)).ToList();
        var groups = batchAlongFirstDim
            ? indexed.GroupBy(r => BatchKey(r.Inputs)).Select(g => (Combinable: g.Key is not null, Members: g.ToList()))
            : indexed.Select(r => (Combinable: false, Members: new List<(NamedTensor[] Inputs, int Index)> { r }));

        foreach (var (combinable, members) in groups)
        {
            if (combinable && members.Count > 1 && TryRunCombined(module, device, members, steps, outputNames, results))
            {
                continue;
            }

            foreach (var (inputs, index) in members)
            {
                results[index] = RunAlone(module, device, inputs, steps, outputNames);
            }
        }

        return results;
    }

    private static bool TryRunCombined(
        TorchModule module, Device device, List<(NamedTensor[] Inputs, int Index)> members,
        ModelSteps steps, IReadOnlyList<string> outputNames, Result<NamedTensor[]>[] results)
    {
        using var scope = NewDisposeScope();
        var sizes = members.Select(m => m.Inputs[0].Shape[0]).ToArray();
        var total = sizes.Sum();
        NamedTensor[] hostOutputs;
        try
        {
            var inputCount = members[0].Inputs.Length;
            var combined = new Tensor[inputCount];
            for (var i = 0; i < inputCount; i++)
            {
                combined[i] = cat(members.Select(m => TensorConversion.ToTorch(m.Inputs[i], device)).ToArray(), 0);
            }

            var outputs = steps.Postprocess(module.Forward(steps.ToModelInputs(combined)));
            if (outputs.Any(o => o.dim() == 0 || o.shape[0] != total))
            {
                return false;
            }

            hostOutputs = [.. outputs.Select((o, i) => TensorConversion.FromTorch(OutputName(outputNames, i), o))];
        }
        catch (Exception error) when (error is ExternalException or ModelInputException or ModelOutputException && !IsDeviceFault(error))
        {
            return false;
        }

        long offset = 0;
        for (var m = 0; m < members.Count; m++)
        {
            results[members[m].Index] = hostOutputs.Select(o => Slice(o, offset, sizes[m])).ToArray();
            offset += sizes[m];
        }

        return true;
    }

    private static Result<NamedTensor[]> RunAlone(
        TorchModule module, Device device, NamedTensor[] inputs, ModelSteps steps, IReadOnlyList<string> outputNames)
    {
        using var scope = NewDisposeScope();
        try
        {
            var tensors = inputs.Select(t => TensorConversion.ToTorch(t, device)).ToArray();
            var outputs = steps.Postprocess(module.Forward(steps.ToModelInputs(tensors)));
            return outputs.Select((o, i) => TensorConversion.FromTorch(OutputName(outputNames, i), o)).ToArray();
        }
        catch (ModelInputException error)
        {
            return error.ToServeError();
        }
        catch (ModelOutputException error)
        {
            return new ServeError(ServeErrorKind.ModelFailed, $"The model's output cannot be served: {error.Message}");
        }
        catch (ExternalException error) when (!IsDeviceFault(error))
        {
            var message = LibTorchErrors.Summarize(error.Message);
            return message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
                ? new ServeError(ServeErrorKind.ResourceExhausted, $"The device ran out of memory: {message}")
                : new ServeError(ServeErrorKind.BadInput, $"The model rejected the input: {message}");
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            throw new ModelExecutionException(LibTorchErrors.Summarize(error.Message), error);
        }
    }

    /// <summary>
    /// CUDA errors that leave the device's context broken (an illegal access, a device-side assert, a
    /// failed cuBLAS or cuDNN call) are faults of the replica, not of the input: it must restart.
    /// </summary>
    private static bool IsDeviceFault(Exception error) =>
        error is ExternalException
        && (error.Message.Contains("CUDA error", StringComparison.OrdinalIgnoreCase)
            || error.Message.Contains("device-side assert", StringComparison.OrdinalIgnoreCase)
            || error.Message.Contains("CUBLAS_STATUS", StringComparison.Ordinal)
            || error.Message.Contains("CUDNN_STATUS", StringComparison.Ordinal));

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
