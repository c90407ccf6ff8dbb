using SkiaSharp;
using Serve.Node.Torch;

namespace Serve.Node.Handlers;

/// <summary>
/// TorchVision's image preprocessing, in SkiaSharp. <see cref="ToNormalizedChw(byte[], long, Span{float})"/>
/// (classification and segmentation): decode (JPEG or PNG), resize the shorter side to 256, centre-crop
/// 224x224, scale to [0,1] and normalise with ImageNet's mean and standard deviation, as CHW float32.
/// <see cref="ToRgbChw"/> (detection): the image as it is, as CHW bytes (the device scales them to [0,1]:
/// a quarter of the memory of floats while the request waits). The image's size is checked from its
/// header before any pixel is decoded.
/// </summary>
public static class ImagePreprocessor
{
    public const int ResizeTo = 256;
    public const int CropTo = 224;

    private static readonly float[] Mean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] Std = [0.229f, 0.224f, 0.225f];

    /// <summary>Floats of one preprocessed image (3 x 224 x 224).</summary>
    public const int NormalizedLength = 3 * CropTo * CropTo;

    public static float[] ToNormalizedChw(byte[] encoded, long maxPixels)
    {
        var chw = new float[NormalizedLength];
        ToNormalizedChw(encoded, maxPixels, chw);
        return chw;
    }

    /// <summary>Writes the preprocessed image into <paramref name="chw"/> (<see cref="NormalizedLength"/> floats), so a batch of images needs no copy.</summary>
    public static void ToNormalizedChw(byte[] encoded, long maxPixels, Span<float> chw)
    {
        if (chw.Length != NormalizedLength)
        {
            throw new ArgumentException($"needs {NormalizedLength} floats, not {chw.Length}", nameof(chw));
        }

        using var decoded = Decode(encoded, maxPixels, shrinkTo: ResizeTo);
        var decodedSize = new SKSizeI(decoded.Width, decoded.Height);
        var decodeInfo = decoded.Info;

        // Resize-256-then-crop-224 done in one step: only the source square that ends up in the crop is
        // drawn, straight into 224x224, so a very thin image never becomes a huge intermediate bitmap.
        var scale = (double)ResizeTo / Math.Min(decodedSize.Width, decodedSize.Height);
        var resizedWidth = Math.Max(ResizeTo, (int)Math.Round(decodedSize.Width * scale));
        var resizedHeight = Math.Max(ResizeTo, (int)Math.Round(decodedSize.Height * scale));
        var cropLeft = Math.Round((resizedWidth - CropTo) / 2.0);
        var cropTop = Math.Round((resizedHeight - CropTo) / 2.0);
        var source = SKRect.Create((float)(cropLeft / scale), (float)(cropTop / scale), (float)(CropTo / scale), (float)(CropTo / scale));
        // Bilinear; mipmaps (which cost more than the resize itself) only when shrinking 2x or more.
        var sampling = new SKSamplingOptions(SKFilterMode.Linear, scale <= 0.5 ? SKMipmapMode.Linear : SKMipmapMode.None);
        var opaqueInfo = decodeInfo.WithAlphaType(SKAlphaType.Opaque);
        using var image = SKImage.FromPixels(opaqueInfo, decoded.GetPixels(), decoded.RowBytes)
                          ?? throw new ModelInputException("the image could not be read after decoding");
        using var resized = new SKBitmap(new SKImageInfo(CropTo, CropTo, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(resized))
        {
            canvas.DrawImage(image, source, SKRect.Create(CropTo, CropTo), sampling);
        }

        var pixels = resized.GetPixelSpan();
        var rowBytes = resized.RowBytes;
        var plane = CropTo * CropTo;
        for (var y = 0; y < CropTo; y++)
        {
            var row = pixels.Slice(y * rowBytes, CropTo * 4);
            for (var x = 0; x < CropTo; x++)
            {
                var offset = y * CropTo + x;
                for (var c = 0; c < 3; c++)
                {
                    chw[c * plane + offset] = (row[x * 4 + c] / 255f - Mean[c]) / Std[c];
                }
            }
        }
    }

    /// <summary>
    /// The pixels of TorchVision's ToTensor, as TorchServe's object detector takes them: the image at its own
    /// size (no resize, crop or normalisation), RGB, CHW, one byte per channel. Dividing by 255 (ToTensor's
    /// other half) is left to the device, so a waiting request holds 3 bytes a pixel, not 12.
    /// </summary>
    public static (byte[] Chw, int Width, int Height) ToRgbChw(byte[] encoded, long maxPixels)
    {
        using var decoded = Decode(encoded, maxPixels, shrinkTo: null);
        var width = decoded.Width;
        var height = decoded.Height;
        var pixels = decoded.GetPixelSpan();
        var rowBytes = decoded.RowBytes;
        var plane = (long)width * height;
        var chw = new byte[checked(3 * plane)];
        for (var y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * rowBytes, width * 4);
            for (var x = 0; x < width; x++)
            {
                var offset = (long)y * width + x;
                chw[offset] = row[x * 4];
                chw[plane + offset] = row[x * 4 + 1];
                chw[2 * plane + offset] = row[x * 4 + 2];
            }
        }

        return (chw, width, height);
    }

    /// <summary>
    /// Decodes a JPEG or PNG to opaque RGBA, after checking its size against <paramref name="maxPixels"/> from
    /// the header. With <paramref name="shrinkTo"/>, decodes at the smallest size the codec offers (JPEG: 1/8,
    /// 1/4, 1/2) whose shorter side is still at least that: far less to decode, and less than 2x left to shrink.
    /// </summary>
    private static SKBitmap Decode(byte[] encoded, long maxPixels, int? shrinkTo)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data)
                          ?? throw new ModelInputException("the body is not an image this server can decode (JPEG or PNG)");

        var width = codec.Info.Width;
        var height = codec.Info.Height;
        if (width <= 0 || height <= 0)
        {
            throw new ModelInputException("the image has no pixels");
        }

        if ((long)width * height > maxPixels)
        {
            throw new ModelInputException($"the image is {width}x{height}, more than the allowed {maxPixels} pixels");
        }

        var decodedSize = codec.Info.Size;
        if (shrinkTo is { } smallest)
        {
            foreach (var codecScale in (ReadOnlySpan<float>)[0.125f, 0.25f, 0.5f])
            {
                var scaled = codec.GetScaledDimensions(codecScale);
                if (Math.Min(scaled.Width, scaled.Height) >= smallest && scaled.Width < decodedSize.Width)
                {
                    decodedSize = scaled;
                    break;
                }
            }
        }

        // Alpha is dropped as PIL's convert("RGB") drops it: decode straight (unpremultiplied) colours,
        // then call every pixel opaque.
        var opaque = codec.Info.AlphaType == SKAlphaType.Opaque;
        var decodeInfo = new SKImageInfo(decodedSize.Width, decodedSize.Height, SKColorType.Rgba8888,
            opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var decoded = new SKBitmap(decodeInfo);
        try
        {
            var result = codec.GetPixels(decodeInfo, decoded.GetPixels());
            if (result != SKCodecResult.Success)
            {
                throw new ModelInputException($"the image is truncated or corrupt ({result})");
            }

            if (!opaque)
            {
                var rgba = decoded.GetPixelSpan();
                for (var i = 3; i < rgba.Length; i += 4)
                {
                    rgba[i] = 255;
                }
            }

            return decoded;
        }
        catch
        {
            decoded.Dispose();
            throw;
        }
    }
}
