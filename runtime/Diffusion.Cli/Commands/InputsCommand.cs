using System.CommandLine;
using Diffusion.Cli.Output;
using Diffusion.Runtime;
using Diffusion.Runtime.Imaging;
using Diffusion.Runtime.Noise;

namespace Diffusion.Cli.Commands;

/// <summary>
/// Inputs for the other commands, of the model's size: <c>noise</c> writes x_T as .npy (for --init-noise), <c>mask</c>
/// writes an inpainting mask PNG (diffusers' convention: white = repaint, black = keep).
/// </summary>
public static class InputsCommand
{
    /// <summary>
    /// <c>noise --count N --seed S --out xT.npy</c>: the keyed Gaussian x_T that sample draws for seed S.
    /// </summary>
    public static Command Noise(CliConsole console)
    {
        var model = new ModelArguments();
        var count = new Option<int>("--count", "-n") { DefaultValueFactory = _ => 1, Description = "Images." };
        var seed = new Option<ulong>("--seed")
        {
            DefaultValueFactory = _ => 0, Description = "The seed whose x_T to write (image i of it).",
        };
        var output = new Option<string>("--out", "-o")
        {
            Required = true, Description = "The .npy to write: float32 [N,C,H,W].",
        };
        var command = new Command("noise",
            "Write the x_T that sample draws for a seed, as .npy (edit it, then pass it to --init-noise).")
            {
                count, seed, output,
            };
        model.AddTo(command);
        command.SetAction((p, _) => console.Guard(() =>
        {
            int n = p.GetValue(count);
            if (n is < 1 or > 100_000)
                throw new DiffusionArgumentException("--count", $"must lie in 1…100000, got {n}.");
            var path = p.GetValue(output)!;
            if (!path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
                throw new DiffusionArgumentException("--out", $"'{path}': expected a .npy file.");
            var m = model.Shapes(p).Noise; // a text-to-image folder's x_T: latents
            if ((long)n * m.Size > Array.MaxLength)
                throw new DiffusionArgumentException("--count", $"{n}: too many values for one file.");
            var x = new float[n * m.Size];
            new NoiseGenerator(p.GetValue(seed)).Fill(x, 0, m.Size, 0);
            OutputFolder.Create(Path.GetDirectoryName(Path.GetFullPath(path))!, "--out");
            Npy.Save(path, x, n, m.Channels, m.Height, m.Width);
            console.Out.WriteLine($"wrote {path}: x_T of " +
                $"seed {p.GetValue(seed)}, {n}×{m.Channels}×{m.Height}×{m.Width}");
            return Task.FromResult(0);
        }));
        return command;
    }

    /// <summary><c>mask --repaint top|bottom|left|right|x,y,w,h --out mask.png</c>.</summary>
    public static Command Mask(CliConsole console)
    {
        var model = new ModelArguments();
        var repaint = new Option<string>("--repaint")
        {
            Required = true,
            Description = "What to repaint: top, bottom, left or right (half of the image), " +
                    "or a box x,y,w,h in pixels.",
        };
        var output = new Option<string>("--out", "-o")
        {
            Required = true, Description = "The mask PNG to write (white = repaint, black = keep; the model's size).",
        };
        var command = new Command("mask",
            "Write an inpainting mask of the model's size: white where inpaint repaints, black " +
                "where it keeps the image.") { repaint, output };
        model.AddTo(command);
        command.SetAction((p, _) => console.Guard(() =>
        {
            var path = p.GetValue(output)!;
            if (!path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                throw new DiffusionArgumentException("--out", $"'{path}': expected a .png file.");
            var m = model.Shapes(p).Images;
            int w = m.Width, h = m.Height;
            var spec = p.GetValue(repaint)!.Trim().ToLowerInvariant();
            (int X, int Y, int W, int H) box = spec switch
            {
                "top" => (0, 0, w, h / 2),
                "bottom" => (0, h / 2, w, h - h / 2),
                "left" => (0, 0, w / 2, h),
                "right" => (w / 2, 0, w - w / 2, h),
                _ => Box(spec, w, h),
            };
            var pixels = new byte[w * h];
            for (int y = box.Y; y < box.Y + box.H; y++)
                for (int x = box.X; x < box.X + box.W; x++) pixels[y * w + x] = 255;
            OutputFolder.Create(Path.GetDirectoryName(Path.GetFullPath(path))!, "--out");
            ImageFile.Save(path, new Image8(w, h, 1, pixels));
            console.Out.WriteLine($"wrote {path}: {w}×{h}, repaint {box.W}×{box.H} at " +
                $"({box.X}, {box.Y}), keep the rest");
            return Task.FromResult(0);
        }));
        return command;
    }

    private static (int, int, int, int) Box(string spec, int width, int height)
    {
        var parts = spec.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 4 || !parts.All(v => int.TryParse(v, out _)))
            throw new DiffusionArgumentException("--repaint",
                $"'{spec}': expected top, bottom, left, right or x,y,w,h.");
        var v = parts.Select(int.Parse).ToArray();
        if (v[0] < 0 || v[1] < 0 || v[2] <= 0 || v[3] <= 0 || v[0] + v[2] > width || v[1] + v[3] > height)
            throw new DiffusionArgumentException("--repaint",
                $"'{spec}': the box must lie inside the {width}×{height} image.");
        return (v[0], v[1], v[2], v[3]);
    }
}
