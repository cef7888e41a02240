#!/usr/bin/python3
"""Builds a tiny Stable Diffusion-layout folder and diffusers' own StableDiffusionPipeline outputs for it:

    /usr/bin/python3 interop/diffusers/make_sd_fixtures.py --diffusers /path/to/diffusers/src \
        --transformers /path/to/transformers/src

Components are made at fixed seeds with diffusers' own classes — UNet2DConditionModel with cross-attention and
AutoencoderKL — and exported with torch.onnx.export in Optimum's layout (unet: sample, timestep int64 [B],
encoder_hidden_states → out_sample; vae_decoder: latent_sample → sample; vae_encoder: sample → latent_sample, the
latent distribution's mean). The tokenizer is the CLIP fixture vocabulary (tests/Fixtures/Clip/sd1) run through
transformers' own CLIPTokenizer (see interop/transformers). What stands in for a piece that cannot run here:
- CLIPTextModel: transformers' modelling code needs the whole transformers package (too large to bring, and its
  imports need packages Debian 12 lacks). A small CLIP text transformer written here stands in (token and position
  embeddings, pre-LayerNorm causal self-attention blocks with quick-GELU MLPs, a final LayerNorm: CLIP's
  architecture); the pipeline is given its embeddings as prompt_embeds / negative_prompt_embeds, so that diffusers'
  StableDiffusionPipeline runs unchanged from there on (with transformers' class names stubbed for its imports).
- The noise a stochastic scheduler (Euler a) draws at each step: diffusers' randn_tensor is replaced by the runtime's
  keyed noise (keyed_noise.py, the same Philox4x32 draws under NOISE_SEED), so that both walk the same path.
Writes tests/Fixtures/Diffusers/sd-tiny/ (the folder) and sd-tiny/reference.json: for fixed initial latents, the
pipeline's images (output_type="np") per scheduler, with and without guidance and negative prompts; the same for
StableDiffusionImg2ImgPipeline and for StableDiffusionInpaintPipeline with this 4-channel UNet (its latent blending);
tests/Fixtures/Diffusers/sd-tiny-inpaint/: the same components with diffusers' 9-channel inpainting UNet, and
StableDiffusionInpaintPipeline's images on it; tests/Fixtures/Diffusers/sd-tiny-fp16/: sd-tiny in float16.
"""
import argparse
import importlib.abc
import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "tests", "Fixtures", "Diffusers", "sd-tiny")
OUT_INPAINT = os.path.join(ROOT, "tests", "Fixtures", "Diffusers", "sd-tiny-inpaint")  # the 9-channel UNet's folder
OUT_FP16 = os.path.join(ROOT, "tests", "Fixtures", "Diffusers", "sd-tiny-fp16")  # sd-tiny's networks in float16
OUT_SD2 = os.path.join(ROOT, "tests", "Fixtures", "Diffusers", "sd2-tiny-768")  # SD 2.x's layout: v, 768², pad "!"
TOKENIZER_SD2 = os.path.join(ROOT, "tests", "Fixtures", "Clip", "sd2", "tokenizer")
SD2_STRIDE = 8  # the reference keeps every 8th row and column of its 768×768 images (from the 4th): 96×96 per image
TOKENIZER = os.path.join(ROOT, "tests", "Fixtures", "Clip", "sd1", "tokenizer")
HIDDEN, LAYERS, HEADS, LENGTH = 32, 2, 2, 77
SCHEDULERS = [("DDIMScheduler", {}), ("EulerDiscreteScheduler", {}), ("DPMSolverMultistepScheduler", {}),
              ("UniPCMultistepScheduler", {}), ("PNDMScheduler", {"skip_prk_steps": True}),
              ("EulerAncestralDiscreteScheduler", {})]
