using System.Text.Json;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Node.Torch;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>TorchScript files the tests write themselves, loaded and run by the real TorchSharp backend.</summary>
public sealed class TorchScriptModelTests(TorchFixture torch) : IClassFixture<TorchFixture>
{
    [Fact]
    public async Task A_generated_linear_relu_model_computes_the_expected_values()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", "linrelu.pt"));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([Fp32("input", [1, 10], Ones(10))], null))));

        var result = Assert.Single(output.Tensors);
        Assert.Equal([1L, 6L], result.Shape);
        Assert.Equal(TestModels.LinReluOfOnes, Floats(result));
        Assert.Equal("pytorch_torchscript", model.Signature.Platform);
        Assert.Equal("cpu:0", model.Device);
    }

    [Fact]
    public async Task Nested_json_lists_in_give_tensors_shaped_by_the_nesting_out()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", "linrelu.pt"));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, Json("[[1,1,1,1,1,1,1,1,1,1],[1,1,1,1,1,1,1,1,1,1]]"))));

        var only = Assert.Single(output.Tensors);
        Assert.False(output.NamedInputs);
        Assert.Equal([2L, TestModels.LinReluOfOnes.Length], only.Shape);
        Assert.Equal([.. TestModels.LinReluOfOnes, .. TestModels.LinReluOfOnes], Floats(only));
    }

    [Fact]
    public async Task An_open_inference_protocol_body_on_the_torchserve_endpoint_gives_named_outputs_marked_so()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, Json("""
            {"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [5, 7]},
                        {"name": "y", "shape": [2], "datatype": "INT64", "data": [1, 2]}]}
            """))));

        Assert.True(output.NamedInputs);
        Assert.Equal(2, output.Tensors.Length);
        Assert.Equal(TensorDataType.INT64, output.Tensors[0].DataType);
        Assert.Equal([6L, 9L], Int64s(output.Tensors[0]));
        Assert.Equal([4L, 5L], Int64s(output.Tensors[1]));
    }

    [Fact]
    public async Task Several_inputs_and_tuple_or_list_outputs_are_supported()
    {
        await using var addSub = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));
        Assert.Equal(2, addSub.Signature.Inputs.Length);
        var sums = Assert.IsType<TensorOutput>(Output(await RunOneAsync(addSub,
            new TensorInput([Fp32("x", [2], 3, 4), Fp32("y", [2], 1, 1)], null))));
        Assert.Equal([4f, 5f], Floats(sums.Tensors[0]));
        Assert.Equal([2f, 3f], Floats(sums.Tensors[1]));

        await using var listOut = await torch.LoadAsync(TorchFixture.TorchScript("listout", "listout.pt"));
        var listed = Assert.IsType<TensorOutput>(Output(await RunOneAsync(listOut, new TensorInput([Fp32("x", [2], 1, 2)], null))));
        Assert.Equal([2f, 4f], Floats(listed.Tensors[1]));
    }

    [Theory]
    [InlineData(TensorDataType.BOOL, new byte[] { 1, 0, 1 })]
    [InlineData(TensorDataType.UINT8, new byte[] { 0, 7, 255 })]
    [InlineData(TensorDataType.INT32, new byte[] { 1, 0, 0, 0, 2, 0, 0, 0, 255, 255, 255, 255 })]
    [InlineData(TensorDataType.INT64, new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 128 })]
    [InlineData(TensorDataType.FP64, new byte[] { 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 8, 192 })]
    [InlineData(TensorDataType.FP16, new byte[] { 0, 60, 0, 64, 0, 194 })]
    [InlineData(TensorDataType.BF16, new byte[] { 128, 63, 0, 64, 64, 192 })]
    public async Task Every_libtorch_datatype_passes_through_unchanged(TensorDataType type, byte[] data)
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("identity", "identity.pt"));
        var input = new NamedTensor("x", type, [3], data);
        var output = Assert.Single(Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([input], null)))).Tensors);

        Assert.Equal(type, output.DataType);
        Assert.Equal([3L], output.Shape);
        Assert.Equal(data, output.Data);
    }

    [Fact]
    public async Task A_wrong_shape_is_a_bad_input_that_names_the_problem()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", "linrelu.pt"));
        var error = Error(await RunOneAsync(model, new TensorInput([Fp32("input", [1, 3], 1, 2, 3)], null)));

        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains("The model rejected the input", error.Message);
        Assert.Contains("shapes cannot be multiplied", error.Message);
    }

    [Fact]
    public async Task Unsupported_datatypes_and_malformed_json_are_bad_inputs()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("identity", "identity.pt"));
        var unsigned = new NamedTensor("x", TensorDataType.UINT32, [1], [1, 0, 0, 0]);
        Assert.Contains("UINT32 is not supported", Error(await RunOneAsync(model, new TensorInput([unsigned], null))).Message);
        Assert.Contains("not valid JSON", Error(await RunOneAsync(model, Json("[[1, 2"))).Message);
        Assert.Contains("nested list", Error(await RunOneAsync(model, Json("\"text\""))).Message);
        var truncated = Fp32("x", [2], 1, 2) with { Data = new byte[7] };
        Assert.Contains("needs 8 bytes", Error(await RunOneAsync(model, new TensorInput([truncated], null))).Message);
    }

    [Fact]
    public async Task Batched_requests_give_the_same_answers_as_single_ones_and_a_bad_one_fails_alone()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", "linrelu.pt", batchSize: 8));
        var twos = Enumerable.Repeat(2f, 10).ToArray();
        var batch = new InferenceInput[]
        {
            new TensorInput([Fp32("input", [1, 10], Ones(10))], null),
            new TensorInput([Fp32("input", [2, 10], [.. Ones(10), .. twos])], null),
            new TensorInput([new NamedTensor("input", TensorDataType.INT64, [1, 10], new byte[80])], null),
            new TensorInput([Fp32("input", [1, 10], twos)], null),
        };

        var result = await RunAsync(model, batch);

        Assert.Equal(4, result.Outcomes.Count);
        Assert.Equal(TestModels.LinReluOfOnes, Floats(((TensorOutput)Output(result.Outcomes[0])).Tensors[0]));
        var second = ((TensorOutput)Output(result.Outcomes[1])).Tensors[0];
        Assert.Equal([2L, 6L], second.Shape);
        Assert.Equal(TestModels.LinReluOfOnes, Floats(second)[..6]);
        Assert.Equal(ServeErrorKind.BadInput, Error(result.Outcomes[2]).Kind);
        Assert.Equal(Floats(second)[6..], Floats(((TensorOutput)Output(result.Outcomes[3])).Tensors[0]));
    }

    [Fact]
    public async Task A_file_that_is_not_torchscript_fails_its_load_naming_the_file()
    {
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("garbage", "garbage.pt")));
        Assert.Contains(Path.Combine(torch.ModelStore, "garbage.pt"), error.Message);
        Assert.Contains("not a TorchScript file", error.Message);
    }

    [Fact]
    public async Task A_model_whose_code_reads_host_files_is_refused_for_good_without_being_loaded()
    {
        TorchScriptWriter.ReadsHostFile(Path.Combine(torch.ModelStore, "snoop.pt"));
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("snoop", "snoop.pt")));
        Assert.True(error.Rejected);
        Assert.Contains("calls from_file (in model/code/__torch__.py), which reads files of the host", error.Message);
        Assert.Null(TorchScriptCode.FileOperatorCall(Path.Combine(torch.ModelStore, "linrelu.pt")));
    }

    [Fact]
    public async Task A_missing_file_or_a_path_out_of_the_store_fails_clearly()
    {
        // Refused for good (not retried in a loop): a file that is not there does not appear by itself.
        var missing = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("missing", "missing.pt")));
        Assert.Contains("does not exist", missing.Message);
        Assert.True(missing.Rejected);
        Assert.Contains("leaves the model store", (await Assert.ThrowsAsync<ModelLoadException>(() =>
            torch.LoadAsync(TorchFixture.TorchScript("escape", "../etc/passwd")))).Message);
    }

    [Fact]
    public async Task Devices_are_given_back_when_models_unload()
    {
        var model = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", "linrelu.pt"));
        Assert.Equal(1, torch.Devices.ReplicasPerDevice()["cpu:0"]);
        await model.DisposeAsync();
        Assert.Equal(0, torch.Devices.ReplicasPerDevice()["cpu:0"]);
    }
}
