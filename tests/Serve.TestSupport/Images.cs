using System.Buffers.Binary;
using SkiaSharp;

namespace Serve.TestSupport;

/// <summary>Images made on the spot with SkiaSharp, so the tests need no image files.</summary>
public static class Images
{
    public static byte[] Encode(int width, int height, SKEncodedImageFormat format, SKColor? color = null)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(color ?? new SKColor(30, 120, 200));
            using var paint = new SKPaint { Color = SKColors.OrangeRed };
            canvas.DrawCircle(width / 2f, height / 2f, Math.Min(width, height) / 3f, paint);
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }

    public static byte[] Jpeg(int width = 320, int height = 240) => Encode(width, height, SKEncodedImageFormat.Jpeg);

    public static byte[] Png(int width = 300, int height = 300) => Encode(width, height, SKEncodedImageFormat.Png);

    /// <summary>A valid PNG whose header claims <paramref name="width"/> x <paramref name="height"/> (a decompression bomb's shape).</summary>
    public static byte[] PngClaiming(int width, int height)
    {
        var png = Png(8, 8);
        // Signature (8) + IHDR length (4) + "IHDR" (4): width and height follow, then the chunk's CRC.
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), height);
        var crc = Crc32(png.AsSpan(12, 4 + 13));
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), crc);
        return png;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }
}
