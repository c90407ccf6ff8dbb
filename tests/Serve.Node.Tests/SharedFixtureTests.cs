using Serve.Actors.Models;
using Serve.Actors.Protocol;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>
/// Files written by real PyTorch (../shared/fixtures). When that folder is absent the tests pass after
/// saying so in the output, since a bare clone cannot have them; the generated-file tests still run.
/// </summary>
public sealed class SharedFixtureTests(TorchFixture torch, ITestOutputHelper output) : IClassFixture<TorchFixture>
{
    private string? Fixture(string path)
    {
        var full = Fixtures.Shared(path);
        if (full is null)
        {
            output.WriteLine(Fixtures.SharedMissingMessage);
            Assert.Skip(Fixtures.SharedMissingMessage);
        }

        return full;
    }

    [Fact]
    public async Task Traced_linear_relu_from_pytorch()
    {
        var path = Fixture("torchscript/linrelu.script.dat")!;
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", path));
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([Fp32("input", [10], Ones(10))], null))));

        float[] expected = [0.313458f, 0, 0.999657f, 0, 0, 0];
        var actual = Floats(result.Tensors[0]);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], actual[i], 0.0001f);
        }
    }

    [Fact]
    public async Task Two_layer_network_from_pytorch_and_its_shape_check()
    {
        var path = Fixture("torchscript/l1000_100_10.script.dat")!;
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("l1000", path));
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([Fp32("input", [1, 1000], Ones(1000))], null))));
        Assert.Equal(0.564213f, Floats(result.Tensors[0])[0], 0.0001f);

        var wrong = Error(await RunOneAsync(model, new TensorInput([Fp32("input", [1, 10], Ones(10))], null)));
        Assert.Equal(ServeErrorKind.BadInput, wrong.Kind);
    }

    [Fact]
    public async Task Two_inputs_and_a_tuple_from_pytorch()
    {
        var path = Fixture("torchscript/tuple_out.dat")!;
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("tuple", path));
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model,
            new TensorInput([Fp32("x", [2], 5, 6), Fp32("y", [2], 1, 2)], null))));
        Assert.Equal([6f, 8f], Floats(result.Tensors[0]));
        Assert.Equal([4f, 4f], Floats(result.Tensors[1]));
    }

    [Fact]
    public async Task A_state_dict_file_is_not_torchscript_and_says_so()
    {
        var path = Fixture("torchscript/bug510.dat")!;
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("bug510", path)));
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public async Task Pytorch_state_dict_into_the_built_in_mlp()
    {
        var path = Fixture("pybridge/pybridge_module_load.pth")!;
        await using var model = await torch.LoadAsync(TorchFixture.BuiltIn("mlp", path, parameters: [("layers", "5,1,2"), ("bias", "false")]));
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([Fp32("input__0", [1, 5], Ones(5))], null))));
        Assert.Equal([5f, 5f], Floats(result.Tensors[0]));
    }

    [Fact]
    public async Task Safetensors_into_the_built_in_mlp()
    {
        var path = Fixture("pybridge/pybridge_module_load.safetensors")!;
        await using var model = await torch.LoadAsync(TorchFixture.BuiltIn("mlp", path, parameters: [("layers", "5,2,2"), ("bias", "false")]));
        var eleven = Enumerable.Repeat(11f, 5).ToArray();
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([Fp32("input__0", [1, 5], eleven)], null))));
        Assert.Equal([220f, 220f], Floats(result.Tensors[0]));
    }
}
