using System.Globalization;
using System.Net;
using System.Text;

namespace Diffusion.Evaluation.Charts;

/// <summary>One line of a chart.</summary>
public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

/// <summary>
/// A small, dependency-free SVG line chart: axes with ticks, optional log scales, a legend, one colour per series.
/// </summary>
public sealed record SvgLineChart
{
    /// <summary>Title above the plot.</summary>
    public string Title { get; init; } = "";
    /// <summary>Label of the x axis.</summary>
    public string XLabel { get; init; } = "";
    /// <summary>Label of the y axis.</summary>
    public string YLabel { get; init; } = "";
    /// <summary>Logarithmic x axis.</summary>
    public bool LogX { get; init; }
    /// <summary>Logarithmic y axis.</summary>
    public bool LogY { get; init; }
    /// <summary>Width in pixels.</summary>
    public int Width { get; init; } = 720;
    /// <summary>Height in pixels.</summary>
    public int Height { get; init; } = 440;

    private static readonly string[] Palette =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a"];

    /// <summary>The SVG document for <paramref name="series"/>.</summary>
    public string Render(IReadOnlyList<Series> series)
    {
        var points = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)
            && (!LogX || p.X > 0) && (!LogY || p.Y > 0)).ToList();
        if (points.Count == 0) throw new ArgumentException("Nothing to plot.");
        double Tx(double x) => LogX ? Math.Log10(x) : x;
        double Ty(double y) => LogY ? Math.Log10(y) : y;
        var (x0, x1) = Range(points.Select(p => Tx(p.X)));
        var (y0, y1) = Range(points.Select(p => Ty(p.Y)));
        const int left = 70, right = 180, top = 40, bottom = 55;
        double plotW = Width - left - right, plotH = Height - top - bottom;
        string Sx(double x) => F(left + (Tx(x) - x0) / (x1 - x0) * plotW);
        string Sy(double y) => F(top + plotH - (Ty(y) - y0) / (y1 - y0) * plotH);

        var svg = new StringBuilder();
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" " +
            $"height=\"{Height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append($"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n");
        svg.Append($"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{E(Title)}</text>\n");
        svg.Append($"<rect x=\"{left}\" y=\"{top}\" width=\"{F(plotW)}\" " +
            $"height=\"{F(plotH)}\" fill=\"none\" stroke=\"#333\"/>\n");
        foreach (var (value, label) in Ticks(x0, x1, LogX))
        {
            string x = F(left + (value - x0) / (x1 - x0) * plotW);
            svg.Append($"<line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{F(top + plotH)}\" stroke=\"#ddd\"/><text " +
                $"x=\"{x}\" y=\"{F(top + plotH + 16)}\" text-anchor=\"middle\">{E(label)}</text>\n");
        }
        foreach (var (value, label) in Ticks(y0, y1, LogY))
        {
            string y = F(top + plotH - (value - y0) / (y1 - y0) * plotH);
            svg.Append($"<line x1=\"{left}\" y1=\"{y}\" x2=\"{F(left + plotW)}\" y2=\"{y}\" stroke=\"#ddd\"/><text " +
                $"x=\"{left - 6}\" y=\"{y}\" text-anchor=\"end\" dominant-baseline=\"middle\">{E(label)}</text>\n");
        }
        svg.Append($"<text x=\"{F(left + plotW / 2)}\" " +
            $"y=\"{Height - 14}\" text-anchor=\"middle\">{E(XLabel)}</text>\n");
        svg.Append($"<text transform=\"translate(16,{F(top + plotH / 2)}) " +
            $"rotate(-90)\" text-anchor=\"middle\">{E(YLabel)}</text>\n");
        for (int i = 0; i < series.Count; i++)
        {
            var color = Palette[i % Palette.Length];
            // the next cycle of colours is dashed
            var dash = i / Palette.Length % 2 == 1 ? " stroke-dasharray=\"7 4\"" : "";
            var visible = series[i].Points.Where(p => points.Contains(p)).OrderBy(p => p.X).ToList();
            if (visible.Count > 1)
                svg.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} " +
                    $"points=\"{string.Join(" ", visible.Select(p => $"{Sx(p.X)},{Sy(p.Y)}"))}\"/>\n");
            if (visible.Count <= 40)
                foreach (var p in visible)
                    svg.Append($"<circle cx=\"{Sx(p.X)}\" cy=\"{Sy(p.Y)}\" r=\"3\" fill=\"{color}\"/>\n");
            int ly = top + 10 + 18 * i;
            svg.Append($"<line x1=\"{F(left + plotW + 12)}\" y1=\"{ly}\" x2=\"{F(left + plotW + 32)}\" y2=\"{ly}\" " +
                $"stroke=\"{color}\" stroke-width=\"3\"{dash}/><text x=\"{F(left + plotW + 38)}\" y=\"{ly}\" " +
                    $"dominant-baseline=\"middle\">{E(series[i].Name)}</text>\n");
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static (double, double) Range(IEnumerable<double> values)
    {
        double lo = values.Min(), hi = values.Max();
        if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
        double pad = (hi - lo) * 0.04;
        return (lo - pad, hi + pad);
    }

    private static IEnumerable<(double Value, string Label)> Ticks(double lo, double hi, bool log)
    {
        if (log)
        {
            for (int e = (int)Math.Ceiling(lo); e <= Math.Floor(hi); e++) yield return (e, Label(Math.Pow(10, e)));
            yield break;
        }
        double step = NiceStep((hi - lo) / 6);
        for (double v = Math.Ceiling(lo / step) * step; v <= hi; v += step)
            yield return (v, Label(Math.Abs(v) < step * 1e-9 ? 0 : v));
    }

    private static double NiceStep(double raw)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double n = raw / magnitude;
        return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * magnitude;
    }

    private static string Label(double v) =>
        v.ToString(Math.Abs(v) >= 1e4 || (Math.Abs(v) < 1e-3 && v != 0) ? "0.#e0" : "0.###",
            CultureInfo.InvariantCulture);
    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    private static string E(string s) => WebUtility.HtmlEncode(s);
}
