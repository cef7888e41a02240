#!/usr/bin/env bash
# The GPU bundle's runner: runs the bundled CLI (its own .NET runtime, ONNX Runtime's CUDA build) with the machine's
# NVIDIA libraries within reach, e.g.
#   bundle/run-gpu.sh sample --device cuda --out gpu.png
#   bundle/run-gpu.sh --check          # = diffusion devices: each CUDA library, where it was found, and the GPUs
# The runtime itself looks for the CUDA provider's libraries (the system loader, $DIFFUSION_CUDA_LIBRARY_PATH,
# $CUDA_HOME, /usr/local/cuda, conda, the usual site-packages); this adds the nvidia/*/lib folders (nvidia/cu13/lib
# too) of the site-packages of the first Python on PATH (PyTorch's CUDA wheels, wherever that Python keeps them) to
# both the runtime's search path and LD_LIBRARY_PATH (for what CUDA loads later by name).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

dirs=()
for py in python3 python; do
    command -v "$py" >/dev/null || continue
    while IFS= read -r d; do dirs+=("$d"); done < <("$py" - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = set(site.getsitepackages() if hasattr(site, "getsitepackages") else []) | {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
for root in sorted(roots):
    for lib in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib"))):
        print(lib)
PY
)
    break
done
path=""
for d in "${dirs[@]}"; do [ -d "$d" ] && case ":$path:" in *":$d:"*) ;; *) path="${path:+$path:}$d" ;; esac; done
if [ -n "$path" ]; then
    export DIFFUSION_CUDA_LIBRARY_PATH="${DIFFUSION_CUDA_LIBRARY_PATH:+$DIFFUSION_CUDA_LIBRARY_PATH:}$path"
    export LD_LIBRARY_PATH="$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
[ "${1:-}" = "--check" ] && exec "$here/app/diffusion" devices
exec "$here/app/diffusion" "$@"
