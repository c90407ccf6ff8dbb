using System.Globalization;
using System.Runtime.InteropServices;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Serve.Node.Torch;

/// <summary>
/// Loads TorchScript files and builds the built-in architectures. Runs on the device's executor thread.
/// Every failure becomes a <see cref="ModelLoadException"/> that names the file and the cause.
/// </summary>
public static class ModelLoader
{

    private static readonly Lock SeedGate = new();

    public static IReadOnlyList<string> Architectures { get; } = ["resnet18", "mlp"];

    public static TorchModule Load(ModelSource source, string resolvedPath, Device device) => source switch
    {
        TorchScriptSource => LoadTorchScript(resolvedPath, device),
        BuiltInSource builtIn => BuildBuiltIn(builtIn, string.IsNullOrEmpty(resolvedPath) ? null : resolvedPath, device),
        _ => throw new ModelLoadException($"unknown model source {source.GetType().Name}"),
    };

    private static TorchModule LoadTorchScript(string path, Device device)
    {
        RequireFile(path);
        if (TorchScriptCode.FileOperatorCall(path) is { } call)
        {
            throw new ModelLoadException(
                $"{path} calls {call}, which reads files of the host; Serve does not load models that read files", rejected: true);
        }

        jit.ScriptModule script;
        try
        {
            script = jit.load(path, device.type, device.index);
        }
        catch (ExternalException error)
        {
            throw new ModelLoadException($"{path} is not a TorchScript file that libtorch can load: {LibTorchErrors.Summarize(error.Message)}",
                error, rejected: true);
        }

        script.eval();
        var inputs = Math.Max(1, script.GetNumberOfInputs());
        var outputs = Math.Max(1, script.GetNumberOfOutputs());
        var names = TorchScriptCode.ForwardArgumentNames(path) is { } declared && declared.Length == inputs
            ? declared
            : [.. Enumerable.Range(0, inputs).Select(i => $"input__{i}")];
        var signature = new ModelSignature(
            ModelPlatforms.TorchScript,
            [.. names.Select(name => new TensorSpec(name, TensorDataType.FP32, [-1]))],
            [.. Enumerable.Range(0, outputs).Select(i => new TensorSpec($"output__{i}", TensorDataType.FP32, [-1]))]);
        return TorchModule.FromScript(script, signature);
    }

    private static TorchModule BuildBuiltIn(BuiltInSource source, string? weightsPath, Device device)
    {
        nn.Module<Tensor, Tensor> module;
        ModelSignature signature;
        // Seeded initialisation uses the process-wide generator: one construction at a time.
        lock (SeedGate)
        {
            manual_seed(source.Seed);
            (module, signature) = source.Architecture switch
            {
                "resnet18" => BuildResNet18(source),
                "mlp" => BuildMlp(source),
                _ => throw new ModelLoadException(
                    $"unknown built-in architecture '{source.Architecture}'; supported: {string.Join(", ", Architectures)}"),
            };
        }

        try
        {
            if (weightsPath is not null)
            {
                LoadWeights(module, weightsPath);
            }

            module.to(device);
            module.eval();
            return TorchModule.FromBuiltIn(module, signature);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static (nn.Module<Tensor, Tensor>, ModelSignature) BuildResNet18(BuiltInSource source)
    {
        var classes = IntParameter(source, "num_classes", 1000);
        var module = torchvision.models.resnet18(num_classes: classes);
        var signature = new ModelSignature(ModelPlatforms.TorchSharpBuiltIn,
            [new TensorSpec("input__0", TensorDataType.FP32, [-1, 3, 224, 224])],
            [new TensorSpec("output__0", TensorDataType.FP32, [-1, classes])]);
        return (module, signature);
    }

    /// <summary>
    /// Linear layers named lin1..linN (PyTorch state-dict names <c>lin1.weight</c>, <c>lin1.bias</c>, ...),
    /// sizes from <c>layers</c> (e.g. <c>10,32,6</c>), ReLU between them unless <c>activation=none</c>.
    /// </summary>
    private static (nn.Module<Tensor, Tensor>, ModelSignature) BuildMlp(BuiltInSource source)
    {
        var layersText = source.Parameter("layers")
                         ?? throw new ModelLoadException("the mlp architecture needs a 'layers' parameter, e.g. layers=10,32,6");
        int[] sizes;
        try
        {
            sizes = [.. layersText.Split(',').Select(s => int.Parse(s.Trim(), NumberStyles.None, CultureInfo.InvariantCulture))];
        }
        catch (FormatException)
        {
            throw new ModelLoadException($"mlp 'layers' must be positive integers separated by commas, not '{layersText}'");
        }

        if (sizes.Length < 2 || sizes.Any(s => s is < 1 or > 1_000_000))
        {
            throw new ModelLoadException($"mlp 'layers' needs at least two sizes between 1 and 1000000, not '{layersText}'");
        }

        var bias = !string.Equals(source.Parameter("bias"), "false", StringComparison.OrdinalIgnoreCase);
        var relu = !string.Equals(source.Parameter("activation"), "none", StringComparison.OrdinalIgnoreCase);
        var module = new Mlp(sizes, bias, relu);
        var signature = new ModelSignature(ModelPlatforms.TorchSharpBuiltIn,
            [new TensorSpec("input__0", TensorDataType.FP32, [-1, sizes[0]])],
            [new TensorSpec("output__0", TensorDataType.FP32, [-1, sizes[^1]])]);
        return (module, signature);
    }

    private static void LoadWeights(nn.Module module, string path)
    {
        RequireFile(path);
        try
        {
            switch (Path.GetExtension(path).ToLowerInvariant())
            {
                case ".safetensors":
                    module.load_safetensors(path);
                    break;
                case ".dat":
                    module.load(path);
                    break;
                default:
                    // .pt / .pth / .bin: a PyTorch torch.save state dict.
                    module.load_py(path);
                    break;
            }
        }
        catch (Exception error) when (error is not ModelLoadException)
        {
            throw new ModelLoadException($"could not load weights from {path}: {LibTorchErrors.Summarize(error.Message)}", error);
        }
    }

    private static int IntParameter(BuiltInSource source, string name, int fallback)
    {
        var text = source.Parameter(name);
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw new ModelLoadException($"parameter {name} must be a positive integer, not '{text}'");
    }

    private static void RequireFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelLoadException($"model file {path} does not exist", rejected: true);
        }
    }

    private sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor>[] _layers;
        private readonly bool _relu;

        public Mlp(int[] sizes, bool bias, bool relu)
            : base("mlp")
        {
            _relu = relu;
            _layers = new nn.Module<Tensor, Tensor>[sizes.Length - 1];
            for (var i = 0; i < _layers.Length; i++)
            {
                _layers[i] = nn.Linear(sizes[i], sizes[i + 1], hasBias: bias);
                register_module($"lin{i + 1}", _layers[i]);
            }
        }

        public override Tensor forward(Tensor input)
        {
            var x = input;
            for (var i = 0; i < _layers.Length; i++)
            {
                x = _layers[i].call(x);
                if (_relu && i < _layers.Length - 1)
                {
                    x = nn.functional.relu(x);
                }
            }

            return x;
        }
    }
}
