#!/usr/bin/env bash
# Makes the GPU bundle: a self-contained linux-x64 publish of the CLI built on ONNX Runtime's official CUDA package
# (-p:OrtGpu=true: Microsoft.ML.OnnxRuntime.Gpu.Linux with libonnxruntime.so and libonnxruntime_providers_cuda.so for
# CUDA 13, and Microsoft.ML.OnnxRuntime.Managed of the same release) with the shipped models, run-gpu.sh, which finds
# the machine's NVIDIA libraries and runs the CLI, and the PyTorch-eager twin of the UNet (pytorch_reference.py
# --infer) to compare. The machine needs no .NET SDK and no network; it needs the NVIDIA driver and CUDA 13's runtime,
# cuBLAS(Lt) and cuRAND (e.g. the nvidia-* wheels that come with PyTorch).
#
#   runtime/gpu-bundle/make-bundle.sh [--out DIR] [--part-mib N] [--xz-level L] [--no-pack]
#
# Output in DIR (default .build/gpu-bundle): bundle/ (the tree), and unless --no-pack bundle.tar.xz.part-* (each at
# most N MiB, default 60, so that each fits one call's 64 MiB carry to the device machine), SHA256SUMS and unpack.sh.
# --xz-level is xz's preset (0 fast … 9 small, default 6).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$repo/.build/gpu-bundle" part_mib=60 xz_level=6 pack=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --part-mib) part_mib="$2"; shift 2 ;;
        --xz-level) xz_level="$2"; shift 2 ;;
        --no-pack) pack=0; shift ;;
        *) echo "make-bundle.sh: unknown argument '$1' (expected --out DIR, --part-mib N, --xz-level L, --no-pack)" >&2; exit 2 ;;
    esac
done
[[ "$part_mib" =~ ^[1-9][0-9]*$ ]] || { echo "make-bundle.sh: --part-mib '$part_mib': expected a whole number of MiB ≥ 1" >&2; exit 2; }
[[ "$xz_level" =~ ^[0-9]$ ]] || { echo "make-bundle.sh: --xz-level '$xz_level': expected 0 … 9" >&2; exit 2; }
for tool in dotnet tar xz split sha256sum; do
    command -v "$tool" >/dev/null || { echo "make-bundle.sh: '$tool' is missing (dotnet: the .NET SDK; xz-utils; coreutils)" >&2; exit 1; }
done

# The ONNX Runtime release comes from the build's own settings.
ort_version="$(dotnet msbuild "$repo/runtime/Diffusion.Runtime/Diffusion.Runtime.csproj" -p:OrtGpu=true \
    -getProperty:OrtNuGetVersion 2>/dev/null | tr -d '[:space:]')"
[ -n "$ort_version" ] || { echo "make-bundle.sh: could not read OrtNuGetVersion from the build" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# 1. Publish from a copy of the working tree, so that the GPU build never touches this checkout's bin/ and obj/.
echo "[gpu-bundle] publishing the CLI (self-contained linux-x64, Microsoft.ML.OnnxRuntime.Gpu.Linux $ort_version)"
mkdir -p "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -t "$work/src")
dotnet publish "$work/src/runtime/Diffusion.Cli/Diffusion.Cli.csproj" -c Release -r linux-x64 --self-contained \
    -p:OrtGpu=true -o "$work/bundle/app" -nologo -v quiet > "$work/publish.log" 2>&1 \
    || { tail -30 "$work/publish.log" >&2; echo "make-bundle.sh: dotnet publish failed (log above)" >&2; exit 1; }
for lib in libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
    [ -f "$work/bundle/app/$lib" ] || { echo "make-bundle.sh: the publish lacks $lib (Microsoft.ML.OnnxRuntime.Gpu.Linux $ort_version)" >&2; exit 1; }
done
# TensorRT's provider needs TensorRT, which the bundle does not use or bring.
rm -f "$work/bundle/app/libonnxruntime_providers_tensorrt.so"

cp "$repo/runtime/gpu-bundle/run-gpu.sh" "$repo/runtime/gpu-bundle/gpu-check.sh" "$repo/trainer/bench/pytorch_reference.py" \
    "$work/bundle/"
printf 'ONNX Runtime %s (Microsoft.ML.OnnxRuntime.Gpu.Linux %s): core, C# API and CUDA provider\n' "$ort_version" "$ort_version" > "$work/bundle/VERSION"
git -C "$repo" rev-parse --short HEAD >> "$work/bundle/VERSION" 2>/dev/null || true

rm -rf "$out/bundle" "$out"/bundle.tar.xz.part-* "$out/SHA256SUMS" "$out/unpack.sh"
mv "$work/bundle" "$out/bundle"
echo "[gpu-bundle] $(du -sh "$out/bundle" | cut -f1) in $out/bundle"
[ "$pack" = 1 ] || exit 0

# 3. Parts that each fit one carry, their checksums, and the line that puts them back together.
echo "[gpu-bundle] packing into parts of at most $part_mib MiB (xz)"
tar -C "$out" -cf - bundle | xz -T0 "-$xz_level" | split -b "${part_mib}M" -d -a 2 - "$out/bundle.tar.xz.part-"
(cd "$out" && sha256sum bundle.tar.xz.part-* > SHA256SUMS)
cat > "$out/unpack.sh" <<'UNPACK'
#!/usr/bin/env bash
# Checks the parts beside this script, joins them and unpacks bundle/ into the folder given (default: here).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; dest="${1:-$here}"
(cd "$here" && sha256sum -c --quiet SHA256SUMS) || { echo "unpack.sh: a part is missing or damaged (SHA256SUMS)" >&2; exit 1; }
mkdir -p "$dest" && cat "$here"/bundle.tar.xz.part-* | xz -d | tar -C "$dest" -xf -
echo "unpacked $dest/bundle: run $dest/bundle/run-gpu.sh sample --device cuda"
UNPACK
chmod +x "$out/unpack.sh"
ls -l "$out"/bundle.tar.xz.part-* | awk '{printf "[gpu-bundle] %s %.1f MiB\n", $NF, $5/1048576}'
