#!/usr/bin/python3
"""PyTorch-eager twin of the trainer's reference UNet, for `./diffusion bench-train --compare` (Debian's torch 1.13).

Same architecture as trainer/Diffusion.Trainer/Nn (UNet.cs, Blocks.cs, Layers.cs): base 32 channels, mults 1,2,2,
2 res blocks, attention at 7×7, GroupNorm(8), class embedding, ε-objective with the linear schedule, AdamW with
gradient clipping and EMA — one training step = sample batch, q_sample, forward, MSE, backward, clip, AdamW, EMA.
Usage: /usr/bin/python3 trainer/bench/pytorch_reference.py [--steps 20] [--warmup 3] [--batch 64] [--threads N]
With --infer it times the network alone instead, as `bench-runtime` does for ONNX Runtime: eval mode, inference mode,
x_t already on the device, one forward per call (synchronised on CUDA), for each of --batches:
       python3 pytorch_reference.py --infer --device cuda --batches 1,16,64,256,1024 [--calls 200]
With --export-onnx OUT --weights OURS.onnx it loads the weights of our exporter's file of the same architecture into
the twin and writes PyTorch's own export of it (torch.onnx.export, opset 17, the model contract's names and our file's
metadata), so that `bench-runtime --model OURS.onnx --versus OUT` times the two exporters' graphs of one network.
Every run first prints which BLAS torch calls (Debian's torch falls back to the reference BLAS, ~40× slower at a
512² matmul, unless libopenblas0-pthread is installed) and the CPU.
"""
import argparse, math, os, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that also takes bfloat16 activations: torch 1.13's CPU autocast leaves group_norm out of its lists,
    so a bf16 input met float32 weights and failed; here it normalises in float32 and returns the input's type."""

    def forward(self, x):
        return super().forward(x) if x.dtype == torch.float32 else super().forward(x.float()).to(x.dtype)


