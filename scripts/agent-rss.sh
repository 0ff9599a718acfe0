#!/usr/bin/env bash
# The agent's resident memory idle with two modules loaded (issue #12 goal:
# under 64 MB): `fennec agent --device-config` serving vitals-preprocess and
# risk-infer over HTTP, one call to each so that both are compiled and warm,
# then VmRSS/VmHWM from /proc every SAMPLE seconds (default 5), N times
# (default 6).
#
# With SMAPS=1 it then prints the largest mappings by Rss (where it goes).
#
# Usage: scripts/agent-rss.sh   (env: SAMPLE, N, SMAPS, GOGC/GOMEMLIMIT passed through)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $agent 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/fennec" ./cmd/fennec
f="$work/fennec"
"$f" guests build --out "$work/mods" vitals-preprocess risk-infer >/dev/null
"$f" demo --devices 2 --rounds 2 --patients 6 --save-model "$work/risk.cbor" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/device.toml" <<TOML
device = "rss"
[http]
listen = "127.0.0.1:$port"
[[module]]
name = "vitals-preprocess"
wasm = "mods/vitals-preprocess.wasm"
[[module]]
name = "risk-infer"
wasm = "mods/risk-infer.wasm"
[[binding]]
module = "vitals-preprocess"
entry = "process"
source = "http"
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = "risk.cbor" }
TOML
(cd "$work" && exec "$f" agent --device-config device.toml) >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
echo '{"records":[{"patient":"p1","t":0,"hr":80,"sbp":120,"dbp":70,"spo2":97,"rr":16,"temp":37,"o2":0,"acvpu":"A"}]}' >"$work/r.json"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$work/r.json" "http://127.0.0.1:$port/v1/modules/vitals-preprocess/process")
[ "$code" = 200 ] || { echo "probe call answered $code"; cat "$work/agent.log"; exit 1; }
echo "machine: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); GOGC=${GOGC:-} GOMEMLIMIT=${GOMEMLIMIT:-}"
for _ in $(seq "${N:-6}"); do
  sleep "${SAMPLE:-5}"
  awk '/VmRSS|VmHWM/ {printf "%s %s kB  ", $1, $2} END {print ""}' /proc/$agent/status
done
if [ "${SMAPS:-0}" = 1 ]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name=($6 == "" ? "[anon]" : $6)} /^Rss:/ {rss[name]+=$2} END {for (n in rss) printf "%8d kB  %s\n", rss[n], n}' /proc/$agent/smaps | sort -rn | head -8
fi