SD2_SCHEDULERS = [SCHEDULERS[0], SCHEDULERS[1], SCHEDULERS[2], SCHEDULERS[5]]  # DDIM, Euler, DPM-Solver++(2M), Euler a
NOISE_SEED = 7  # the keyed noise of the stochastic schedulers' steps (keyed_noise.py; the runtime's request seed)
PROMPTS = [("a photo of a red cat on the moon", None, 7.5), ("a blue dog", "blurry, ugly", 5.0),
           ("a photo of a red cat on the moon", None, 1.0)]
# img2img and inpainting: every scheduler guided with a negative prompt, and DDIM unguided
GUIDED_AND_UNGUIDED = [(s, PROMPTS[1]) for s in SCHEDULERS] + [(SCHEDULERS[0], PROMPTS[2])]


def stub_transformers():
    """transformers' names that diffusers' pipeline modules import, and a version for diffusers' availability check:
    any transformers.* module, whose CAPITALISED names are strings and other names empty classes (nothing of it runs)."""
    meta = tempfile.mkdtemp(prefix="transformers-stub-")
    info = os.path.join(meta, "transformers-4.44.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: transformers\nVersion: 4.44.0\n")
    sys.path.insert(0, meta)

    def fill(module):
        def __getattr__(name):
            if name.startswith("__"):
                raise AttributeError(name)
            value = name.lower() if name.isupper() else type(name, (), {})
            setattr(module, name, value)
            return value
        module.__getattr__ = __getattr__
        if getattr(module, "__spec__", None) is None:
            module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None, is_package=True)
        if not hasattr(module, "__path__"):
            module.__path__ = []
        return module

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "transformers" and name not in sys.modules:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            return fill(types.ModuleType(spec.name))

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Finder())
    for name in [n for n, m in sys.modules.items() if isinstance(m, types.ModuleType)
                 and (n == "transformers" or n.startswith("transformers."))]:
        fill(sys.modules[name])  # the tokenizer's stub package: its other names too
    importlib.import_module("transformers").__version__ = "4.44.0"  # the stub package when no tokenizer made one


def text_encoder_class(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(HIDDEN), nn.LayerNorm(HIDDEN)
            self.attn = nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True)
            self.fc1, self.fc2 = nn.Linear(HIDDEN, 4 * HIDDEN), nn.Linear(4 * HIDDEN, HIDDEN)

        def forward(self, x, mask):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            h = self.fc1(self.ln2(x))
            return x + self.fc2(h * torch.sigmoid(1.702 * h))  # quick GELU

    class TextEncoder(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.tokens, self.positions = nn.Embedding(vocab, HIDDEN), nn.Embedding(LENGTH, HIDDEN)
            self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
            self.final = nn.LayerNorm(HIDDEN)

        def forward(self, input_ids):
            ids = input_ids.long()
            x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
            mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf")).triu(1)  # causal
            for block in self.blocks:
                x = block(x, mask)
            return self.final(x)

    return TextEncoder


def plms_from_strength(pipe):
    """The img2img pipeline's get_timesteps for PNDM with skip_prk_steps (PLMS): the walk PNDMScheduler lays out for
    the steps left, from the level the other schedulers start at, its first step evaluated twice. diffusers 0.31
    slices PLMS's 21 timesteps (20 steps, the second repeated) at t_start as if there were 20: that noises to one step
    higher and, after the doubled warm-up, labels the latents a step less noisy than they are (1.9e-2 off ours here)."""
    def get_timesteps(num_inference_steps, strength, device):
        kept = min(int(num_inference_steps * strength), num_inference_steps)
        tail = pipe.scheduler.timesteps[num_inference_steps - kept + 1:]  # [t_start + 1:]: past the repeat
        return pipe.scheduler.timesteps.new_tensor([*tail[:2], *tail[1:]]), kept
    return get_timesteps


class KeyedDraws:
    """Stands in for diffusers' randn_tensor in a stochastic scheduler: the n-th call of a pipeline run returns draw n
    of images 0, 1, … under NOISE_SEED, as the runtime's SamplingContext numbers its draws (x_T is draw 0)."""

    def __init__(self, torch):
        import keyed_noise
        self.torch, self.keyed, self.draw = torch, keyed_noise, 0

    def restart(self):
        self.draw = 0

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        self.draw += 1
        size = 1
        for n in shape[1:]:
            size *= n
        values = self.keyed.batch(NOISE_SEED, 0, shape[0], self.draw, size)
        return self.torch.from_numpy(values).reshape(shape).to(dtype or self.torch.float32)


def make_unet(torch, diffusers, in_channels):
    """The tiny UNet2DConditionModel (4 latent channels out; 9 in for diffusers' inpainting UNet). Default
    initialisation leaves the text path weak: larger cross-attention weights make the images depend on the prompt (and
    guidance visibly matter)."""
    unet = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=HIDDEN, attention_head_dim=4, norm_num_groups=8).eval()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "attn2.to_k" in name or "attn2.to_v" in name or "attn2.to_out" in name:
                p.mul_(4)
    return unet