class TimeEmbedding(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(half) / half)[None])
        self.linear_1, self.linear_2 = nn.Linear(dim, out), nn.Linear(out, out)

    def forward(self, t):
        a = t[:, None] * self.freqs
        return self.linear_2(F.silu(self.linear_1(torch.cat([a.sin(), a.cos()], 1))))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups, dropout):
        super().__init__()
        self.norm1, self.conv1 = GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.proj = nn.Linear(emb, cout)
        self.norm2, self.conv2 = GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = dropout
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x))) + self.proj(F.silu(e))[:, :, None, None]
        h = self.conv2(F.dropout(F.silu(self.norm2(h)), self.dropout, self.training))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm, self.qkv, self.out = GroupNorm(groups, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        weights = (q.transpose(1, 2) @ k / math.sqrt(c)).softmax(-1)
        return x + self.out((v @ weights.transpose(1, 2)).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, cin=1, size=28, ch=32, mults=(1, 2, 2), blocks=2, attn=(7,), classes=10, groups=8, dropout=0.1):
        super().__init__()
        emb = 4 * ch
        self.time = TimeEmbedding(ch, emb)
        self.classes = nn.Embedding(classes + 1, emb)
        self.conv_in = nn.Conv2d(cin, ch, 3, padding=1)
        self.down, skips, width, res = nn.ModuleList(), [ch], ch, size
        for level, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(nn.ModuleList([ResBlock(width, ch * m, emb, groups, dropout), Attention(ch * m, groups) if res in attn else nn.Identity()]))
                width = ch * m
                skips.append(width)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(width, width, emb, groups, dropout), Attention(width, groups), ResBlock(width, width, emb, groups, dropout)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(mults))):
            for _ in range(blocks + 1):
                self.up.append(nn.ModuleList([ResBlock(width + skips.pop(), ch * mults[level], emb, groups, dropout),
                                              Attention(ch * mults[level], groups) if res in attn else nn.Identity()]))
                width = ch * mults[level]
            if level > 0:
                self.up.append(nn.Conv2d(width, width, 3, padding=1))
                res *= 2
        self.norm_out, self.conv_out = GroupNorm(groups, width), nn.Conv2d(width, cin, 3, padding=1)

    def forward(self, x, t, y):
        e = self.time(t) + self.classes(y)
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            if isinstance(m, nn.ModuleList):
                h = m[1](m[0](h, e))
            else:
                h = m(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, e)), e)
        for m in self.up:
            if isinstance(m, nn.ModuleList):
                h = m[1](m[0](torch.cat([h, hs.pop()], 1), e))
            else:
                h = m(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def blas():
    """The BLAS torch's matmuls reach (Debian's torch is linked against libblas.so.3, whichever alternative that is)."""
    libraries = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            name = os.path.basename(line.split()[-1]) if "/" in line else ""
            if any(k in name for k in ("blas", "mkl", "dnnl", "lapack")):
                libraries.add(os.path.realpath(line.split()[-1]))
    size = 512
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    gflops = 5 * 2 * size ** 3 / (time.perf_counter() - start) / 1e9
    names = ", ".join(sorted("/".join(l.split("/")[-2:]) for l in libraries)) or "none mapped"
    reference = any("libblas.so" in l and "openblas" not in l and "blis" not in l for l in libraries)
    return f"BLAS {names}: {size}² float32 matmul {gflops:.1f} GFLOP/s" + (
        " — the REFERENCE BLAS: install libopenblas0-pthread for a fair baseline" if reference else "")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


# Our exporter names parameters as TorchSharp's named_parameters (UNet.cs); the twin's modules are laid out as lists.
def our_names(net):
    """Maps each twin parameter name to our file's initializer name (Linear weights: stored transposed, '.weight_t')."""
    names = {"time.linear_1": "time_embedding.linear_1", "time.linear_2": "time_embedding.linear_2",
             "classes": "class_embedding", "conv_in": "conv_in", "norm_out": "norm_out", "conv_out": "conv_out",
             "mid.0": "mid_block_1", "mid.1": "mid_attention", "mid.2": "mid_block_2"}
    for part in ("down", "up"):
        blocks = samples = 0
        for i, m in enumerate(getattr(net, part)):
            if isinstance(m, nn.ModuleList):
                names[f"{part}.{i}.0"] = f"{part}_blocks.{blocks}"
                if isinstance(m[1], Attention):
                    names[f"{part}.{i}.1"] = f"{part}_attentions.{blocks}"
                blocks += 1
            else:
                names[f"{part}.{i}"] = f"{part}samples.{samples}.conv"
                samples += 1
    leaf = {"proj": "time_emb_proj", "out": "proj_out"}
    result = {}
    for name, _ in net.named_parameters():
        module, kind = name.rsplit(".", 1)
        prefix = max((k for k in names if module == k or module.startswith(k + ".")), key=len)
        rest = module[len(prefix) + 1:]
        target = names[prefix] + ("." + leaf.get(rest, rest) if rest else "")
        result[name] = f"{target}.{kind}"
    return result


def export_onnx(a):
    """Our file's weights in the twin, written by torch.onnx.export with our file's metadata."""
    import onnx
    from onnx import numpy_helper
    ours = onnx.load(a.weights)
    stored = {i.name: numpy_helper.to_array(i) for i in ours.graph.initializer}
    net = UNet().eval()
    mapping = our_names(net)
    with torch.no_grad():
        for name, q in net.named_parameters():
            key = mapping[name]
            value = stored.get(key) if key in stored else stored.get(key[:-len("weight")] + "weight_t")
            if value is None:
                raise SystemExit(f"--weights '{a.weights}': no initializer '{key}' for the twin's '{name}' "
                                 "(expected our exporter's file of the reference architecture)")
            value = torch.from_numpy(value.copy())
            if key not in stored:
                value = value.t()
            if value.numel() == q.numel() and value.dim() != q.dim():
                value = value.reshape(q.shape)  # per-channel affine stored as [C, 1, 1]
            if tuple(value.shape) != tuple(q.shape):
                raise SystemExit(f"--weights '{a.weights}': '{key}' is {tuple(value.shape)}, the twin's '{name}' "
                                 f"{tuple(q.shape)}")
            q.copy_(value)
    x, t, y = torch.randn(2, 1, 28, 28), torch.full((2,), 500.0), torch.zeros(2, dtype=torch.long)
    torch.onnx.export(net, (x, t, y), a.export_onnx, opset_version=17,
                      input_names=["sample", "timestep", "class_labels"], output_names=["model_output"],
                      dynamic_axes={n: {0: "batch"} for n in ("sample", "timestep", "class_labels", "model_output")})
    theirs = onnx.load(a.export_onnx)
    for prop in ours.metadata_props:
        theirs.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(theirs, a.export_onnx)
    print(f"wrote {a.export_onnx}: torch.onnx.export (PyTorch {torch.__version__}, opset 17) of the twin with the "
          f"weights of {a.weights}; {len(theirs.graph.node)} nodes (ours: {len(ours.graph.node)})")


def infer(a):
    """ms per forward call of the twin at each batch size: the PyTorch-eager row of the GPU benchmark."""
    device = torch.device(a.device)
    net = UNet().to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"PyTorch {torch.__version__} eager, reference UNet forward, {name}:")
    for batch in [int(b) for b in a.batches.split(",")]:
        x = torch.randn(batch, 1, 28, 28, device=device)
        t = torch.full((batch,), 500.0, device=device)
        y = torch.zeros(batch, dtype=torch.long, device=device)
        with torch.inference_mode():
            for _ in range(a.warmup):
                net(x, t, y)
            sync()
            start = time.perf_counter()
            for _ in range(a.calls):
                x = net(x, t, y)  # the output feeds the next call, as in a sampling loop
            sync()
        ms = (time.perf_counter() - start) / a.calls * 1000
        print(f"  batch {batch}: {ms:.3f} ms per call ({batch / ms * 1000:.0f} images/s per network evaluation)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--profile", action="store_true", help="print mean ms per step of each phase")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: the forward under torch.autocast(bfloat16)")
    p.add_argument("--infer", action="store_true", help="time forward calls of the network instead of training steps")
    p.add_argument("--device", default="cpu", help="with --infer: cpu or cuda[:N]")
    p.add_argument("--batches", default="1,16,64", help="with --infer: comma-separated batch sizes")
    p.add_argument("--calls", type=int, default=100, help="with --infer: timed calls per batch size")
    p.add_argument("--export-onnx", help="write PyTorch's export of the twin (with --weights) to this file")
    p.add_argument("--weights", help="with --export-onnx: our exporter's ONNX file of the reference architecture")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.export_onnx:
        if not a.weights:
            raise SystemExit("--export-onnx needs --weights OURS.onnx (our exporter's file of the same network)")
        return export_onnx(a)
    print(f"{cpu_name()}; {blas()}")
    if a.infer:
        torch.manual_seed(0)
        return infer(a)
    torch.manual_seed(0)
    net = UNet()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4, weight_decay=0.0)
    ema = [q.detach().clone() for q in net.parameters()]
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0).float()
    data = torch.rand(4096, 1, 28, 28) * 2 - 1
    labels = torch.randint(0, 10, (4096,))
    times, phases = [], {}

    def mark(name, since):
        now = time.perf_counter()
        if step >= a.warmup:
            phases[name] = phases.get(name, 0.0) + now - since
        return now

    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        idx = torch.randint(0, 4096, (a.batch,))
        x0, y = data[idx], labels[idx]
        y = torch.where(torch.rand(a.batch) < 0.1, torch.full_like(y, 10), y)
        t = torch.randint(0, 1000, (a.batch,))
        noise = torch.randn_like(x0)
        opt.zero_grad(set_to_none=True)
        since = mark("data", start)
        xt = ab[t].sqrt()[:, None, None, None] * x0 + (1 - ab[t]).sqrt()[:, None, None, None] * noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            prediction = net(xt, t.float(), y)
        loss = F.mse_loss(prediction.float(), noise)
        since = mark("forward", since)
        loss.backward()
        since = mark("backward", since)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        since = mark("clip", since)
        opt.step()
        since = mark("adamw", since)
        with torch.no_grad():
            for e, q in zip(ema, net.parameters()):
                e.mul_(0.999).add_(q, alpha=0.001)
        mark("ema", since)
        if step >= a.warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    params = sum(q.numel() for q in net.parameters())
    print(f"PyTorch {torch.__version__} eager, reference UNet ({params:,} parameters), batch {a.batch}, {torch.get_num_threads()} threads, {a.precision}:")
    print(f"  {a.batch / median:.1f} images/s (median step {median * 1000:.1f} ms over {len(times)} steps)")
    print(f"  peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if a.profile:
        print("  per step: " + ", ".join(f"{k} {v / len(times) * 1000:.1f} ms" for k, v in phases.items()))


if __name__ == "__main__":
    main()
