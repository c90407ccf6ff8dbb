using Serve.Actors.Models;

namespace Serve.Node.Tests;

/// <summary>
/// Model files are loaded in a child process first: a file that aborts libtorch is refused with the
/// reason, and this (test) process, standing in for the worker, lives on.
/// </summary>
public sealed class ModelPreflightTests(TorchFixture torch) : IClassFixture<TorchFixture>
{
    [Fact]
    public async Task A_file_that_aborts_libtorch_is_refused_and_the_node_lives()
    {
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("aborts", "aborts.pt")));
        Assert.StartsWith("aborts.pt is refused: libtorch aborted (SIGABRT) while a preflight process loaded it", error.Message, StringComparison.Ordinal);
        Assert.Contains("undefined_value", error.Message, StringComparison.Ordinal);

        // The outcome is kept for that file: the next replica is refused at once, with the same reason.
        var again = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("aborts", "aborts.pt")));
        Assert.Equal(error.Message, again.Message);

        // And this process still serves models.
        await using var model = await torch.LoadAsync(TorchFixture.TorchScript("identity", "identity.pt"));
        Assert.NotNull(model);
    }

    [Fact]
    public async Task A_file_that_is_not_torchscript_is_refused_with_libtorchs_reason()
    {
        var error = await Assert.ThrowsAsync<ModelLoadException>(() => torch.LoadAsync(TorchFixture.TorchScript("garbage", "garbage.pt")));
        Assert.Contains("is not a TorchScript file that libtorch can load", error.Message, StringComparison.Ordinal);
    }
}
