#!/usr/bin/python3
"""diffusers' StableDiffusionPipeline on torch (Debian's python3-torch), timed on the architecture of a text-to-image
folder, for `./diffusion bench-runtime --model FOLDER --torch-pipeline DIFFUSERS_SRC`:

    /usr/bin/python3 interop/diffusers/bench_sd_pipeline.py FOLDER --diffusers /path/to/diffusers/src \
        [--steps 20] [--repeat 5] [--threads N] [--guidance 7.5]

The UNet and VAE are diffusers' UNet2DConditionModel and AutoencoderKL made from the folder's own config.json files
(random weights: a network's time does not depend on its values), the scheduler DPMSolverMultistepScheduler from the
folder's scheduler config, the text encoder the CLIP-architecture stand-in of make_sd_fixtures.py (transformers'
CLIPTextModel cannot run here) at the folder's hidden size. One request is what bench-runtime times for the runtime:
the prompt and the empty negative prompt through the text encoder in one batch, then the pipeline with their embeddings
(one image, 20 steps, guided at 7.5, output_type="np": the VAE decode included), in inference mode. Prints the CPU and
the BLAS torch reached, then one line `torch request ms: median min max` over --repeat requests after one warm-up.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def config(folder, component, name="config.json"):
    path = os.path.join(folder, component, name)
    with open(path) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder")
    p.add_argument("--diffusers", required=True, help="diffusers' src folder (holds diffusers/__init__.py)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--guidance", type=float, default=7.5)
    a = p.parse_args()
    sys.path.insert(0, os.path.abspath(a.diffusers))
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(HERE, "..", "..", "trainer", "bench"))
    import hub_stubs
    hub_stubs.install()
    import make_sd_fixtures as fixtures
    fixtures.stub_transformers()
    import torch
    import diffusers
    import pytorch_reference  # the CPU's name and the BLAS torch reached, as bench-train's twin prints them
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {a.threads} threads, "
          f"{pytorch_reference.cpu_name()}; {pytorch_reference.blas()}", flush=True)

    text = config(a.folder, "text_encoder")
    fixtures.HIDDEN = text["hidden_size"]
    fixtures.LAYERS = text.get("num_hidden_layers", fixtures.LAYERS)
    fixtures.HEADS = text.get("num_attention_heads", fixtures.HEADS)
    fixtures.LENGTH = text.get("max_position_embeddings", fixtures.LENGTH)
    with open(os.path.join(a.folder, "tokenizer", "vocab.json")) as f:
        vocab = len(json.load(f))
    torch.manual_seed(0)
    text_encoder = fixtures.text_encoder_class(torch)(vocab).eval()
    unet = diffusers.UNet2DConditionModel.from_config(config(a.folder, "unet")).eval()
    vae = diffusers.AutoencoderKL.from_config(config(a.folder, "vae_decoder")).eval()
    scheduler = diffusers.DPMSolverMultistepScheduler.from_config(
        config(a.folder, "scheduler", "scheduler_config.json"))
    pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                             scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    size = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    ids = torch.randint(0, vocab, (2, fixtures.LENGTH))  # the prompt and the negative prompt, tokenized

    def request():
        start = time.perf_counter()
        with torch.inference_mode():
            embeddings = text_encoder(ids)
            pipe(prompt_embeds=embeddings[:1], negative_prompt_embeds=embeddings[1:], guidance_scale=a.guidance,
                 num_inference_steps=a.steps, height=size, width=size, output_type="np")
        return (time.perf_counter() - start) * 1000

    request()  # warm-up
    times = [request() for _ in range(a.repeat)]
    print(f"torch request ms: {statistics.median(times):.2f} {min(times):.2f} {max(times):.2f}")


if __name__ == "__main__":
    main()
