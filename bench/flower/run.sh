#!/usr/bin/env bash
# Side-by-side benchmarks against the Python tools this field uses, run by
# hand (not by CI): `bench/flower/run.sh [opacus] [flower]` (both when none).
#
#   opacus  epsilon of Opacus's RDPAccountant over a grid of DP-SGD
#           parameters -> privacy/dp/testdata/opacus_rdp.json, then
#           TestOpacusTable compares ours with it.
#   flower  the WDBC federated experiment in Flower and in fennec
#           (bench/flower/README.md).
#
# It makes a virtual environment in $FENNEC_BENCH_VENV (default
# /tmp/fennec-bench-venv) and installs opacus (without torch: see
# opacus_eps.py), numpy, scipy and flwr from PyPI; where PyPI cannot be
# reached it says so and exits 0 without running anything.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=("$@")
[ ${#what[@]} -eq 0 ] && what=(opacus flower)
venv=${FENNEC_BENCH_VENV:-/tmp/fennec-bench-venv}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c 'import numpy, scipy, flwr, opacus' 2>/dev/null; then
  if ! timeout 20 "$py" -m pip download --no-deps -q -d "$(mktemp -d)" six >/dev/null 2>&1; then
    echo "bench/flower: skipped: PyPI is not reachable from here (needed for flwr, opacus, numpy, scipy)"
    exit 0
  fi
  "$py" -m pip install -q numpy scipy "flwr==1.42.0"
  # Opacus without torch: only its accountant is used, which needs numpy and scipy.
  "$py" -m pip install -q --no-deps "opacus==1.6.0"
fi

for w in "${what[@]}"; do
  case "$w" in
  opacus)
    echo "== Opacus RDPAccountant vs privacy/dp"
    "$py" bench/flower/opacus_eps.py privacy/dp/testdata/opacus_rdp.json
    go test -count=1 -run TestOpacusTable -v ./privacy/dp | grep -E 'opacus|PASS|FAIL|ok'
    ;;
  flower)
    echo "== Flower vs fennec on WDBC"
    "$py" bench/flower/compare.py --fennec-args=--keep-warm
    ;;
  *)
    echo "unknown part $w (want opacus or flower)" >&2; exit 2 ;;
  esac
done
