using Serve.Actors.Protocol;

namespace Serve.Actors.Tensors;

/// <summary>
/// Binds a request's tensors to a model's declared inputs by name, never by position: the result is in
/// the model's order whatever order the client sent. Every declared input must be given exactly once and
/// nothing else; the message of a refusal lists the names the model has.
/// </summary>
public static class InputBinding
{
    /// <summary>The tensors in <paramref name="declared"/>'s order; throws <see cref="TensorFormatException"/> when they do not match.</summary>
    public static NamedTensor[] Bind(IReadOnlyList<TensorSpec> declared, IReadOnlyList<NamedTensor> given)
    {
        var byName = new Dictionary<string, NamedTensor>(given.Count, StringComparer.Ordinal);
        foreach (var tensor in given)
        {
            if (!byName.TryAdd(tensor.Name, tensor))
            {
                throw new TensorFormatException($"input '{tensor.Name}' appears more than once; {Expected(declared)}");
            }
        }

        foreach (var tensor in given)
        {
            if (!declared.Any(d => d.Name == tensor.Name))
            {
                throw new TensorFormatException($"the model has no input '{tensor.Name}'; {Expected(declared)}");
            }
        }

        var bound = new NamedTensor[declared.Count];
        for (var i = 0; i < bound.Length; i++)
        {
            bound[i] = byName.TryGetValue(declared[i].Name, out var tensor)
                ? tensor
                : throw new TensorFormatException($"input '{declared[i].Name}' is missing; {Expected(declared)}");
        }

        return bound;
    }

    private static string Expected(IReadOnlyList<TensorSpec> declared) => declared.Count == 1
        ? $"the model's input is '{declared[0].Name}'"
        : $"the model's inputs are {string.Join(", ", declared.Select(d => $"'{d.Name}'"))}";
}
