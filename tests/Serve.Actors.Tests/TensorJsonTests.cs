using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;

namespace Serve.Actors.Tests;

public sealed class TensorJsonTests
{
    private static readonly TensorLimits Limits = new(MaxElements: 1000, MaxRank: 4);

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    private static float[] Floats(NamedTensor t) =>
        [.. Enumerable.Range(0, t.Data.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(t.Data.AsSpan(i * 4)))];

    private static string Write(NamedTensor tensor, bool nested)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            TensorJson.WriteData(writer, tensor, nested);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [Fact]
    public void Nested_lists_give_their_shape()
    {
        var tensor = TensorJson.ReadNested("x", TensorDataType.FP32, Json("[[1, 2, 3], [4, 5, 6]]"), Limits);
        Assert.Equal([2L, 3L], tensor.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], Floats(tensor));
    }

    [Fact]
    public void Ragged_nested_lists_are_refused()
    {
        var error = Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadNested("x", TensorDataType.FP32, Json("[[1, 2], [3]]"), Limits));
        Assert.Contains("not rectangular", error.Message);
    }

    [Fact]
    public void Nested_lists_that_only_pretend_to_be_large_cost_nothing()
    {
        // The first item at each depth is long, the others empty: 400 x 400 x 400 claimed, 400 sent.
        var pretend = "[[[" + string.Join(",", Enumerable.Repeat("1", 400)) + "]" + string.Concat(Enumerable.Repeat(",[]", 399)) + "]"
                      + string.Concat(Enumerable.Repeat(",[]", 399)) + "]";
        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadNested("x", TensorDataType.FP32, Json(pretend), TensorLimits.Default));
        Assert.Contains("not rectangular", error.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1_000_000, "the claimed shape was allocated");
    }

    [Fact]
    public void Declared_data_may_be_flat_or_nested()
    {
        var flat = TensorJson.ReadData("x", TensorDataType.INT64, [2, 2], Json("[1, 2, 3, 4]"), Limits);
        var nested = TensorJson.ReadData("x", TensorDataType.INT64, [2, 2], Json("[[1, 2], [3, 4]]"), Limits);
        Assert.Equal(flat.Data, nested.Data);
        Assert.Equal(3L, BinaryPrimitives.ReadInt64LittleEndian(flat.Data.AsSpan(16)));
    }

    [Fact]
    public void Element_count_must_match_the_shape()
    {
        var error = Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadData("x", TensorDataType.FP32, [2, 3], Json("[1, 2, 3, 4, 5]"), Limits));
        Assert.Contains("needs 6 elements", error.Message);
        Assert.Contains("has 5", error.Message);
    }

    [Fact]
    public void A_shape_claiming_more_than_the_limit_is_refused_before_allocating()
    {
        var error = Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadData("x", TensorDataType.FP64, [1_000_000, 1_000_000], Json("[1]"), Limits));
        Assert.Contains("more than the allowed 1000 elements", error.Message);
    }

    [Fact]
    public void Values_must_fit_the_datatype()
    {
        Assert.Contains("INT8", Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadData("x", TensorDataType.INT8, [1], Json("[300]"), Limits)).Message);
        Assert.Contains("needs a number", Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadData("x", TensorDataType.FP32, [1], Json("[\"a\"]"), Limits)).Message);
        Assert.Contains("true or false", Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadData("x", TensorDataType.BOOL, [1], Json("[1]"), Limits)).Message);
        Assert.Contains("INT32", Assert.Throws<TensorFormatException>(() =>
            TensorJson.ReadData("x", TensorDataType.INT32, [1], Json("[1.5]"), Limits)).Message);
    }

    [Theory]
    [InlineData(TensorDataType.BOOL, "[true,false,true]")]
    [InlineData(TensorDataType.INT8, "[-128,0,127]")]
    [InlineData(TensorDataType.UINT8, "[0,1,255]")]
    [InlineData(TensorDataType.INT16, "[-32768,0,32767]")]
    [InlineData(TensorDataType.INT32, "[-2147483648,0,2147483647]")]
    [InlineData(TensorDataType.INT64, "[-9223372036854775808,0,9223372036854775807]")]
    [InlineData(TensorDataType.UINT64, "[0,1,18446744073709551615]")]
    [InlineData(TensorDataType.FP32, "[1.5,-2.25,0]")]
    [InlineData(TensorDataType.FP64, "[1.5,-2.25,1E+300]")]
    [InlineData(TensorDataType.FP16, "[1.5,-2.25,0]")]
    [InlineData(TensorDataType.BF16, "[1.5,-2.25,0]")]
    [InlineData(TensorDataType.BYTES, "[\"a\",\"\",\"hello\"]")]
    public void Every_datatype_round_trips_through_json(TensorDataType type, string json)
    {
        var tensor = TensorJson.ReadData("x", type, [3], Json(json), Limits);
        Assert.Null(TensorShapes.Validate(tensor, Limits.MaxElements));
        Assert.Equal(json, Write(tensor, nested: false));
    }

    [Fact]
    public void Nested_writing_follows_the_shape()
    {
        var tensor = TensorJson.ReadData("x", TensorDataType.INT32, [2, 1, 2], Json("[1, 2, 3, 4]"), Limits);
        Assert.Equal("[[[1,2]],[[3,4]]]", Write(tensor, nested: true));
    }

    [Fact]
    public void Nan_and_infinity_are_written_as_strings()
    {
        var data = new byte[8];
        BinaryPrimitives.WriteSingleLittleEndian(data, float.NaN);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), float.PositiveInfinity);
        Assert.Equal("[\"NaN\",\"Infinity\"]", Write(new NamedTensor("x", TensorDataType.FP32, [2], data), nested: false));
    }

    [Fact]
    public void Bytes_tensors_are_validated_element_by_element()
    {
        var good = new NamedTensor("x", TensorDataType.BYTES, [2], TensorShapes.WriteBytesElements(["ab"u8.ToArray(), [1, 2, 3]]));
        Assert.Null(TensorShapes.Validate(good, 10));
        Assert.Equal(2, TensorShapes.ReadBytesElements(good).Count);

        var truncated = good with { Data = good.Data[..^1] };
        Assert.Contains("claims", TensorShapes.Validate(truncated, 10));
        var wrongCount = good with { Shape = [3] };
        Assert.Contains("needs 3 BYTES elements", TensorShapes.Validate(wrongCount, 10));
    }
}

