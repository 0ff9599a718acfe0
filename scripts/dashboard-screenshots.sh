#!/usr/bin/env bash
# Regenerates docs/dashboard.png (training view) and docs/dashboard-rollouts.png
# from a real `fennec demo --http` run, with Debian's headless chromium.
# Usage: scripts/dashboard-screenshots.sh [ADDR]   (default 127.0.0.1:18080)
set -euo pipefail
cd "$(dirname "$0")/.."
addr="${1:-127.0.0.1:18080}"
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$chrome" ] || { echo "needs chromium (apt-get install chromium)"; exit 1; }
bin=$(mktemp -d)/fennec
go build -o "$bin" ./cmd/fennec
out=$(mktemp)
"$bin" demo --http "$addr" >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q "dashboard still at" "$out" && break
  kill -0 $pid 2>/dev/null || { cat "$out"; exit 1; }
  sleep 1
done
grep -q "dashboard still at" "$out" || { echo "the demo did not finish in 10 minutes"; exit 1; }
shot() { # VIEW FILE
  "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1000 \
    --virtual-time-budget=4000 --screenshot="$2" "http://$addr/#$1" >/dev/null 2>&1
  echo "wrote $2"
}
shot training docs/dashboard.png
shot rollouts docs/dashboard-rollouts.png
