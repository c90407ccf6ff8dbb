using Serve.Node.Torch;

namespace Serve.Node.Tests;

public sealed class LibTorchErrorsTests
{
    [Fact]
    public void A_torchscript_traceback_comes_down_to_its_error_line() =>
        Assert.Equal("mat1 and mat2 shapes cannot be multiplied (1x3 and 10x6)", LibTorchErrors.Summarize("""
            The following operation failed in the TorchScript interpreter.
            Traceback of TorchScript (most recent call last):
              File "code/__torch__.py", line 11, in forward
                return torch.relu(torch.linear(input, weight, bias))
                                  ~~~~~~~~~~~~ <--- HERE
            RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x3 and 10x6)

            """));

    [Fact]
    public void Cpp_stack_frames_are_dropped() =>
        Assert.Equal("PytorchStreamReader failed reading zip archive: failed finding central directory", LibTorchErrors.Summarize("""
            PytorchStreamReader failed reading zip archive: failed finding central directory
            Exception raised from valid at /pytorch/caffe2/serialize/inline_container.cc:242 (most recent call first):
            frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0xb0 (0x7fe7b8b871a0 in libc10.so)
            """));
}
