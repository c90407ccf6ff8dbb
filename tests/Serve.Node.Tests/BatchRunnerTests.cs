using Serve.Actors.Protocol;
using Serve.Node.Torch;
using static Serve.Node.Tests.Tensors;
using LibTorch = TorchSharp.torch;

namespace Serve.Node.Tests;

/// <summary>
/// <see cref="BatchRunner"/> with a real TorchScript module, called as the device thread calls it: which
/// requests share a forward pass (counted through the device-side input step, which runs once per pass),
/// how outputs are split back per request, and how a bad request fails alone.
/// </summary>
public sealed class BatchRunnerTests(TorchFixture fixture) : IClassFixture<TorchFixture>
{
    private sealed class PassCounter
    {
        public int Passes { get; private set; }

        public ModelSteps Steps => new(inputs =>
        {
            Passes++;
            return inputs;
        }, outputs => outputs);
    }

    private Result<NamedTensor[]>[] Run(string file, bool batch, PassCounter counter, params NamedTensor[][] requests)
    {
        using var module = ModelLoader.Load(new TorchScriptSource(file), Path.Combine(fixture.ModelStore, file), LibTorch.CPU);
        using var scope = LibTorch.NewDisposeScope();
        using var inference = LibTorch.inference_mode();
        return BatchRunner.Run(module, LibTorch.CPU, requests, batch, counter.Steps, ["output__0", "output__1"]);
    }

    [Fact]
    public void Compatible_requests_share_one_pass_and_each_gets_its_own_rows_back()
    {
        var counter = new PassCounter();
        var results = Run("identity.pt", batch: true, counter,
            [Fp32("x", [1, 2], 1, 2)], [Fp32("x", [2, 2], 3, 4, 5, 6)], [Fp32("x", [1, 2], 7, 8)]);

        Assert.Equal(1, counter.Passes);
        Assert.Equal([1f, 2f], Floats(Assert.Single(results[0].Value!)));
        Assert.Equal([2L, 2L], results[1].Value![0].Shape);
        Assert.Equal([3f, 4f, 5f, 6f], Floats(results[1].Value![0]));
        Assert.Equal([7f, 8f], Floats(results[2].Value![0]));
    }

    [Fact]
    public void Without_batching_every_request_has_a_pass_of_its_own()
    {
        var counter = new PassCounter();
        var results = Run("identity.pt", batch: false, counter, [Fp32("x", [1, 2], 1, 2)], [Fp32("x", [1, 2], 3, 4)]);

        Assert.Equal(2, counter.Passes);
        Assert.All(results, r => Assert.Null(r.Error));
    }

    [Fact]
    public void Requests_that_differ_in_datatype_or_other_dimensions_are_not_joined()
    {
        var counter = new PassCounter();
        var results = Run("identity.pt", batch: true, counter,
            [Fp32("x", [1, 2], 1, 2)], [Fp32("x", [1, 3], 1, 2, 3)], [new NamedTensor("x", TensorDataType.INT64, [1, 2], new byte[16])], [Fp32("x", [1, 2], 3, 4)]);

        // The two FP32 [1,2] share a pass; the others run alone.
        Assert.Equal(3, counter.Passes);
        Assert.Equal([1f, 2f], Floats(results[0].Value![0]));
        Assert.Equal([1L, 3L], results[1].Value![0].Shape);
        Assert.Equal(TensorDataType.INT64, results[2].Value![0].DataType);
        Assert.Equal([3f, 4f], Floats(results[3].Value![0]));
    }

    [Fact]
    public void A_request_the_model_refuses_fails_alone_after_its_joined_pass_fails()
    {
        var counter = new PassCounter();
        var results = Run("linrelu.pt", batch: true, counter,
            [Fp32("input", [1, 10], Ones(10))], [Fp32("input", [1, 3], 1, 2, 3)], [Fp32("input", [1, 10], Ones(10))]);

        // The two of shape [1,10] share a pass; [1,3] runs alone and is refused.
        Assert.Equal(TestModels.LinReluOfOnes, Floats(results[0].Value![0]));
        Assert.Equal(TestModels.LinReluOfOnes, Floats(results[2].Value![0]));
        Assert.Equal(ServeErrorKind.BadInput, results[1].Error?.Kind);
        Assert.Contains("The model rejected the input", results[1].Error!.Message);
        Assert.Equal(2, counter.Passes);
    }

    [Fact]
    public void A_joined_pass_whose_outputs_do_not_split_falls_back_to_one_pass_per_request()
    {
        // A model whose output loses the batch dimension cannot be split: the postprocess step here sums over
        // dimension 0, as a model mixing rows would.
        var passes = 0;
        var steps = new ModelSteps(inputs =>
        {
            passes++;
            return inputs;
        }, outputs => [.. outputs.Select(o => o.sum(0L, keepdim: false))]);
        using var module = ModelLoader.Load(new TorchScriptSource("identity.pt"), Path.Combine(fixture.ModelStore, "identity.pt"), LibTorch.CPU);
        using var scope = LibTorch.NewDisposeScope();
        using var inference = LibTorch.inference_mode();

        var results = BatchRunner.Run(module, LibTorch.CPU, [[Fp32("x", [1, 3], 1, 2, 3)], [Fp32("x", [1, 3], 4, 5, 6)]], true, steps, ["output__0"]);

        Assert.Equal(3, passes); // the joined pass ([2,3] summed to [3]: not 2 rows), then one each
        Assert.Equal([1f, 2f, 3f], Floats(results[0].Value![0]));
        Assert.Equal([4f, 5f, 6f], Floats(results[1].Value![0]));
    }
}