def export_unet(torch, unet, folder, timestep_type="int64"):
    """Optimum's layout: sample [B, in_channels, h, w], timestep [B] (int64, or float32 where the schedulers' timesteps
    are fractional, as Euler's on a linspace grid are), encoder_hidden_states → out_sample, the channel counts fixed by
    the graph."""
    class Unet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.unet(sample, timestep, encoder_hidden_states).sample

    with torch.no_grad():
        export(torch, Unet(), (torch.randn(2, unet.config.in_channels, 16, 16),
                               torch.tensor([10, 20], dtype=getattr(torch, timestep_type)),
                               torch.randn(2, LENGTH, HIDDEN)),
               os.path.join(folder, "unet", "model.onnx"), ["sample", "timestep", "encoder_hidden_states"],
               ["out_sample"], {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                                "encoder_hidden_states": {0: "batch"},
                                "out_sample": {0: "batch", 2: "height", 3: "width"}})


def export_vae(torch, vae, folder, latent_size, encoder):
    """vae_decoder (latent_sample → sample) and, with `encoder`, vae_encoder (sample → latent_sample, the latent
    distribution's mean), in Optimum's layout."""
    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, latent_sample):
            return self.vae.decode(latent_sample).sample

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, sample):
            return self.vae.encode(sample).latent_dist.mean

    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    with torch.no_grad():
        export(torch, Decoder(), (torch.randn(1, 4, latent_size, latent_size),),
               os.path.join(folder, "vae_decoder", "model.onnx"), ["latent_sample"], ["sample"],
               {"latent_sample": {0: "batch", 2: "h", 3: "w"}, "sample": {0: "batch", 2: "H", 3: "W"}})
        if encoder:
            export(torch, Encoder(), (torch.randn(1, 3, latent_size * factor, latent_size * factor),),
                   os.path.join(folder, "vae_encoder", "model.onnx"), ["sample"], ["latent_sample"],
                   {"sample": {0: "batch", 2: "H", 3: "W"}, "latent_sample": {0: "batch", 2: "h", 3: "w"}})


def write_configs(folder, unet, vae, scheduler, scheduler_config, version, encoder):
    """Each component's config and model_index.json of an ONNX Stable Diffusion folder (OnnxStableDiffusionPipeline's
    layout), with a vae_encoder when `encoder`."""
    for name, cls, config in (("unet", "UNet2DConditionModel", unet.config), ("vae_decoder", "AutoencoderKL", vae.config),
                              *([("vae_encoder", "AutoencoderKL", vae.config)] if encoder else []),
                              ("text_encoder", "CLIPTextModel", {"hidden_size": HIDDEN, "max_position_embeddings": LENGTH}),
                              ("scheduler", scheduler, scheduler_config)):
        write_config(folder, name, cls, config, version)
    index = {"_class_name": "OnnxStableDiffusionPipeline", "_diffusers_version": version,
             "scheduler": ["diffusers", scheduler], "text_encoder": ["diffusers", "OnnxRuntimeModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "OnnxRuntimeModel"],
             "vae_decoder": ["diffusers", "OnnxRuntimeModel"]}
    if encoder:
        index["vae_encoder"] = ["diffusers", "OnnxRuntimeModel"]
    index.update({"safety_checker": [None, None], "feature_extractor": [None, None],
                  "requires_safety_checker": False})
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=1)


