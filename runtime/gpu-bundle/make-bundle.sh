#!/usr/bin/env bash
# Makes the GPU bundle: a self-contained linux-x64 publish of the CLI built against ONNX Runtime 1.29 (-p:OrtSource=npm:
# ORT's official C# API and its native core from the npm package com.github.asus4.onnxruntime), the CUDA provider of
# the same release as a plugin library (com.github.asus4.onnxruntime.linux-x64-gpu: libonnxruntime_providers_cuda.so,
# built for CUDA 13 and cuDNN 9), run-gpu.sh, which puts the machine's NVIDIA libraries on the library path and
# runs the CLI with that provider, and the PyTorch-eager twin of the UNet (pytorch_reference.py --infer) to compare. The machine needs no .NET SDK and no network; it needs the NVIDIA driver and the
# CUDA 13 runtime, cuBLAS(Lt), cuRAND, cuFFT and cuDNN 9 libraries (e.g. the nvidia-* wheels that come with PyTorch).
#
#   runtime/gpu-bundle/make-bundle.sh [--out DIR] [--part-mib N] [--xz-level L] [--provider FILE] [--no-pack]
#
# Output in DIR (default .build/gpu-bundle): bundle/ (the tree), and unless --no-pack bundle.tar.xz.part-* (each at
# most N MiB, default 60, so that each fits one call's 64 MiB carry to the device machine), SHA256SUMS and unpack.sh.
# --xz-level is xz's preset (0 fast … 9 small, default 6). --provider uses that file as the provider library instead of the npm package's (for tests without the 180 MB download).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$repo/.build/gpu-bundle" part_mib=60 xz_level=6 provider="" pack=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --part-mib) part_mib="$2"; shift 2 ;;
        --xz-level) xz_level="$2"; shift 2 ;;
        --provider) provider="$2"; shift 2 ;;
        --no-pack) pack=0; shift ;;
        *) echo "make-bundle.sh: unknown argument '$1' (expected --out DIR, --part-mib N, --xz-level L, --provider FILE, --no-pack)" >&2; exit 2 ;;
    esac
done
[[ "$part_mib" =~ ^[1-9][0-9]*$ ]] || { echo "make-bundle.sh: --part-mib '$part_mib': expected a whole number of MiB ≥ 1" >&2; exit 2; }
[[ "$xz_level" =~ ^[0-9]$ ]] || { echo "make-bundle.sh: --xz-level '$xz_level': expected 0 … 9" >&2; exit 2; }
[ -z "$provider" ] || [ -f "$provider" ] || { echo "make-bundle.sh: --provider '$provider' does not exist" >&2; exit 2; }
for tool in dotnet npm tar xz split sha256sum; do
    command -v "$tool" >/dev/null || { echo "make-bundle.sh: '$tool' is missing (dotnet: the .NET SDK; npm; xz-utils; coreutils)" >&2; exit 1; }
done

# The npm package versions (ORT core + C# API, and its CUDA provider) come from the build's own settings.
props="$repo/runtime/OnnxRuntime.Npm/OnnxRuntime.props"
npm_version="$(sed -n 's:.*<OrtNpmVersion>\(.*\)</OrtNpmVersion>.*:\1:p' "$props")"
ort_version="$(sed -n 's:.*<OrtNpmOrtVersion>\(.*\)</OrtNpmOrtVersion>.*:\1:p' "$props")"
cache="$repo/.cache"
mkdir -p "$cache" "$out"
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# 1. Publish from a copy of the working tree, so that the npm build never touches this checkout's bin/ and obj/.
echo "[gpu-bundle] publishing the CLI (self-contained linux-x64, ONNX Runtime $ort_version from npm $npm_version)"
mkdir -p "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -t "$work/src")
dotnet publish "$work/src/runtime/Diffusion.Cli/Diffusion.Cli.csproj" -c Release -r linux-x64 --self-contained \
    -p:OrtSource=npm -p:DiffusionCacheDir="$cache/" -o "$work/bundle/app" -nologo -v quiet > "$work/publish.log" 2>&1 \
    || { tail -30 "$work/publish.log" >&2; echo "make-bundle.sh: dotnet publish failed (log above)" >&2; exit 1; }
core_dir="$cache/onnxruntime-$npm_version/package/Plugins/Linux/x64"
cp "$core_dir/libonnxruntime.so" "$core_dir/libonnxruntime_providers_shared.so" "$work/bundle/app/"

# 2. The CUDA provider of the same release (fetched once into .cache/, like the core).
mkdir -p "$work/bundle/lib"
if [ -n "$provider" ]; then
    cp "$provider" "$work/bundle/lib/libonnxruntime_providers_cuda.so"
else
    gpu_dir="$cache/onnxruntime-gpu-$npm_version"
    if [ ! -f "$gpu_dir/package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so" ]; then
        echo "[gpu-bundle] fetching com.github.asus4.onnxruntime.linux-x64-gpu@$npm_version (≈ 180 MB) into $cache"
        tmp="$(mktemp -d "$cache/.gpu.XXXXXX")"
        npm pack --silent --pack-destination "$tmp" "com.github.asus4.onnxruntime.linux-x64-gpu@$npm_version" >/dev/null
        tar -xzf "$tmp"/*.tgz -C "$tmp" package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/LICENSE
        rm -f "$tmp"/*.tgz
        rm -rf "$gpu_dir" && mv "$tmp" "$gpu_dir"
    fi
    cp "$gpu_dir/package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so" "$work/bundle/lib/"
fi
cp "$repo/runtime/gpu-bundle/run-gpu.sh" "$repo/trainer/bench/pytorch_reference.py" "$work/bundle/"
printf 'ONNX Runtime %s (npm com.github.asus4.onnxruntime %s): core, C# API and CUDA provider\n' "$ort_version" "$npm_version" > "$work/bundle/VERSION"
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
