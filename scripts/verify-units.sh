#!/usr/bin/env bash
# Verifies the systemd units in dist/systemd with systemd-analyze verify,
# against a freshly built fennec binary (verify checks that ExecStart's
# binary exists). Skips, saying so, where systemd-analyze is missing
# (apt-get install systemd; .ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not found (apt-get install systemd)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/fennec" ./cmd/fennec
for u in dist/systemd/*.service; do
  sed "s|/usr/local/bin/fennec|$tmp/fennec|" "$u" > "$tmp/$(basename "$u")"
done
systemd-analyze verify "$tmp"/*.service
echo "ok: $(ls dist/systemd/*.service | tr '\n' ' ')"
