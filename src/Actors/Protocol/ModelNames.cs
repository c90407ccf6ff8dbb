using System.Text.RegularExpressions;

namespace Serve.Actors.Protocol;

/// <summary>The rule for model names and versions (TorchServe's archiver rule), kept in one place.</summary>
public static partial class ModelNames
{
    public const string Rule = "letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters";

    public static bool IsValid(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 128 && Pattern().IsMatch(name);

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.-]*\z", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
