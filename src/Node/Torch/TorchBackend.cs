using Microsoft.Extensions.Logging;
using Serve.Actors.Models;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Handlers;
using Serve.Node.Hosting;

namespace Serve.Node.Torch;

/// <summary>The worker's <see cref="IInferenceBackend"/>: TorchSharp on this node's devices.</summary>
public sealed partial class TorchBackend(
    DeviceManager devices, ModelPaths paths, ModelPreflight preflight, NodeOptions options, ILogger<TorchBackend> logger)
    : IInferenceBackend
{
    // One backend per node: every replica here decodes through the same slots.
    private readonly DecodeSlots _decodes = DecodeSlots.PerProcessor();

    public async Task<ILoadedModel> LoadAsync(ReplicaId replica, ModelDefinition definition, string? device, CancellationToken cancellationToken)
    {
        var modelPath = definition.Source switch
        {
            TorchScriptSource script => paths.Resolve(script.Path),
            BuiltInSource { WeightsPath: { } weights } => paths.Resolve(weights),
            _ => string.Empty,
        };
        var labels = definition.LabelsPath is { } labelsPath ? ReadLabels(paths.Resolve(labelsPath)) : null;
        var vocabulary = definition.Handler == BuiltInHandlers.TextClassifier ? ReadVocabulary(definition) : null;
        if (definition.Source is TorchScriptSource)
        {
            await preflight.CheckAsync(modelPath, definition.Handler, cancellationToken);
        }

        var lease = devices.Claim(replica, device, definition.DeviceMemoryMb);
        TorchModule? module = null;
        try
        {
            var torchDevice = lease.Device.ToTorch();
            module = await lease.Executor.RunAsync(() => Wrap(modelPath, () => ModelLoader.Load(definition.Source, modelPath, torchDevice)), cancellationToken);
            IModelHandler handler = definition.Handler switch
            {
                BuiltInHandlers.Tensor => new TensorHandler(module, TensorLimits.Default),
                BuiltInHandlers.ImageClassifier => new ImageClassifierHandler(module.Signature.Platform, labels,
                    options.ImagePixelsFor(ImageClassifierHandler.DefaultMaxImagePixels)),
                BuiltInHandlers.TextClassifier => new TextClassifierHandler(
                    module.Signature.Platform, module.Signature.Inputs.Length, vocabulary!, labels, options.TextMaxLength),
                BuiltInHandlers.ObjectDetector => new ObjectDetectorHandler(module.Signature.Platform, labels,
                    options.ImagePixelsFor(ObjectDetectorHandler.DefaultMaxImagePixels), options.DetectionThreshold),
                BuiltInHandlers.ImageSegmenter => new ImageSegmenterHandler(module.Signature.Platform,
                    options.ImagePixelsFor(ImageClassifierHandler.DefaultMaxImagePixels)),
                _ => throw new ModelLoadException(
                    $"handler '{definition.Handler}' is not built in; supported: {string.Join(", ", BuiltInHandlers.All)}"),
            };
            await WarmUpAsync(module, lease, torchDevice, cancellationToken);
            LogLoaded(replica.EntityId, lease.Device.Name, module.Signature.Platform);
            return new LoadedTorchModel(module, handler, lease, definition.BatchSize > 1 && handler.CombinesRequests, _decodes);
        }
        catch
        {
            // Free what was loaded (on its device thread) and give the device back.
            if (module is not null)
            {
                var loaded = module;
                await lease.Executor.RunAsync(() =>
                {
                    loaded.Dispose();
                    return true;
                }, CancellationToken.None);
            }

            lease.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One forward pass with zeros when the input shape is known (built-in architectures), so the first
    /// client does not pay for libtorch's first-call allocations. Failure here is a load failure.
    /// </summary>
    private static Task WarmUpAsync(TorchModule module, DeviceLease lease, TorchSharp.torch.Device device, CancellationToken cancellationToken)
    {
        if (module.Signature.Platform != ModelPlatforms.TorchSharpBuiltIn || module.Signature.Inputs is not [var input])
        {
            return Task.CompletedTask;
        }

        long[] shape = [.. input.Shape.Select(d => d < 0 ? 1 : d)];
        return lease.Executor.RunScopedAsync(() => Wrap(string.Empty, () =>
        {
            module.Forward([TorchSharp.torch.zeros(shape, device: device)]);
            return module;
        }), cancellationToken);
    }

    private static TorchModule Wrap(string path, Func<TorchModule> load)
    {
        try
        {
            return load();
        }
        catch (Exception error) when (error is not ModelLoadException)
        {
            throw new ModelLoadException($"loading {(path.Length > 0 ? path : "the model")} failed: {LibTorchErrors.Summarize(error.Message)}", error);
        }
    }

    private static Dictionary<int, string> ReadLabels(string path)
    {
        try
        {
            return ImageClassifierHandler.ReadLabels(path);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            throw new ModelLoadException($"could not read labels from {path}: {error.Message}", error);
        }
    }

    private Microsoft.ML.Tokenizers.BertTokenizer ReadVocabulary(ModelDefinition definition) =>
        definition.VocabPath is { } vocabPath
            ? TextClassifierHandler.LoadVocabulary(paths.Resolve(vocabPath))
            : throw new ModelLoadException(
                "text_classifier needs the model's WordPiece vocabulary: put vocab.txt in the model archive (an extra file)", rejected: true);

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded replica {Replica} on {Device} ({Platform})")]
    private partial void LogLoaded(string replica, string device, string platform);
}
