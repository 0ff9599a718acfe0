#!/usr/bin/env bash
# The agent's resident memory idle with two modules loaded (issue #12 goal:
# under 64 MB): `fennec agent --device-config` serving vitals-preprocess and
# risk-infer over HTTP, one call to each so that both are compiled and warm,
# then VmRSS/VmHWM from /proc every SAMPLE seconds (default 5), N times
# (default 12: the modules' warm instances are closed after 30 s idle,
# [[module]] idle_timeout), then the first call after that idle time
# (curl's time_total, against the next call's).
#
# With SMAPS=1 it then prints the largest mappings by Rss (where it goes) and
# the Go runtime's heap figures from /metrics. FENNEC=path measures that
# binary instead of building this tree (A/B against another branch).
#
# Usage: scripts/agent-rss.sh   (env: SAMPLE, N, SMAPS, FENNEC, GOGC/GOMEMLIMIT passed through)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $agent 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -n "${FENNEC:-}" ]; then f=$FENNEC; else go build -o "$work/fennec" ./cmd/fennec; f="$work/fennec"; fi
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
t0=$(date +%s)
for _ in $(seq "${N:-12}"); do
  sleep "${SAMPLE:-5}"
  printf "%3ds  " $(( $(date +%s) - t0 ))
  awk '/VmRSS|VmHWM|RssAnon|RssFile/ {printf "%s %s kB  ", $1, $2} END {print ""}' /proc/$agent/status
done
if [ "${SMAPS:-0}" = 1 ]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name=($6 == "" ? "[anon " $2 "]" : $6)} /^Rss:/ {rss[name]+=$2} END {for (n in rss) printf "%8d kB  %s\n", rss[n], n}' /proc/$agent/smaps | sort -rn | head -8
  curl -s "http://127.0.0.1:$port/metrics" | awk '/^go_memstats_(heap_alloc|heap_inuse|heap_released|heap_sys|stack_inuse|sys)_bytes|^fennec_module_pool_idle|^fennec_module_instantiations/ {printf "%s %.1f%s\n", $1, ($2 > 1e5 ? $2/1e6 : $2), ($2 > 1e5 ? " MB" : "")}'
fi
call() { curl -s -o /dev/null -w '%{http_code} %{time_total}' -H 'Content-Type: application/json' --data-binary @"$work/r.json" "http://127.0.0.1:$port/v1/modules/vitals-preprocess/process"; }
first=$(call); second=$(call)
echo "first call after idle: ${first#* } s (code ${first% *}); the next: ${second#* } s"
