#!/usr/bin/env bash
# Builds the trainer of an earlier commit in a git worktree, for `./diffusion bench-train --compare --previous DLL`.
# The default commit is the last one whose trainer ran on Debian's libtorch 1.13 through the C shim; building it
# needs what it needed then: apt-get install libtorch-dev cmake g++ npm. Prints the path of its diffusion-trainer.dll.
#   trainer/bench/build-previous.sh [COMMIT] [FOLDER]
set -euo pipefail
commit="${1:-98a622a}"
folder="${2:-${TMPDIR:-/tmp}/diffusion-previous-$commit}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ ! -d "$folder" ]; then
    git -C "$root" worktree add --detach "$folder" "$commit" >&2
fi
dotnet build "$folder/trainer/Diffusion.Trainer/Diffusion.Trainer.csproj" -c Release --nologo -v quiet >&2
echo "$folder/trainer/Diffusion.Trainer/bin/Release/net10.0/diffusion-trainer.dll"
