using System.Globalization;
using SkiaSharp;

namespace Serve.Bench;

/// <summary>One line of a panel: (x, y) points in order of x.</summary>
public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>One chart: a title, the y axis's unit, its lines (the y axis starts at 0).</summary>
public sealed record Panel(string Title, string Unit, IReadOnlyList<Series> Lines);

/// <summary>Line charts stacked in one PNG, drawn with SkiaSharp (already a dependency of the worker).</summary>
public static class LinePlot
{
    private static readonly SKColor[] Colours =
        [new(0x1f, 0x77, 0xb4), new(0xd6, 0x27, 0x28), new(0x2c, 0xa0, 0x2c), new(0xff, 0x7f, 0x0e), new(0x94, 0x67, 0xbd), new(0x8c, 0x56, 0x4b)];

    public static void Write(string path, string title, string xUnit, IReadOnlyList<Panel> panels)
    {
        const int Width = 1100, PanelHeight = 300, Top = 50, Left = 80, Right = 230, Gap = 60;
        var height = Top + panels.Count * (PanelHeight + Gap);
        using var surface = SKSurface.Create(new SKImageInfo(Width, height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var typeface = File.Exists("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
            ? SKTypeface.FromFile("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") : SKTypeface.Default;
        using var titleFont = new SKFont(typeface, 18);
        using var font = new SKFont(typeface, 13);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var grid = new SKPaint { Color = new SKColor(0xdd, 0xdd, 0xdd), StrokeWidth = 1 };
        canvas.DrawText(title, Left, 30, titleFont, ink);

        var xMax = panels.SelectMany(p => p.Lines).SelectMany(l => l.Points).Select(p => p.X).DefaultIfEmpty(1).Max();
        for (var i = 0; i < panels.Count; i++)
        {
            var panel = panels[i];
            var top = Top + i * (PanelHeight + Gap) + 20;
            var bottom = top + PanelHeight - 40;
            var right = Width - Right;
            var yMax = panel.Lines.SelectMany(l => l.Points).Select(p => p.Y).Where(double.IsFinite).DefaultIfEmpty(1).Max() * 1.1;
            yMax = yMax <= 0 ? 1 : yMax;
            canvas.DrawText($"{panel.Title} ({panel.Unit})", Left, top - 6, font, ink);
            for (var t = 0; t <= 4; t++)
            {
                var y = bottom - (bottom - top) * t / 4f;
                canvas.DrawLine(Left, y, right, y, grid);
                canvas.DrawText(Label(yMax * t / 4), Left - 8, y + 4, SKTextAlign.Right, font, ink);
                var x = Left + (right - Left) * t / 4f;
                canvas.DrawText(Label(xMax * t / 4), x, bottom + 16, SKTextAlign.Center, font, ink);
            }

            canvas.DrawText(xUnit, right, bottom + 32, SKTextAlign.Right, font, ink);
            for (var l = 0; l < panel.Lines.Count; l++)
            {
                var line = panel.Lines[l];
                using var pen = new SKPaint { Color = Colours[l % Colours.Length], StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
                using var shape = new SKPath();
                var first = true;
                foreach (var (x, y) in line.Points.Where(p => double.IsFinite(p.Y)))
                {
                    var point = new SKPoint(Left + (float)(x / xMax) * (right - Left), bottom - (float)(y / yMax) * (bottom - top));
                    if (first)
                    {
                        shape.MoveTo(point);
                        first = false;
                    }
                    else
                    {
                        shape.LineTo(point);
                    }
                }

                canvas.DrawPath(shape, pen);
                using var swatch = new SKPaint { Color = pen.Color, IsAntialias = true };
                var legendY = top + 10 + l * 20;
                canvas.DrawRect(right + 15, legendY - 9, 14, 10, swatch);
                canvas.DrawText(line.Name, right + 35, legendY, font, ink);
            }
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }

    private static string Label(double value) =>
        value >= 100 ? value.ToString("0", CultureInfo.InvariantCulture) : value.ToString("0.#", CultureInfo.InvariantCulture);
}
