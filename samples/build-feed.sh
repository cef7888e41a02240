#!/usr/bin/env bash
# Packs the libraries (Diffusion.Runtime, Diffusion.Evaluation, Diffusion.ReferenceModels, Diffusion.OnnxGraph) into
# samples/feed/ as version 0.1.0-local.<timestamp>, then restores and builds the samples against that feed.
#   samples/build-feed.sh            (./test.sh runs it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
version="0.1.0-local.$(date -u +%Y%m%d%H%M%S)"
tmp="$(mktemp -d "$here/.feed.tmp-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
dotnet pack "$root/Diffusion.sln" -c Release --nologo -v quiet -p:Version="$version" -o "$tmp" >"$tmp/pack.log" 2>&1 || { cat "$tmp/pack.log" >&2; exit 1; }
rm -f "$tmp/pack.log"
printf '<Project>\n  <PropertyGroup>\n    <DiffusionPackageVersion>%s</DiffusionPackageVersion>\n  </PropertyGroup>\n</Project>\n' "$version" >"$tmp/version.props"
rm -rf "$here/feed"   # each pack has its own version, so the NuGet cache never serves a stale one
mv "$tmp" "$here/feed"
trap - EXIT
for app in ConsoleApp WebApp; do
    dotnet build "$here/$app/$app.csproj" -c Release --nologo -v quiet >"$here/feed/build-$app.log" 2>&1 || { cat "$here/feed/build-$app.log" >&2; exit 1; }
done
echo "samples/feed: Diffusion.* $version; samples built"
