#!/usr/bin/env bash
# Fetches the dashboard's chart library (uPlot, MIT) from the npm registry at
# the version pinned in dashboard/web/package.json and copies its built files
# and licence into dashboard/web/vendor/, which is committed and embedded in
# the binary: building fennec needs no npm, and the page fetches nothing at
# run time. Run it to update uPlot (change the pinned version first), then
# commit dashboard/web/vendor/.
#
#   scripts/dashboard-assets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*"uplot": *"\([^"]*\)".*/\1/p' dashboard/web/package.json)
[ -n "$version" ] || { echo "no uplot version in dashboard/web/package.json" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
out=dashboard/web/vendor
mkdir -p "$out"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$out/"
cp "$tmp/package/LICENSE" "$out/uPlot.LICENSE"
echo "uplot $version -> $out: $(cd "$out" && sha256sum uPlot.iife.min.js uPlot.min.css | tr '\n' ' ')"