public sealed class OipJsonTests
{
    private static OipRequest Read(string json) =>
        OipJson.ReadRequest(JsonDocument.Parse(json).RootElement, TensorLimits.Default);

    [Fact]
    public void Reads_the_specifications_request_shape()
    {
        var request = Read("""
            {"id": "42",
             "inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]},
                        {"name": "b", "shape": [2], "datatype": "INT64", "data": [[3, 4]], "parameters": {"x": 1}}],
             "outputs": [{"name": "out"}]}
            """);
        Assert.Equal("42", request.Id);
        Assert.Equal(["a", "b"], request.Inputs.Select(i => i.Name));
        Assert.Equal(TensorDataType.INT64, request.Inputs[1].DataType);
        Assert.Equal(["out"], request.RequestedOutputs!);
    }

    [Theory]
    [InlineData("[]", "JSON object")]
    [InlineData("{}", "'inputs' array")]
    [InlineData("""{"inputs": []}""", "must not be empty")]
    [InlineData("""{"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}""", "non-empty 'name'")]
    [InlineData("""{"inputs": [{"name": "a", "shape": [1], "datatype": "FLOAT", "data": [1]}]}""", "needs a 'datatype'")]
    [InlineData("""{"inputs": [{"name": "a", "shape": [-1], "datatype": "FP32", "data": [1]}]}""", "non-negative")]
    [InlineData("""{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32"}]}""", "has no 'data'")]
    [InlineData("""{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}, {"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}""", "more than once")]
    [InlineData("""{"id": 5, "inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}""", "'id' must be a string")]
    public void Malformed_requests_say_what_is_wrong(string json, string expected) =>
        Assert.Contains(expected, Assert.Throws<TensorFormatException>(() => Read(json)).Message);
}
