using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Torch;
using static TorchSharp.torch;

namespace Serve.Node.Handlers;

/// <summary>
/// The <c>image_segmenter</c> handler, as TorchServe's: the classifier's preprocessing (resize 256, centre crop
/// 224, ImageNet normalisation), a model that outputs logits [N, classes, H, W], softmax over the classes and,
/// per pixel, <c>[class index, probability]</c> of the most likely class: a JSON array of shape [H][W][2] per
/// image (the class index is a number like 3.0, as TorchServe's float tensor gives). torchvision's
/// segmentation models return a dictionary, which TorchSharp cannot read: export them wrapped to return
/// <c>output["out"]</c> (a tuple or list whose first element is the logits also works). Over the Open Inference
/// Protocol: a BYTES input of images (or FP32 [N,3,224,224]) in, FP32 [N,H,W,2] out.
/// </summary>
public sealed class ImageSegmenterHandler(string platform, long maxImagePixels) : IModelHandler
{
    public ModelSignature Signature { get; } = new(platform,
        [new TensorSpec("data", TensorDataType.BYTES, [-1])],
        [new TensorSpec("output__0", TensorDataType.FP32, [-1, -1, -1, 2])]);

    public PreparedRequest Prepare(InferenceInput input) =>
        ImageClassifierHandler.PrepareImages(HandlerInputs.Bind(Signature.Inputs, input), maxImagePixels, BuiltInHandlers.ImageSegmenter);

    /// <summary>Decoding an image takes milliseconds: always on the thread pool.</summary>
    public bool PreparesInline(InferenceInput input) => false;

    public bool CombinesRequests => true;

    public Tensor[] Postprocess(Tensor[] outputs)
    {
        var logits = outputs[0];
        if (logits.dim() != 4)
        {
            throw new ModelOutputException(
                $"an image segmenter must output [batch, classes, height, width], this one gave [{string.Join(",", logits.shape)}]");
        }

        var probabilities = nn.functional.softmax(logits.to_type(ScalarType.Float32), 1);
        var (values, indices) = probabilities.max(1);
        return [stack([indices.to_type(ScalarType.Float32), values], 3)];
    }

    public InferenceOutput Render(PreparedRequest request, NamedTensor[] outputs)
    {
        var pixels = outputs[0];
        if (request.Style != ResponseStyle.Document)
        {
            return new TensorOutput([pixels with { Name = "output__0" }]);
        }

        // One image: its [H][W][2] array, without the batch dimension.
        var image = pixels with { Shape = pixels.Shape[1..] };
        return new DocumentOutput("application/json", JsonBytes.Write(writer => TensorJson.WriteData(writer, image, nested: true)));
    }
}