def embedder(torch, tokenizer, text_encoder):
    """A prompt's embedding [1, 77, hidden] by the tokenizer and the stand-in text encoder."""
    def embed(text):
        ids = torch.tensor([tokenizer(text)["input_ids"]], dtype=torch.int64)
        with torch.no_grad():
            return text_encoder(ids)
    return embed


def write_config(folder, name, cls, config, version):
    """A component's config as diffusers' save_config writes it: the class name and version first."""
    file = "scheduler_config.json" if name == "scheduler" else "config.json"
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    with open(os.path.join(folder, name, file), "w") as f:
        json.dump({"_class_name": cls, "_diffusers_version": version,
                   **{k: v for k, v in dict(config).items() if not k.startswith("_")}}, f, indent=1, default=list)


def export(torch, module, args, path, inputs, outputs, axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                      opset_version=14, do_constant_folding=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diffusers", required=True, help="diffusers' src folder (holds diffusers/__init__.py)")
    parser.add_argument("--transformers", required=True, help="transformers' src folder (its CLIP tokenizer)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.diffusers))
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(HERE, "..", "transformers"))
    import hub_stubs
    hub_stubs.install()
    import tokenizer_base_stub
    clip = tokenizer_base_stub.install(os.path.abspath(args.transformers))
    stub_transformers()
    import torch
    import diffusers
    from diffusers.schedulers import scheduling_euler_ancestral_discrete
    torch.set_num_threads(1)
    draws = KeyedDraws(torch)
    scheduling_euler_ancestral_discrete.randn_tensor = draws

    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    shutil.copytree(TOKENIZER, os.path.join(OUT, "tokenizer"))
    tokenizer = clip.CLIPTokenizer(os.path.join(OUT, "tokenizer", "vocab.json"),
                                   os.path.join(OUT, "tokenizer", "merges.txt"), model_max_length=LENGTH)

    torch.manual_seed(0)
    text_encoder = text_encoder_class(torch)(len(tokenizer.encoder)).eval()
    torch.manual_seed(1)
    unet = make_unet(torch, diffusers, 4)
    torch.manual_seed(2)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, sample_size=32).eval()
    scheduler_config = dict(diffusers.PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1,
        set_alpha_to_one=False, timestep_spacing="leading").config)

    with torch.no_grad():
        ids = torch.tensor([tokenizer("a cat")["input_ids"]] * 2, dtype=torch.int32)
        export(torch, text_encoder, (ids,), os.path.join(OUT, "text_encoder", "model.onnx"), ["input_ids"],
               ["last_hidden_state"], {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}})
    export_unet(torch, unet, OUT)
    export_vae(torch, vae, OUT, 16, encoder=True)
    write_configs(OUT, unet, vae, "PNDMScheduler", scheduler_config, diffusers.__version__, encoder=True)
    embed = embedder(torch, tokenizer, text_encoder)

    torch.manual_seed(3)
    latents = torch.randn(2, 4, 16, 16)
    cases = []
    for cls, settings in SCHEDULERS:
        scheduler = getattr(diffusers, cls).from_config({**scheduler_config, **settings})
        pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        for prompt, negative, guidance in PROMPTS:
            draws.restart()
            with torch.no_grad():
                images = pipe(prompt_embeds=embed(prompt).repeat(2, 1, 1),
                              negative_prompt_embeds=embed(negative or "").repeat(2, 1, 1) if guidance > 1 else None,
                              guidance_scale=guidance, num_inference_steps=20, latents=latents.clone(),
                              output_type="np").images
            cases.append({"scheduler": cls, "settings": settings, "config": {**scheduler.config},
                          "prompt": prompt, "negative_prompt": negative, "guidance": guidance, "steps": 20,
                          "images": images.reshape(-1).round(6).tolist()})
            print(f"{cls} {prompt!r} {negative!r} w={guidance}: images in [{images.min():.3f}, {images.max():.3f}]")
    # img2img (StableDiffusionImg2ImgPipeline): the input encoded to the latent distribution's mode (the export's mean),
    # and the noise it adds being the same latents as above (our ε is the keyed x_T draw, here given as InitialNoise).
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img as img2img_module
    img2img_module.retrieve_latents = lambda output, generator=None, sample_mode="sample": output.latent_dist.mode()
    img2img_module.randn_tensor = lambda shape, **kwargs: latents.clone()
    image = torch.sin(torch.arange(2 * 3 * 32 * 32, dtype=torch.float32) * 0.05).reshape(2, 3, 32, 32) * 0.9
    img2img = []
    for (cls, settings), (prompt, negative, guidance) in GUIDED_AND_UNGUIDED:
        scheduler = getattr(diffusers, cls).from_config({**scheduler_config, **settings})
        pipe = diffusers.StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                                        scheduler=scheduler, safety_checker=None,
                                                        feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        if cls == "PNDMScheduler":
            pipe.get_timesteps = plms_from_strength(pipe)
        draws.restart()
        with torch.no_grad():
            images = pipe(prompt_embeds=embed(prompt).repeat(2, 1, 1),
                          negative_prompt_embeds=embed(negative or "").repeat(2, 1, 1) if guidance > 1 else None,
                          image=image.clone(), strength=0.6, guidance_scale=guidance, num_inference_steps=20,
                          output_type="np").images
        img2img.append({"scheduler": cls, "settings": settings, "config": {**scheduler.config}, "prompt": prompt,
                        "negative_prompt": negative, "guidance": guidance, "steps": 20, "strength": 0.6,
                        "images": images.reshape(-1).round(6).tolist()})
        print(f"img2img {cls} w={guidance}: images in [{images.min():.3f}, {images.max():.3f}]")
    # inpainting (StableDiffusionInpaintPipeline with this 4-channel UNet): after every step diffusers blends in the
    # known image's latents (its latent distribution's mode, as above) noised with the initial noise to the level the
    # step reached — the clean latents after the last step — where the latent mask (torch's nearest resize of the
    # pixel mask) keeps them.
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint as inpaint_module
    inpaint_module.retrieve_latents = lambda output, generator=None, sample_mode="sample": output.latent_dist.mode()
    mask = torch.zeros(2, 1, 32, 32)  # diffusers' convention: 1 = repaint
    mask[0, :, 5:21, 9:27] = 1  # edges inside the 2×2 latent blocks: which pixel a latent cell reads shows
    mask[1, :, :, 16:] = 1

    def inpainted(net):
        """StableDiffusionInpaintPipeline on `net` for each scheduler guided with a negative prompt, and DDIM unguided."""
        results = []
        for (cls, settings), (prompt, negative, guidance) in GUIDED_AND_UNGUIDED:
            # clip_sample off, as StableDiffusionPipeline and the img2img pipeline set it for DDIM (the inpainting
            # pipeline of 0.31 leaves DDIM's default on, clamping the latents' x̂₀ to ±1; the folder's config has none)
            scheduler = getattr(diffusers, cls).from_config({**scheduler_config, **settings, "clip_sample": False})
            pipe = diffusers.StableDiffusionInpaintPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=net,
                                                            scheduler=scheduler, safety_checker=None,
                                                            feature_extractor=None, requires_safety_checker=False)
            pipe.set_progress_bar_config(disable=True)
            draws.restart()
            with torch.no_grad():
                images = pipe(prompt_embeds=embed(prompt).repeat(2, 1, 1),
                              negative_prompt_embeds=embed(negative or "").repeat(2, 1, 1) if guidance > 1 else None,
                              image=image.clone(), mask_image=mask.clone(), guidance_scale=guidance,
                              num_inference_steps=20, latents=latents.clone(), output_type="np").images
            results.append({"scheduler": cls, "settings": settings, "config": {**scheduler.config},
                            "prompt": prompt, "negative_prompt": negative, "guidance": guidance, "steps": 20,
                            "images": images.reshape(-1).round(6).tolist()})
            print(f"inpaint ({net.config.in_channels} channels) {cls} w={guidance}: images in "
                  f"[{images.min():.3f}, {images.max():.3f}]")
        return results

    inpaint = inpainted(unet)
    # diffusers' inpainting UNet (in_channels 9: the latents, the latent mask with 1 = repaint, the masked image's
    # latents), in a folder of its own sharing the other components: the pipeline feeds it the mask, blending nothing.
    torch.manual_seed(4)
    inpaint_unet = make_unet(torch, diffusers, 9)
    if os.path.exists(OUT_INPAINT):
        shutil.rmtree(OUT_INPAINT)
    for component in ("tokenizer", "text_encoder", "vae_decoder", "vae_encoder", "scheduler"):
        shutil.copytree(os.path.join(OUT, component), os.path.join(OUT_INPAINT, component))
    shutil.copy(os.path.join(OUT, "model_index.json"), OUT_INPAINT)
    export_unet(torch, inpaint_unet, OUT_INPAINT)
    write_config(OUT_INPAINT, "unet", "UNet2DConditionModel", inpaint_unet.config, diffusers.__version__)
    # sd-tiny in float16 (float16.py: the float32 exports converted, as Optimum's --fp16 leaves them; torch cannot trace
    # float16 convolutions on the CPU), measured against the float32 pipeline's reference above
    import float16
    if os.path.exists(OUT_FP16):
        shutil.rmtree(OUT_FP16)
    shutil.copytree(OUT, OUT_FP16, ignore=shutil.ignore_patterns("reference.json", "*.onnx"))
    for component in ("text_encoder", "unet", "vae_decoder", "vae_encoder"):
        float16.convert(os.path.join(OUT, component, "model.onnx"), os.path.join(OUT_FP16, component, "model.onnx"))
    with open(os.path.join(OUT_INPAINT, "reference.json"), "w") as f:
        json.dump({"diffusers_version": diffusers.__version__, "noise_seed": NOISE_SEED,
                   "latents": latents.reshape(-1).tolist(), "input_image": image.reshape(-1).tolist(),
                   "inpaint_mask": mask.reshape(-1).tolist(),
                   "inpaint": inpainted(inpaint_unet)}, f, default=list)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"diffusers_version": diffusers.__version__, "noise_seed": NOISE_SEED,
                   "latents": latents.reshape(-1).tolist(), "latent_shape": list(latents.shape),
                   "image_shape": [2, 32, 32, 3], "cases": cases, "input_image": image.reshape(-1).tolist(),
                   "img2img": img2img, "inpaint_mask": mask.reshape(-1).tolist(), "inpaint": inpaint,
                   # keyed_noise.py's draw 3 of image 1 (1 029 values: past one 512-value chunk, an odd count)
                   "keyed_noise": draws.keyed.normal(NOISE_SEED, 1, 3, 1029).tolist()}, f,
                  default=list)
    make_sd2(torch, diffusers, clip, text_encoder, draws)
    print(f"wrote {os.path.normpath(OUT)} and the folders beside it")


