using System.Xml.Linq;
using Diffusion.Evaluation.Charts;

namespace Diffusion.Runtime.Tests;

public class ChartTests
{
    [Fact]
    public void A_chart_is_valid_svg_with_one_distinguishable_line_per_series()
    {
        var series = Enumerable.Range(0, 14).Select(i =>
            new Series($"s<{i}>", [(5.0, 100.0 + i), (10.0, 50.0 + i), (1000.0, 10.0 + i)])).ToList();
        var svg = XDocument.Parse(new SvgLineChart { Title = "FD & NFE", LogX = true, LogY = true }.Render(series));
        XNamespace ns = "http://www.w3.org/2000/svg";
        var lines = svg.Descendants(ns + "polyline").ToList();
        Assert.Equal(14, lines.Count);
        var styles = lines.Select(l => (l.Attribute("stroke")!.Value, l.Attribute("stroke-dasharray")?.Value)).ToList();
        Assert.Equal(14, styles.Distinct().Count());
        Assert.Null(styles[0].Item2);
        Assert.NotNull(styles[12].Item2);
        Assert.Contains(svg.Descendants(ns + "text"), t => t.Value == "s<13>");
        Assert.Contains(svg.Descendants(ns + "text"), t => t.Value == "FD & NFE");
        // On a log x axis 10 sits log 2 / log 200 ≈ 0.13 of the way from 5 to 1000 (a linear axis would put it at
        // 0.005).
        var xs = lines[0].Attribute("points")!.Value.Split(' ').Select(p =>
            double.Parse(p.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(Math.Log(10 / 5.0) / Math.Log(1000 / 5.0), (xs[1] - xs[0]) / (xs[2] - xs[0]), 2);
    }
}
