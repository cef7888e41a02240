#!/usr/bin/python3
"""PyTorch-eager twin of the trainer's reference UNet, for `./diffusion bench-train --compare` (Debian's torch 1.13).

Same architecture as trainer/Diffusion.Trainer/Nn (UNet.cs, Blocks.cs, Layers.cs): base 32 channels, mults 1,2,2,
2 res blocks, attention at 7×7, GroupNorm(8), class embedding, ε-objective with the linear schedule, AdamW with
gradient clipping and EMA — one training step = sample batch, q_sample, forward, MSE, backward, clip, AdamW, EMA.
Usage: /usr/bin/python3 trainer/bench/pytorch_reference.py [--steps 20] [--warmup 3] [--batch 64] [--threads N]
With --infer it times the network alone instead, as `bench-runtime` does for ONNX Runtime: eval mode, inference mode,
x_t already on the device, one forward per call (synchronised on CUDA), for each of --batches:
       python3 pytorch_reference.py --infer --device cuda --batches 1,16,64,256,1024 [--calls 200]
"""
import argparse, math, os, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


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
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.proj = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = dropout
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x))) + self.proj(F.silu(e))[:, :, None, None]
        h = self.conv2(F.dropout(F.silu(self.norm2(h)), self.dropout, self.training))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm, self.qkv, self.out = nn.GroupNorm(groups, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

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
        self.norm_out, self.conv_out = nn.GroupNorm(groups, width), nn.Conv2d(width, cin, 3, padding=1)

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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
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
