#!/usr/bin/env bash
# Everything the tests need (the same set-up as ./diffusion), then the whole test suite.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/runtime/bootstrap.sh"
ensure_prerequisites tests
build_solution Diffusion.sln
say "packing the libraries into samples/feed and building the sample apps against it"
"$diffusion_root/samples/build-feed.sh" >/dev/null
log="$diffusion_root/.build/test.log"
status=0
: > "$log"
# One test assembly at a time. Side by side on two cores, ONNX Runtime's and libtorch's thread pools oversubscribe
# the CPU: the trainer tests took 21 min beside the CLI tests and 2 min 11 s alone (Intel Xeon, 2 cores, 2026-12-01).
for project in "$diffusion_root"/tests/*/*.Tests.csproj; do
    dotnet test "$project" -c Release --no-build --nologo "$@" 2>&1 | tee -a "$log" || status=$?
done
# One plain summary line over every test assembly: "tests: N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i ~ /^Failed:/) f += $(i+1); if ($i ~ /^Passed:/) p += $(i+1); if ($i ~ /^Skipped:/) s += $(i+1) } }
     END { gsub(",", "", p); printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit $status
