#!/usr/bin/env bash
# The GPU bundle's runner: puts the machine's NVIDIA libraries (CUDA 13 runtime, cuBLAS/cuBLASLt, cuRAND, cuFFT,
# cuDNN 9) on the library path and runs the bundled CLI with the bundled CUDA provider, e.g.
#   bundle/run-gpu.sh sample --device cuda --out gpu.png
#   bundle/run-gpu.sh --check          # which of the provider's libraries resolve, and from where
# Where the libraries are searched: $NVIDIA_LIB_DIRS (colon-separated), the nvidia/*/lib folders of every Python's
# site-packages (PyTorch's CUDA wheels), $CUDA_HOME/lib64 and /usr/local/cuda/lib64.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
provider="$here/lib/libonnxruntime_providers_cuda.so"

dirs=()
IFS=: read -r -a extra <<< "${NVIDIA_LIB_DIRS:-}"
for d in "${extra[@]}"; do [ -n "$d" ] && dirs+=("$d"); done
for py in python3 python; do
    command -v "$py" >/dev/null || continue
    while IFS= read -r d; do dirs+=("$d"); done < <("$py" - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = set(site.getsitepackages() if hasattr(site, "getsitepackages") else []) | {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
for root in sorted(roots):
    for lib in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib"))) + sorted(glob.glob(os.path.join(root, "nvidia", "cu*", "lib"))):
        print(lib)
PY
)
    break
done
for d in "${CUDA_HOME:-/nonexistent}/lib64" /usr/local/cuda/lib64; do [ -d "$d" ] && dirs+=("$d"); done
path=""
for d in "${dirs[@]}"; do [ -d "$d" ] && case ":$path:" in *":$d:"*) ;; *) path="${path:+$path:}$d" ;; esac; done
export LD_LIBRARY_PATH="$here/app${path:+:$path}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DIFFUSION_CUDA_PROVIDER="${DIFFUSION_CUDA_PROVIDER:-$provider}"
export DOTNET_ROOT="$here/app"

if [ "${1:-}" = "--check" ]; then
    echo "NVIDIA library folders found: ${path:-none}"
    echo "provider: $DIFFUSION_CUDA_PROVIDER"
    missing="$(ldd "$DIFFUSION_CUDA_PROVIDER" 2>&1 | grep -E "not found|not a dynamic" || true)"
    ldd "$DIFFUSION_CUDA_PROVIDER" 2>/dev/null | grep -E "cuda|cublas|curand|cufft|cudnn|nvrtc" || true
    if [ -n "$missing" ]; then echo "missing:"; echo "$missing"; exit 1; fi
    echo "every library the provider links against resolves (cuDNN and cuFFT are also loaded at run time)"
    exit 0
fi
exec "$here/app/diffusion" "$@"
