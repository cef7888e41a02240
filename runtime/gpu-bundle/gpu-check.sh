#!/usr/bin/env bash
# Every GPU measurement the CUDA issue asks for, in one unattended run (for a device machine lent for minutes):
#   bundle/gpu-check.sh OUT_DIR [--quick]
# 1. devices: the CUDA libraries and where they were found, the GPUs (diffusion devices), nvidia-smi.
# 2. parity: the same x_T on the CPU and on CUDA, without and with CUDA graphs, for every deterministic sampler, on the
#    closed-form Gaussian model (target max |Δ| ≤ 1e-3) and the Fashion-MNIST model (≤ 1e-2).
# 3. speed: bench-runtime --device cuda (our loop, bare Run, the fresh-tensor loop) at batch 1, 16, 64, 256, 1024,
#    with and without CUDA graphs; PyTorch eager on the same architecture (the trainer's twin, this machine's torch).
# 4. end to end: a 20-step DPM-Solver++ generation of 4096 images at batch 1024, images/s, and the GPU memory used.
# Everything goes to OUT_DIR (summary.txt first); --quick runs fewer samplers and batch sizes (a first look).
# Needs python3 with numpy for the comparisons (the machine's PyTorch brings both).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: gpu-check.sh OUT_DIR [--quick]}"
quick="${2:-}"
mkdir -p "$out"
run="$here/run-gpu.sh"
summary="$out/summary.txt"
say() { echo "$*" | tee -a "$summary"; }
elapsed() { echo "$(( $(date +%s) - start_time )) s"; }
start_time=$(date +%s)

say "gpu-check $(cat "$here/VERSION" | tr '\n' ' ')"
if ! "$run" --check > "$out/devices.txt" 2>&1; then
    say "CUDA cannot be used here: $(tail -1 "$out/devices.txt")"
    exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi > "$out/nvidia-smi.txt" 2>&1
say "gpu: $(grep '^cuda:0' "$out/devices.txt")"

# 2. Parity.
samplers="ddim euler heun dpm++2m unipc lms rk45"
batches="1,16,64,256,1024"
[ "$quick" = --quick ] && samplers="ddim dpm++2m" && batches="1,64,1024"
compare() { # max |a − b| of two .npy files
    python3 -c 'import numpy as n, sys; a, b = n.load(sys.argv[1]), n.load(sys.argv[2]); print(f"{float(n.abs(a - b).max()):.3g}")' "$1" "$2" 2>&1
}
for model in gaussian/gaussian.onnx fashion-mnist/model.onnx; do
    for sampler in $samplers; do
        name="$(basename "$(dirname "$model")")-$sampler"
        common=(sample --model "$here/app/models/$model" --sampler "$sampler" --steps 20 -n 64 --batch 64 --seed 7)
        "$run" "${common[@]}" --device cpu --out "$out/$name-cpu.npy" > /dev/null 2>> "$out/errors.txt"
        "$run" "${common[@]}" --device cuda --out "$out/$name-cuda.npy" > /dev/null 2>> "$out/errors.txt"
        "$run" "${common[@]}" --device cuda --cuda-graphs --out "$out/$name-graphs.npy" > /dev/null 2>> "$out/errors.txt"
        say "parity $name: max |cuda − cpu| $(compare "$out/$name-cpu.npy" "$out/$name-cuda.npy"), with CUDA graphs $(compare "$out/$name-cpu.npy" "$out/$name-graphs.npy")"
    done
done
rm -f "$out"/*.npy
say "parity done at $(elapsed)"

# 3. Speed.
"$run" bench-runtime --device cuda --batches "$batches" --samplers dpm++2m --steps 20 > "$out/bench-cuda.txt" 2>&1
"$run" bench-runtime --device cuda --cuda-graphs --batches "$batches" --samplers dpm++2m --steps 20 \
    > "$out/bench-cuda-graphs.txt" 2>&1
python3 "$here/pytorch_reference.py" --infer --device cuda --batches "$batches" > "$out/pytorch-eager.txt" 2>&1
say "bench done at $(elapsed) (bench-cuda.txt, bench-cuda-graphs.txt, pytorch-eager.txt)"

# 4. End to end, with the GPU's memory sampled every 100 ms.
memory="$out/gpu-memory.csv"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$memory" 2>/dev/null &
    sampler_pid=$!
fi
t0=$(date +%s.%N)
"$run" sample --device cuda --sampler dpm++2m --steps 20 --count 4096 --batch 1024 --out "$out/e2e.npy" \
    > "$out/e2e.txt" 2>&1
t1=$(date +%s.%N)
[ -n "${sampler_pid:-}" ] && kill "$sampler_pid" 2>/dev/null
rm -f "$out/e2e.npy"
say "end to end: 4096 images in $(python3 -c "print(f'{$t1 - $t0:.2f}')") s, $(python3 -c "print(f'{4096 / ($t1 - $t0):.0f}')") images/s (process start included); $(tail -1 "$out/e2e.txt")"
[ -s "$memory" ] && say "GPU memory: peak $(sort -n "$memory" | tail -1) MiB used"
say "done in $(elapsed)"
