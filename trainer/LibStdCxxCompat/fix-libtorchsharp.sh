#!/usr/bin/env bash
# TorchSharp's libLibTorchSharp.so requires GLIBCXX_3.4.32 (GCC 13's libstdc++) for exactly one function,
# std::ios_base_library_init(). On systems whose libstdc++ lacks that version (Debian 12: GCC 12) this replaces the
# app folder's copy by a patched one: that version requirement marked weak, and a NEEDED entry for a tiny library of
# ours that defines the function. The patched pair is made once per input library into the cache folder; the NuGet
# package itself is never touched. Systems with GCC >= 13 need nothing, and nothing is done there.
#   fix-libtorchsharp.sh APP_FOLDER CACHE_FOLDER
set -euo pipefail
app="${1:?app folder}"
cache="${2:?cache folder}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
library="$app/libLibTorchSharp.so"
compat=libdiffusion_stdcxx_compat.so
[ -f "$library" ] || exit 0

libstdcxx="$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ { print $NF; exit }')"
[ -n "$libstdcxx" ] || libstdcxx=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
if grep -qa 'GLIBCXX_3\.4\.32' "$libstdcxx" 2>/dev/null; then exit 0; fi  # a new enough libstdc++: nothing to fix
if readelf -d "$library" 2>/dev/null | grep -q "$compat"; then exit 0; fi   # already the patched copy

for tool in patchelf g++ python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $library needs GLIBCXX_3.4.32, which $libstdcxx lacks; fixing a copy needs $tool: apt-get install patchelf g++ python3 (./diffusion and ./test.sh do this)" >&2; exit 1; }
done

key="$(sha256sum "$library" | cut -c1-16)"
fixed="$cache/libtorchsharp-compat/$key"
if [ ! -f "$fixed/libLibTorchSharp.so" ]; then
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/libtorchsharp-compat.tmp-XXXXXX")"
    chmod 755 "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    g++ -std=c++17 -O2 -shared -fPIC -Wl,-soname,$compat -o "$tmp/$compat" "$here/ios_base_library_init.cpp"
    cp "$library" "$tmp/libLibTorchSharp.so"
    python3 "$here/weaken_version.py" "$tmp/libLibTorchSharp.so" GLIBCXX_3.4.32
    patchelf --add-needed $compat "$tmp/libLibTorchSharp.so"
    mkdir -p "$(dirname "$fixed")"
    mv -T "$tmp" "$fixed" 2>/dev/null || true   # a concurrent build may have won the race; its copy is as good
    trap - EXIT
    rm -rf "$tmp"
fi
# Replace, never overwrite in place: the app folder's file may be a hard link into the NuGet cache.
for file in libLibTorchSharp.so $compat; do
    rm -f "$app/$file"
    cp "$fixed/$file" "$app/$file"
done
