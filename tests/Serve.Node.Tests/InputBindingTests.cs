using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Node.Torch;
using static Serve.Node.Tests.Tensors;

namespace Serve.Node.Tests;

/// <summary>
/// Inputs bind to a model's declared inputs by name, and the names are forward's own argument names as
/// the TorchScript file declares them.
/// </summary>
public sealed class InputBindingTests(TorchFixture torch, ITestOutputHelper output) : IClassFixture<TorchFixture>
{
    [Fact]
    public async Task Metadata_names_the_inputs_as_forward_declares_them()
    {
        await using var addSub = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));
        await using var linRelu = await torch.LoadAsync(TorchFixture.TorchScript("linrelu", "linrelu.pt"));

        Assert.Equal(["x", "y"], addSub.Signature.Inputs.Select(i => i.Name));
        Assert.Equal(["input"], linRelu.Signature.Inputs.Select(i => i.Name));
    }

    [Fact]
    public async Task The_names_survive_the_first_forward_pass_that_learns_datatypes()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));
        Output(await RunOneAsync(model, new TensorInput([Fp32("x", [1], 1), Fp32("y", [1], 2)], null)));

        Assert.Equal(["x", "y"], model.Signature.Inputs.Select(i => i.Name));
        Assert.All(model.Signature.Inputs, i => Assert.Equal([-1L], i.Shape));
        Assert.Equal(["output__0", "output__1"], model.Signature.Outputs.Select(o => o.Name));
    }

    [Fact]
    public async Task Inputs_in_any_order_bind_by_name()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));
        var result = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model,
            new TensorInput([Fp32("y", [2], 1, 2), Fp32("x", [2], 10, 20)], null))));

        Assert.Equal("output__0", result.Tensors[0].Name);
        Assert.Equal([11f, 22f], Floats(result.Tensors[0]));
        Assert.Equal("output__1", result.Tensors[1].Name);
        Assert.Equal([9f, 18f], Floats(result.Tensors[1]));
    }

    [Fact]
    public async Task An_open_inference_protocol_body_on_the_torchserve_endpoint_binds_by_name_too()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));
        var output = Assert.IsType<TensorOutput>(Output(await RunOneAsync(model, Json("""
            {"inputs": [{"name": "y", "shape": [1], "datatype": "FP32", "data": [1]},
                        {"name": "x", "shape": [1], "datatype": "FP32", "data": [10]}]}
            """))));

        Assert.Equal("output__1", output.Tensors[1].Name);
        Assert.Equal([9f], Floats(output.Tensors[1]));
    }

    [Theory]
    [InlineData("addsub", "z", "the model has no input 'z'; the model's inputs are 'x', 'y'")]
    [InlineData("linrelu", "x", "the model has no input 'x'; the model's input is 'input'")]
    public async Task An_unknown_name_is_a_bad_input_that_lists_the_models_names(string model, string name, string expected)
    {
        await using var loaded = await torch.LoadAsync(TorchFixture.TorchScript(model, $"{model}.pt"));
        var inputs = model == "addsub" ? new[] { Fp32("x", [1], 1), Fp32(name, [1], 2) } : [Fp32(name, [1, 10], Ones(10))];

        var error = Error(await RunOneAsync(loaded, new TensorInput(inputs, null)));

        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Equal(char.ToUpperInvariant(expected[0]) + expected[1..], error.Message);
    }

    [Fact]
    public async Task A_missing_or_repeated_input_is_a_bad_input()
    {
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("addsub", "addsub.pt"));

        var missing = Error(await RunOneAsync(model, new TensorInput([Fp32("x", [1], 1)], null)));
        Assert.Equal(ServeErrorKind.BadInput, missing.Kind);
        Assert.Equal("Input 'y' is missing; the model's inputs are 'x', 'y'", missing.Message);

        var repeated = Error(await RunOneAsync(model, new TensorInput([Fp32("x", [1], 1), Fp32("x", [1], 2)], null)));
        Assert.Equal(ServeErrorKind.BadInput, repeated.Kind);
        Assert.StartsWith("Input 'x' appears more than once", repeated.Message);

        var nested = Error(await RunOneAsync(model, Json("[[1, 2]]")));
        Assert.Contains("this model takes 2", nested.Message);
        Assert.Contains("'x', 'y'", nested.Message);
    }

    [Fact]
    public async Task Built_in_handlers_take_their_declared_input_name_only()
    {
        await using var model = await torch.LoadAsync(TorchFixture.BuiltIn("resnet18", handler: BuiltInHandlers.ImageClassifier));
        var image = new NamedTensor("image", TensorDataType.BYTES, [1], Serve.Actors.Tensors.TensorShapes.WriteBytesElements([Images.Jpeg()]));

        var error = Error(await RunOneAsync(model, new TensorInput([image], null)));

        Assert.Equal(ServeErrorKind.BadInput, error.Kind);
        Assert.Contains("the model's input is 'data'", error.Message);
    }

    [Fact]
    public async Task Batching_never_joins_requests_whose_datatypes_or_other_dimensions_differ()
    {
        // torch.cat would promote INT64 rows to FP32 and could not join [1,2] with [1,3]; each request must
        // come back exactly as it went in from the identity model.
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("identity", "identity.pt", batchSize: 8));
        NamedTensor[] inputs =
        [
            Fp32("x", [1, 2], 1, 2),
            new NamedTensor("x", TensorDataType.INT64, [1, 2], [7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]),
            Fp32("x", [1, 3], 3, 4, 5),
            Fp32("x", [2, 2], 6, 7, 8, 9),
            new NamedTensor("x", TensorDataType.FP64, [1, 2], new byte[16]),
        ];

        var result = await RunAsync(model, [.. inputs.Select(i => (InferenceInput)new TensorInput([i], null))]);

        for (var i = 0; i < inputs.Length; i++)
        {
            var answer = Assert.Single(Assert.IsType<TensorOutput>(Output(result.Outcomes[i])).Tensors);
            Assert.Equal(inputs[i].DataType, answer.DataType);
            Assert.Equal(inputs[i].Shape, answer.Shape);
            Assert.Equal(inputs[i].Data, answer.Data);
        }
    }

    [Fact]
    public void Argument_names_are_read_from_the_source_torch_jit_save_writes()
    {
        const string source = """
            class Model(Module):
              __parameters__ = []
              training : bool
              def helper(self: __torch__.Model, a: Tensor) -> Tensor:
                return a
              def forward(self: __torch__.Model,
                image: Tensor,
                mask: Optional[Tensor]=None,
                sizes: Tuple[int, int]=(1, 2)) -> Dict[str, Tensor]:
                return {"out": image}
            class Other(Module):
              def forward(self: __torch__.Other, q: Tensor) -> Tensor:
                return q
            """;

        Assert.Equal(["image", "mask", "sizes"], TorchScriptCode.ForwardArguments(source, "Model") ?? []);
        Assert.Equal(["q"], TorchScriptCode.ForwardArguments(source, "Other") ?? []);
        Assert.Null(TorchScriptCode.ForwardArguments(source, "Missing"));
        Assert.Null(TorchScriptCode.ForwardArguments("class Model(Module):\n  def forward(x: Tensor", "Model"));
    }

    [Fact]
    public void A_file_without_readable_source_gives_no_names()
    {
        var path = Path.Combine(torch.ModelStore, "not-a-zip.pt");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Null(TorchScriptCode.ForwardArgumentNames(path));
    }

    [Theory]
    [InlineData("torchscript/tuple_out.dat", new[] { "x", "y" })]
    [InlineData("torchscript/linrelu.script.dat", new[] { "input" })]
    [InlineData("torchscript/l1000_100_10.script.dat", new[] { "input" })]
    public void Argument_names_of_files_written_by_pytorch(string fixture, string[] expected)
    {
        if (Fixtures.Shared(fixture) is not { } path)
        {
            output.WriteLine(Fixtures.SharedMissingMessage);
            Assert.Skip(Fixtures.SharedMissingMessage);
            return;
        }

        Assert.Equal(expected, TorchScriptCode.ForwardArgumentNames(path) ?? []);
    }
}
