#!/usr/bin/python3
"""Builds the diffusers interop fixtures under tests/Fixtures/Diffusers with diffusers' own code.

    /usr/bin/python3 interop/diffusers/make_fixtures.py --diffusers /path/to/diffusers/src

Needs Debian 12's python3-torch, python3-numpy, python3-onnx and a diffusers source tree (v0.31.0, the newest release
whose imports work with Debian's torch 1.13: `git archive v0.31.0 src/diffusers` of huggingface/diffusers). Debian
has no huggingface_hub or safetensors: hub_stubs.py stands in for their names only (nothing is downloaded or loaded).
Writes:
  gaussian.json            diffusers' schedulers on the closed-form Gaussian denoiser (see gaussian_cases.py)
  <model>/unet/model.onnx  small random UNet2DModels exported as Optimum does (sample, int64 timestep [B],
  <model>/unet/config.json  class_labels; out_sample), with the scheduler config diffusers writes and
  <model>/scheduler/...     reference.json: diffusers' pipeline outputs for fixed x_T and raw network outputs
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "Fixtures", "Diffusers")

MODELS = [
    # name, in_channels, classes, prediction, scheduler class, scheduler settings, reference steps
    ("unet-eps", 1, None, "epsilon", "DPMSolverMultistepScheduler",
     {"timestep_spacing": "leading", "steps_offset": 1}, 10),
    ("unet-class-v", 3, 4, "v_prediction", "DDIMScheduler",
     {"timestep_spacing": "trailing", "set_alpha_to_one": False, "rescale_betas_zero_snr": False}, 10),
]
OTHER_SCHEDULERS = ["DDIMScheduler", "EulerDiscreteScheduler", "UniPCMultistepScheduler", "DPMSolverMultistepScheduler"]
# Further runs as (class, settings over the folder's config): settings whose effect on the Gaussian model is small.
VARIANTS = [("DPMSolverMultistepScheduler", {"solver_order": 3}),
            ("DPMSolverMultistepScheduler", {"solver_order": 3, "solver_type": "heun"}),
            ("PNDMScheduler", {"skip_prk_steps": True}), ("PNDMScheduler", {}), ("LMSDiscreteScheduler", {})]


def build_unet(diffusers, torch, channels, classes, seed):
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=channels, out_channels=channels, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4,
        num_class_embeds=classes)
    # Default initialisation leaves the time and class paths weak; larger weights make the output depend on them.
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "emb" in name:
                p.mul_(4)
    return unet.eval()


def export(torch, unet, path, classes):
    class Wrapper(torch.nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, class_labels=None):
            return self.unet(sample, timestep, class_labels=class_labels).sample

    names = ["sample", "timestep"] + (["class_labels"] if classes else [])
    args = (torch.randn(2, unet.config.in_channels, 8, 8), torch.tensor([10, 20], dtype=torch.int64))
    if classes:
        args += (torch.tensor([0, 1], dtype=torch.int64),)
    axes = {n: {0: "batch"} for n in names}
    axes["out_sample"] = {0: "batch"}
    torch.onnx.export(Wrapper(unet), args, path, input_names=names, output_names=["out_sample"],
                      dynamic_axes=axes, opset_version=14, do_constant_folding=True)


def pipeline_loop(torch, scheduler, unet, x_t, steps, labels):
    scheduler.set_timesteps(steps)
    x = x_t * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(x, t)
        # An Optimum export takes int64 timesteps: the runtime feeds round(t).
        t_in = torch.full((x.shape[0],), float(t)).round().to(torch.int64)
        with torch.no_grad():
            out = unet(inp, t_in, class_labels=labels).sample
        x = scheduler.step(out, t, x).prev_sample
    return x


def make_model(diffusers, torch, name, channels, classes, prediction, cls, settings, steps, seed):
    folder = os.path.join(OUT, name)
    os.makedirs(os.path.join(folder, "unet"), exist_ok=True)
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    unet = build_unet(diffusers, torch, channels, classes, seed)
    unet.save_config(os.path.join(folder, "unet"))
    export(torch, unet, os.path.join(folder, "unet", "model.onnx"), classes)
    scheduler = getattr(diffusers, cls)(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear", prediction_type=prediction,
                                        **({"clip_sample": False} if cls == "DDIMScheduler" else {}), **settings)
    scheduler.save_config(os.path.join(folder, "scheduler"))
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump({"_class_name": "DDPMPipeline", "_diffusers_version": diffusers.__version__,
                   "scheduler": ["diffusers", cls], "unet": ["diffusers", "UNet2DModel"]}, f, indent=2)

    g = torch.Generator().manual_seed(seed)
    x_t = torch.randn(2, channels, 8, 8, generator=g)
    labels = torch.tensor([1, 3], dtype=torch.int64) if classes else None
    reference = {"x_T": x_t.flatten().tolist(), "labels": labels.tolist() if classes else None, "runs": [], "network": []}
    runs = [(cls, {})] + [(other, {}) for other in OTHER_SCHEDULERS if other != cls] + VARIANTS
    for run_cls, overrides in runs:
        s = getattr(diffusers, run_cls).from_config(scheduler.config, **overrides)
        out = pipeline_loop(torch, s, unet, x_t, steps, labels)
        reference["runs"].append({"scheduler": run_cls, "steps": steps, "config": s.to_json_string(),
                                  "output": out.flatten().tolist()})
    if cls == "DDIMScheduler" and not classes:
        pass
    # The pipeline itself, for the unconditional model: DDIMPipeline draws x_T from the generator and clamps.
    x = torch.randn(2, channels, 8, 8, generator=g)
    for t_value in [0, 17, 500, 999]:
        t_in = torch.full((2,), t_value, dtype=torch.int64)
        with torch.no_grad():
            out = unet(x, t_in, class_labels=labels).sample
        reference["network"].append({"t": t_value, "x": x.flatten().tolist(), "output": out.flatten().tolist()})
    if not classes:
        pipe = diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler.from_config(scheduler.config))
        image = pipe(batch_size=2, generator=torch.Generator().manual_seed(seed + 1), eta=0.0,
                     num_inference_steps=steps, output_type="np").images  # [B, H, W, C] in [0, 1]
        x_p = torch.randn(2, channels, 8, 8, generator=torch.Generator().manual_seed(seed + 1))
        loop = pipeline_loop(torch, diffusers.DDIMScheduler.from_config(scheduler.config), unet, x_p, steps, None)
        check = (loop / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        assert abs(check - image).max() < 1e-5, "the pipeline loop here differs from DDIMPipeline"
        reference["ddim_pipeline"] = {"x_T": x_p.flatten().tolist(), "steps": steps,
                                      "images": image.transpose(0, 3, 1, 2).flatten().tolist()}
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(reference, f)
    sensitivity = [abs(a - b) for a, b in zip(reference["network"][1]["output"], reference["network"][2]["output"])]
    print(f"{name}: onnx {os.path.getsize(os.path.join(folder, 'unet', 'model.onnx')) // 1024} KB, "
          f"mean |out(t=17) − out(t=500)| = {sum(sensitivity) / len(sensitivity):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diffusers", required=True, help="diffusers' src folder (holds diffusers/__init__.py)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.diffusers))
    sys.path.insert(0, HERE)
    import hub_stubs
    hub_stubs.install()
    import torch
    import diffusers
    import gaussian_cases

    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    data = gaussian_cases.generate(diffusers)
    data["diffusers_version"] = diffusers.__version__
    with open(os.path.join(OUT, "gaussian.json"), "w") as f:
        json.dump(data, f)
    print(f"gaussian.json: {len(data['cases'])} cases (diffusers {diffusers.__version__})")
    for i, (name, channels, classes, prediction, cls, settings, steps) in enumerate(MODELS):
        make_model(diffusers, torch, name, channels, classes, prediction, cls, settings, steps, seed=100 + i)


if __name__ == "__main__":
    main()