def make_sd2(torch, diffusers, clip, text_encoder, draws):
    """SD 2.x's layout at its size: a v-prediction UNet (use_linear_projection, cross-attention below the top level,
    float timestep, weights in model.onnx_data) with sample_size 96 and a VAE of factor 8 — 768×768 images —, SD 2's DDIM scheduler config (v_prediction,
    steps_offset 1, no clip_sample), the tokenizer padding with "!", sd-tiny's text encoder. The reference: diffusers'
    StableDiffusionPipeline for one image per scheduler, guided at 7.5, its images kept on a 96×96 grid of pixels
    (reference_images.npy) beside the initial latents (latents.npy)."""
    import numpy as np
    if os.path.exists(OUT_SD2):
        shutil.rmtree(OUT_SD2)
    shutil.copytree(TOKENIZER_SD2, os.path.join(OUT_SD2, "tokenizer"))
    shutil.copytree(os.path.join(OUT, "text_encoder"), os.path.join(OUT_SD2, "text_encoder"))
    tokenizer = clip.CLIPTokenizer(os.path.join(OUT_SD2, "tokenizer", "vocab.json"),
                                   os.path.join(OUT_SD2, "tokenizer", "merges.txt"), model_max_length=LENGTH,
                                   pad_token="!")
    torch.manual_seed(5)
    unet = diffusers.UNet2DConditionModel(
        sample_size=96, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN, attention_head_dim=8, use_linear_projection=True, norm_num_groups=8).eval()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "attn2.to_k" in name or "attn2.to_v" in name or "attn2.to_out" in name:
                p.mul_(4)
    torch.manual_seed(6)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4, sample_size=768, mid_block_add_attention=False).eval()
    scheduler_config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                        "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
                        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None}
    # float timesteps: without timestep_spacing in SD 2's config, Euler's grid is linspace, whose timesteps are
    # fractional; an int64 input would round them where diffusers' torch UNet embeds them as they are
    export_unet(torch, unet, OUT_SD2, "float32")
    # its weights as external data beside the graph (model.onnx_data), as Optimum writes models past 2 GB
    import onnx
    path = os.path.join(OUT_SD2, "unet", "model.onnx")
    onnx.save_model(onnx.load(path), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx_data", size_threshold=1024)
    export_vae(torch, vae, OUT_SD2, 96, encoder=False)
    write_configs(OUT_SD2, unet, vae, "DDIMScheduler", scheduler_config, diffusers.__version__, encoder=False)
    embed = embedder(torch, tokenizer, text_encoder)

    torch.manual_seed(7)
    latents = torch.randn(1, 4, 96, 96)
    cases, images = [], []
    prompt = "a photo of a red cat on the moon"
    for cls, settings in SD2_SCHEDULERS:
        scheduler = getattr(diffusers, cls).from_config({**scheduler_config, **settings})
        pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        draws.restart()
        with torch.no_grad():
            image = pipe(prompt_embeds=embed(prompt), negative_prompt_embeds=embed(""), guidance_scale=7.5,
                         num_inference_steps=20, latents=latents.clone(), output_type="np").images
        images.append(image[0, SD2_STRIDE // 2::SD2_STRIDE, SD2_STRIDE // 2::SD2_STRIDE])
        cases.append({"scheduler": cls, "settings": settings, "config": {**scheduler.config}, "prompt": prompt,
                      "negative_prompt": None, "guidance": 7.5, "steps": 20})
        print(f"sd2 {cls}: {image.shape[1]}×{image.shape[2]} images in [{image.min():.3f}, {image.max():.3f}]")
    np.save(os.path.join(OUT_SD2, "latents.npy"), latents.numpy())
    np.save(os.path.join(OUT_SD2, "reference_images.npy"), np.stack(images).astype(np.float32))
    with open(os.path.join(OUT_SD2, "reference.json"), "w") as f:
        json.dump({"diffusers_version": diffusers.__version__, "noise_seed": NOISE_SEED, "stride": SD2_STRIDE,
                   "cases": cases}, f, indent=1, default=list)


if __name__ == "__main__":
    main()
