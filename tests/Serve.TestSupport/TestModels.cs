namespace Serve.TestSupport;

/// <summary>
/// The small TorchScript model most tests serve: Linear(10 -> 6) + ReLU. Row i of the weight is
/// (i + 1) * 0.1 with alternating signs, so an input of ten ones sums to 0 in every row and the answer is
/// relu(bias): a result the tests know without running PyTorch.
/// </summary>
public static class TestModels
{
    public static readonly float[] LinReluBias = [0.5f, -0.5f, 0f, 1f, 2f, -3f];

    /// <summary>What the model answers for ten ones.</summary>
    public static readonly float[] LinReluOfOnes = [0.5f, 0f, 0f, 1f, 2f, 0f];

    public const string OnesJson = "[[1,1,1,1,1,1,1,1,1,1]]";

    public static void WriteLinRelu(string path)
    {
        var weight = new float[6, 10];
        for (var i = 0; i < 6; i++)
        {
            for (var j = 0; j < 10; j++)
            {
                weight[i, j] = (i + 1) * 0.1f * (j % 2 == 0 ? 1 : -1);
            }
        }

        TorchScriptWriter.LinearRelu(path, weight, LinReluBias);
    }
}
