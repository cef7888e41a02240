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
dotnet test "$diffusion_root/Diffusion.sln" -c Release --no-build --nologo "$@" 2>&1 | tee "$log" || status=$?
# One plain summary line over every test assembly: "tests: N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i ~ /^Failed:/) f += $(i+1); if ($i ~ /^Passed:/) p += $(i+1); if ($i ~ /^Skipped:/) s += $(i+1) } }
     END { gsub(",", "", p); printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit $status
