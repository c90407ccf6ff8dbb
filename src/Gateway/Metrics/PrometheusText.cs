using System.Globalization;
using System.Text;

namespace Serve.Gateway.Metrics;

/// <summary>The kinds of metric family Serve exports (Prometheus' names for them, lower-cased, on the TYPE line).</summary>
public enum MetricType
{
    Counter,
    Gauge,
    Histogram,
}

/// <summary>
/// One sample of a family at scrape time: its name (the family's, or the family's with <c>_bucket</c>,
/// <c>_sum</c> or <c>_count</c> for a histogram), its labels in the order written, and its value.
/// </summary>
public sealed record MetricSample(string Name, IReadOnlyList<KeyValuePair<string, string>> Labels, double Value);

/// <summary>A metric family as it is at scrape time. Samples are written in the order given (a histogram's buckets must stay ascending).</summary>
public sealed record MetricFamily(string Name, MetricType Type, string Help, IReadOnlyList<MetricSample> Samples);

/// <summary>
/// Prometheus' text exposition format 0.0.4, written by hand: Serve needs a few families and no client
/// library. Families are sorted by name so two scrapes of the same figures are the same text; label values
/// and help texts are escaped as the format says, so a model or tenant name cannot break a line.
/// </summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Write(IEnumerable<MetricFamily> families)
    {
        var text = new StringBuilder();
        foreach (var family in families.OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            text.Append("# HELP ").Append(family.Name).Append(' ').Append(EscapeHelp(family.Help)).Append('\n');
            text.Append("# TYPE ").Append(family.Name).Append(' ').Append(TypeName(family.Type)).Append('\n');
            foreach (var sample in family.Samples)
            {
                text.Append(sample.Name);
                if (sample.Labels.Count > 0)
                {
                    text.Append('{');
                    for (var i = 0; i < sample.Labels.Count; i++)
                    {
                        text.Append(i == 0 ? string.Empty : ",").Append(sample.Labels[i].Key)
                            .Append("=\"").Append(EscapeLabelValue(sample.Labels[i].Value)).Append('"');
                    }

                    text.Append('}');
                }

                text.Append(' ').Append(FormatValue(sample.Value)).Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>A label value: backslash, double quote and line feed escaped.</summary>
    public static string EscapeLabelValue(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>A HELP text: backslash and line feed escaped (quotes stay as they are there).</summary>
    public static string EscapeHelp(string help) =>
        help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>
    /// A value as TorchServe's Prometheus client (Java) writes it, which Prometheus' parser reads too:
    /// <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>, else Java's <c>Double.toString</c>: the shortest digits that
    /// round-trip, with a fraction always (<c>7.0</c>, <c>0.25</c>), and <c>1.0E7</c> / <c>1.5E-4</c> outside
    /// [0.001, 10^7). Dashboards and tests written against TorchServe match on that shape.
    /// </summary>
    public static string FormatValue(double value)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "+Inf" : "-Inf";
        }

        if (value == 0)
        {
            return double.IsNegative(value) ? "-0.0" : "0.0";
        }

        var sign = value < 0 ? "-" : string.Empty;
        var (digits, exponent) = ShortestDigits(Math.Abs(value));
        if (exponent is >= -3 and < 7)
        {
            // Plain notation: digits around the decimal point, padded with zeros, at least one after it.
            var integerLength = exponent + 1;
            var integer = integerLength <= 0 ? "0" : digits.PadRight(integerLength, '0')[..integerLength];
            var fraction = integerLength <= 0 ? new string('0', -integerLength) + digits : digits.Length > integerLength ? digits[integerLength..] : "0";
            return $"{sign}{integer}.{fraction}";
        }

        return $"{sign}{digits[0]}.{(digits.Length > 1 ? digits[1..] : "0")}E{exponent.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>The shortest round-trip significant digits of a positive value, and the decimal exponent of the first.</summary>
    private static (string Digits, int Exponent) ShortestDigits(double value)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        var exponent = 0;
        var e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }

        var point = text.IndexOf('.', StringComparison.Ordinal);
        var integerLength = point < 0 ? text.Length : point;
        var all = point < 0 ? text : text.Remove(point, 1);
        var leadingZeros = all.Length - all.TrimStart('0').Length;
        return (all.Trim('0'), integerLength + exponent - leadingZeros - 1);
    }

    private static string TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter",
        MetricType.Gauge => "gauge",
        MetricType.Histogram => "histogram",
        _ => "untyped",
    };
}
