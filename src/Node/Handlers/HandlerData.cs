using System.Text;
using Serve.Actors.Protocol;
using Serve.Actors.Tensors;
using Serve.Node.Torch;

namespace Serve.Node.Handlers;

/// <summary>What the built-in handlers share: reading images and BYTES inputs, building tensors, writing JSON.</summary>
public static class HandlerData
{
    /// <summary>
    /// Decodes an image with <paramref name="decode"/>; when the bytes are not an image but base64 text of one,
    /// decodes that instead (TorchServe's vision handlers accept both).
    /// </summary>
    public static T Image<T>(byte[] encoded, Func<byte[], T> decode)
    {
        try
        {
            return decode(encoded);
        }
        catch (ModelInputException) when (TryBase64(encoded) is { } decoded)
        {
            return decode(decoded);
        }
    }

    /// <summary>The elements of an Open Inference Protocol BYTES input, checked: 1 to <paramref name="max"/> of them.</summary>
    public static List<byte[]> BytesElements(NamedTensor tensor, int max, string what)
    {
        if (TensorShapes.Validate(tensor, long.MaxValue) is { } problem)
        {
            throw new ModelInputException(problem);
        }

        if (tensor.ElementCount < 1 || tensor.ElementCount > max)
        {
            throw new ModelInputException($"the BYTES input holds {tensor.ElementCount} {what}; one request may carry 1 to {max}");
        }

        return TensorShapes.ReadBytesElements(tensor);
    }

    public static NamedTensor Floats(string name, long[] shape, float[] values)
    {
        var bytes = new byte[values.LongLength * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return new NamedTensor(name, TensorDataType.FP32, shape, bytes);
    }

    public static NamedTensor Longs(string name, long[] shape, long[] values)
    {
        var bytes = new byte[values.LongLength * sizeof(long)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return new NamedTensor(name, TensorDataType.INT64, shape, bytes);
    }

    /// <summary>One JSON document per request row: the whole document for a TorchServe request, one BYTES element each over the Open Inference Protocol.</summary>
    public static InferenceOutput Documents(PreparedRequest request, IReadOnlyList<byte[]> documents) =>
        request.Style == ResponseStyle.Document
            ? new DocumentOutput("application/json", documents[0])
            : new TensorOutput([new NamedTensor("output__0", TensorDataType.BYTES, [documents.Count], TensorShapes.WriteBytesElements(documents))]);

    /// <summary>A class index's name from index_to_name.json, else the index itself (as TorchServe's map_class_to_label).</summary>
    public static string Label(IReadOnlyDictionary<int, string>? labels, long index) =>
        labels is not null && index is >= int.MinValue and <= int.MaxValue && labels.TryGetValue((int)index, out var name)
            ? name
            : index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static byte[]? TryBase64(byte[] text)
    {
        if (text.Length > 16 * 1024 * 1024)
        {
            return null;
        }

        var buffer = new byte[text.Length];
        return Convert.TryFromBase64String(Encoding.ASCII.GetString(text).Trim(), buffer, out var written) ? buffer[..written] : null;
    }
}
