using System.Buffers;
using System.Text.Json;

namespace Serve.Actors.Tensors;

/// <summary>JSON documents written straight to UTF-8 bytes, for answers the gateway and the handlers build.</summary>
public static class JsonBytes
{
    /// <summary>The document <paramref name="write"/> writes, as UTF-8 bytes.</summary>
    public static byte[] Write(Action<Utf8JsonWriter> write, bool indented = false)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented }))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
