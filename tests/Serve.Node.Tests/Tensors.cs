using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Serve.Actors.Models;
using Serve.Actors.Protocol;

namespace Serve.Node.Tests;

/// <summary>Small helpers to build requests and read results in tests.</summary>
public static class Tensors
{
    public static NamedTensor Fp32(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        }

        return new NamedTensor(name, TensorDataType.FP32, shape, data);
    }

    public static float[] Floats(NamedTensor tensor) =>
        [.. Enumerable.Range(0, tensor.Data.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(tensor.Data.AsSpan(i * 4)))];

    public static long[] Int64s(NamedTensor tensor) =>
        [.. Enumerable.Range(0, tensor.Data.Length / 8).Select(i => BinaryPrimitives.ReadInt64LittleEndian(tensor.Data.AsSpan(i * 8)))];

    public static RawInput Json(string json) => RawInput.FromBody("application/json", Encoding.UTF8.GetBytes(json));

    public static float[] Ones(int count) => [.. Enumerable.Repeat(1f, count)];

    public static InferenceOutput Output(InferenceOutcome outcome) =>
        outcome is InferenceOutcome.Success success
            ? success.Output
            : throw new Xunit.Sdk.XunitException($"expected success, got {((InferenceOutcome.Failure)outcome).Error}");

    public static ServeError Error(InferenceOutcome outcome) =>
        outcome is InferenceOutcome.Failure failure
            ? failure.Error
            : throw new Xunit.Sdk.XunitException("expected a failure, got success");

    public static JsonElement Document(InferenceOutcome outcome)
    {
        var document = Assert.IsType<DocumentOutput>(Output(outcome));
        Assert.Equal("application/json", document.ContentType);
        return JsonDocument.Parse(document.Body).RootElement;
    }

    public static async Task<InferenceOutcome> RunOneAsync(ILoadedModel model, InferenceInput input) =>
        (await model.InferAsync([model.Prepare(input)], CancellationToken.None)).Outcomes.Single();

    public static Task<BatchResult> RunAsync(ILoadedModel model, params InferenceInput[] inputs) =>
        model.InferAsync([.. inputs.Select(model.Prepare)], CancellationToken.None);
}
