namespace Serve.Actors.Protocol;

/// <summary>The built-in handlers. No handler code is ever taken from a model file or archive.</summary>
public static class BuiltInHandlers
{
    public const string Tensor = "tensor";
    public const string ImageClassifier = "image_classifier";

    public static IReadOnlyList<string> All { get; } = [Tensor, ImageClassifier];

    /// <summary>TorchServe's built-in handlers that Serve does not have yet.</summary>
    private static readonly string[] NotYet = ["text_classifier", "object_detector", "image_segmenter"];

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

        return NotYet.Contains(name)
            ? $"handler '{name}' (TorchServe's) is not available in Serve yet; {supported}"
            : $"handler '{name}' is not a built-in handler; {supported}";
    }
}
