# Shared set-up for ./diffusion and ./test.sh (sourced, not run): installs what a fresh Debian 12 machine lacks,
# then builds. Everything it fetches lands in ignored folders; nothing it installs is committed.

diffusion_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '[diffusion] %s\n' "$*" >&2; }
die() { printf '[diffusion] error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages (as root, or through sudo); runs apt-get update once per call.
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: $*  — run: apt-get install -y $*"
        sudo="sudo"
    fi
    say "installing Debian packages: $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# The tools the runtime build needs: the .NET SDK (given) and the ONNX schema (python3-onnx); ONNX Runtime comes
# from NuGet (its CUDA build too, with DIFFUSION_BUILD_ARGS="-p:OrtGpu=true").
# With "tests": everything the trainer needs, Debian's chromium for the sample web app's page test, Open MPI
# (openmpi-bin, libopenmpi-dev) for the data-parallel training tests (train --processes N needs it too), and xz for
# the GPU bundle's test (runtime/gpu-bundle).
# With "trainer": the Fashion-MNIST data set (and Open MPI when a second argument "mpi" says the command asks for
# --processes N, N > 1); TorchSharp and libtorch come from NuGet on the first build (about
# 270 MB of packages, 600 MB unpacked). Where the system libstdc++ predates GCC 13 (Debian 12), also patchelf, g++
# and python3, which fix a copy of TorchSharp's native library (trainer/LibStdCxxCompat).
ensure_prerequisites() {
    command -v dotnet >/dev/null 2>&1 || die "the .NET SDK (10.0) is not installed: see https://learn.microsoft.com/dotnet/core/install/linux-debian"
    local missing=()
    [ -f /usr/lib/python3/dist-packages/onnx/onnx.proto ] || missing+=(python3-onnx)
    if [ "${1:-}" = tests ]; then
        command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the sample web page is checked in headless Chromium
        command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin libopenmpi-dev)  # data-parallel training's tests
        command -v xz >/dev/null 2>&1 || missing+=(xz-utils)  # the GPU bundle's test packs it into parts
    fi
    if [ "${1:-}" = trainer ] && [ "${2:-}" = mpi ]; then
        command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin libopenmpi-dev)
    fi
    if [ "${1:-}" = trainer ] || [ "${1:-}" = tests ]; then
        [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
        if ! libstdcxx_has GLIBCXX_3.4.32; then
            command -v patchelf >/dev/null 2>&1 || missing+=(patchelf)
            command -v g++ >/dev/null 2>&1 || missing+=(g++)
            command -v python3 >/dev/null 2>&1 || missing+=(python3)
        fi
    fi
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# The PyTorch twin of bench-train --compare on a fair footing: Debian's torch calls libblas.so.3, the reference BLAS
# (~40× slower matmuls) unless OpenBLAS provides it.
ensure_torch_twin() {
    local missing=()
    [ -f /usr/lib/python3/dist-packages/torch/__init__.py ] || missing+=(python3-torch)
    ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 \
        || ls /usr/lib/*/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# Prints "mpi" when the arguments ask for more than one training process (--processes N or --processes=N, N > 1).
needs_mpi() {
    local previous="" n
    for a in "$@"; do
        n=""
        case "$a" in --processes=*) n="${a#--processes=}" ;; esac
        [ "$previous" = --processes ] && n="$a"
        case "$n" in ''|*[!0-9]*) ;; *) [ "$n" -gt 1 ] && { echo mpi; return; } ;; esac
        previous="$a"
    done
}

# Whether the system's libstdc++ provides a symbol version, e.g. GLIBCXX_3.4.32 (GCC 13).
libstdcxx_has() {
    local lib
    lib="$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ { print $NF; exit }')"
    [ -n "$lib" ] || lib=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
    grep -qa "$1" "$lib" 2>/dev/null
}

# Builds a project or the solution (Release) when any source is newer than its last successful build.
build_solution() {
    local target="${1:-Diffusion.sln}" name
    name="$(basename "$target" | tr -c 'A-Za-z0-9.\n-' _)"
    local stamp="$diffusion_root/.build/stamp-$name"
    if [ -f "$stamp" ] && [ -z "$(find "$diffusion_root" \( -name .git -o -name bin -o -name obj -o -name .cache -o -name .build -o -name out \) -prune -o \
            -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' -o -name '*.targets' -o -name '*.sln' -o -name '*.cpp' -o -name '*.sh' -o -name '*.py' -o -path '*/models/*' \) -newer "$stamp" -print -quit)" ]; then
        return 0
    fi
    say "building (first use restores NuGet packages: ONNX Runtime, and for the trainer TorchSharp + libtorch; later builds are incremental)"
    mkdir -p "$diffusion_root/.build"
    local log="$diffusion_root/.build/build.log"
    if ! dotnet build "$diffusion_root/$target" -c Release --nologo -v quiet -tl:off ${DIFFUSION_BUILD_ARGS:-} >"$log" 2>&1; then
        grep -E 'error|Error' "$log" >&2 || cat "$log" >&2
        die "build failed (full log: $log)"
    fi
    touch "$stamp"
}
