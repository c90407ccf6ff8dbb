namespace Serve.Actors.Protocol;

/// <summary>The built-in handlers. No handler code is ever taken from a model file or archive.</summary>
public static class BuiltInHandlers
{
    public const string Tensor = "tensor";
    public const string ImageClassifier = "image_classifier";
    public const string TextClassifier = "text_classifier";
    public const string ObjectDetector = "object_detector";
    public const string ImageSegmenter = "image_segmenter";

    public static IReadOnlyList<string> All { get; } = [Tensor, ImageClassifier, TextClassifier, ObjectDetector, ImageSegmenter];

    public static bool IsKnown(string? name) => name is not null && All.Contains(name);

    /// <summary>Why <paramref name="name"/> cannot handle requests (null when it can), for the person who asked for it.</summary>
    public static string? Problem(string name)
    {
        var supported = $"supported built-in handlers: {string.Join(", ", All)}";
        if (IsKnown(name))
        {
            return null;
        }

        if (name.EndsWith(".py", StringComparison.OrdinalIgnoreCase) || name.Contains(':', StringComparison.Ordinal)
            || name.Contains('/', StringComparison.Ordinal))
        {
            return $"handler '{name}' is Python code; Serve never runs code from a model archive or a request; {supported}";
        }

        return $"handler '{name}' is not a built-in handler; {supported}";
    }
}
