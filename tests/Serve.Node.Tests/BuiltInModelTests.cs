using Serve.Actors.Models;
using Serve.Actors.Protocol;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>Built-in architectures with seeded weights and with weights saved by TorchSharp itself.</summary>
public sealed class BuiltInModelTests(TorchFixture torch) : IClassFixture<TorchFixture>
{
    [Fact]
    public async Task Seeded_weights_are_deterministic()
    {
        var definition = TorchFixture.BuiltIn("mlp", parameters: [("layers", "4,8,3")]);
        await using var first = await torch.LoadAsync(definition);
        await using var second = await torch.LoadAsync(definition);
        var input = new TensorInput([Fp32("input__0", [1, 4], 1, 2, 3, 4)], null);

        var a = Floats(((TensorOutput)Output(await RunOneAsync(first, input))).Tensors[0]);
        var b = Floats(((TensorOutput)Output(await RunOneAsync(second, input))).Tensors[0]);
        Assert.Equal(3, a.Length);
        Assert.Equal(a, b);
        Assert.Equal([-1L, 4L], first.Signature.Inputs[0].Shape);
    }

    [Fact]
    public async Task Weights_saved_by_torchsharp_load_into_the_same_architecture()
    {
        var path = Path.Combine(torch.ModelStore, "mlp.dat");
        using (var module = TorchSharp.torch.nn.Sequential(("lin1", TorchSharp.torch.nn.Linear(3, 2, hasBias: false))))
        {
            using var noGrad = TorchSharp.torch.no_grad();
            foreach (var parameter in module.parameters())
            {
                parameter.fill_(0.5f);
            }

            module.save(path);
        }

        await using var model = await torch.LoadAsync(TorchFixture.BuiltIn("mlp", "mlp.dat", parameters: [("layers", "3,2"), ("bias", "false")]));
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, new TensorInput([Fp32("input__0", [1, 3], 1, 2, 3)], null))));
        Assert.Equal([3f, 3f], Floats(result.Tensors[0]));
    }

    [Fact]
    public async Task Weights_of_the_wrong_architecture_fail_the_load_clearly()
    {
        var path = Path.Combine(torch.ModelStore, "wrong.dat");
        using (var module = TorchSharp.torch.nn.Sequential(("lin1", TorchSharp.torch.nn.Linear(7, 7))))
        {
            module.save(path);
        }

        var error = await Assert.ThrowsAsync<ModelLoadException>(() =>
            torch.LoadAsync(TorchFixture.BuiltIn("mlp", "wrong.dat", parameters: [("layers", "3,2")])));
        Assert.Contains("could not load weights from", error.Message);
        Assert.Contains("wrong.dat", error.Message);
    }

    [Fact]
    public async Task Unknown_architectures_and_bad_parameters_are_refused()
    {
        Assert.Contains("supported: resnet18, mlp", (await Assert.ThrowsAsync<ModelLoadException>(() =>
            torch.LoadAsync(TorchFixture.BuiltIn("vgg16")))).Message);
        Assert.Contains("'layers'", (await Assert.ThrowsAsync<ModelLoadException>(() =>
            torch.LoadAsync(TorchFixture.BuiltIn("mlp")))).Message);
    }

    [Fact]
    public async Task The_mlp_refuses_a_request_with_the_wrong_number_of_inputs()
    {
        await using var model = await torch.LoadAsync(TorchFixture.BuiltIn("mlp", parameters: [("layers", "2,2")]));
        var error = Error(await RunOneAsync(model, new TensorInput([Fp32("input__0", [1, 2], 1, 2), Fp32("b", [1, 2], 1, 2)], null)));
        Assert.Equal("The model has no input 'b'; the model's input is 'input__0'", error.Message);
    }
}
