#!/usr/bin/env bash
# Load on a device's HTTP bindings with hey (Debian: apt-get install hey),
# from a second process: `fennec agent --device-config` serving
#   risk     POST /v1/modules/risk-infer/predict (the model in each request)
#   pipeline POST /v1/modules/vitals-preprocess/process, then risk-infer with
#            the model injected from a file (the worked case's binding)
# It finds each binding's saturation (closed loop, enough callers to keep it
# busy), then offers 50 %, 80 % and 200 % of that rate (open loop, hey -q),
# and prints throughput, p50/p99 of the answered calls and the status codes.
# With SOAK=SECONDS it then holds 80 % for that long and samples the agent's
# RSS every 30 s.
#
# Usage: scripts/serve-load.sh [SECONDS_PER_STEP]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-15}
soak=${SOAK:-0}
command -v hey >/dev/null || { echo "needs hey (apt-get install hey)"; exit 1; }
work=$(mktemp -d)
trap 'kill $agent 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/fennec" ./cmd/fennec
f="$work/fennec"
"$f" guests build --out "$work/mods" vitals-preprocess risk-infer >/dev/null
"$f" demo --devices 2 --rounds 2 --patients 6 --save-model "$work/risk.cbor" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/device.toml" <<TOML
device = "load"
[http]
listen = "127.0.0.1:$port"
[[module]]
name = "vitals-preprocess"
wasm = "mods/vitals-preprocess.wasm"
[[module]]
name = "risk-infer"
wasm = "mods/risk-infer.wasm"
[[binding]]
module = "risk-infer"
entry = "predict"
source = "http"
concurrency = 2
queue = 32
[[binding]]
module = "vitals-preprocess"
entry = "process"
source = "http"
concurrency = 2
queue = 32
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = "risk.cbor" }
TOML
(cd "$work" && exec "$f" agent --device-config device.toml) >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
# The request bodies: 16 readings (a monitor's batch) as JSON for the
# pipeline; for risk-infer alone, 16 records of its 14 features and the
# model, as CBOR.
python3 -c 'import cbor2' 2>/dev/null || python3 -m pip install -q cbor2
python3 - "$work" <<'PY'
import json, random, sys, cbor2
work = sys.argv[1]
random.seed(1)
recs = [{"patient": f"p{i%4}", "t": i*0.25, "hr": 70+random.random()*50, "sbp": 100+random.random()*40,
         "dbp": 60+random.random()*20, "spo2": 90+random.random()*9, "rr": 12+random.random()*14,
         "temp": 36+random.random()*2.5, "o2": i % 2, "acvpu": "A"} for i in range(16)]
open(work + "/pipeline.json", "w").write(json.dumps({"records": recs}))
keys = ["hr", "sbp", "dbp", "spo2", "rr", "temp", "glucose", "o2", "not_alert", "d_hr", "d_sbp", "d_spo2", "d_rr", "d_temp"]
feats = [dict({k: random.uniform(-2, 2) for k in keys}, patient=f"p{i}") for i in range(16)]
model = cbor2.load(open(work + "/risk.cbor", "rb"))
open(work + "/risk.cbor.req", "wb").write(cbor2.dumps({"model": model, "records": feats}))
PY
for req in "pipeline.json application/json /v1/modules/vitals-preprocess/process" "risk.cbor.req application/cbor /v1/modules/risk-infer/predict"; do
  set -- $req
  code=$(curl -s -o "$work/probe.out" -w '%{http_code}' -H "Content-Type: $2" --data-binary @"$work/$1" "http://127.0.0.1:$port$3")
  [ "$code" = 200 ] || { echo "$3 answered $code: $(head -c 300 "$work/probe.out")"; cat "$work/agent.log"; exit 1; }
done
run() { # NAME PATH CTYPE BODY ARGS...
  local name=$1 path=$2 ctype=$3 body=$4; shift 4
  hey "$@" -m POST -T "$ctype" -D "$body" "http://127.0.0.1:$port$path" >"$work/hey.out" 2>&1 || true
  local rps p50 p99 codes
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/hey.out")
  p50=$(awk '/ 50% in/ {print $3*1000}' "$work/hey.out")
  p99=$(awk '/ 99% in/ {print $3*1000}' "$work/hey.out")
  codes=$(awk '/Status code distribution/ {f=1; next} f && /\[/ {gsub(/[\[\]]/, ""); printf "%s:%s ", $1, $2} /Error distribution/ {f=0}' "$work/hey.out")
  errs=$(awk '/Error distribution/ {f=1; next} f && NF {n+=$1} END {print n+0}' "$work/hey.out")
  printf "%-9s %-12s %10s rps  p50 %7s ms  p99 %7s ms  codes %s transport errors %s\n" "$name" "$label" "$rps" "$p50" "$p99" "$codes" "$errs"
  last_rps=$rps
}
echo "machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for b in risk pipeline; do
  if [ $b = risk ]; then path=/v1/modules/risk-infer/predict; ct=application/cbor; body=$work/risk.cbor.req
  else path=/v1/modules/vitals-preprocess/process; ct=application/json; body=$work/pipeline.json; fi
  label=saturation; run $b $path $ct "$body" -z "${step}s" -c 8
  sat=${last_rps%.*}
  for pct in 50 80 200; do
    rate=$(( sat * pct / 100 ))
    # Open loop: enough callers that the offered rate does not wait on
    # answers; at 200 % more callers than concurrency + queue (34), so the
    # excess must be shed.
    workers=32; [ $pct -gt 100 ] && workers=128
    q=$(( (rate + workers - 1) / workers )); [ $q -lt 1 ] && q=1
    label="$pct% ($rate/s)"; run $b $path $ct "$body" -z "${step}s" -c $workers -q $q
  done
done
if [ "$soak" -gt 0 ]; then
  rate=$(( sat * 80 / 100 )); q=$(( (rate + 31) / 32 ))
  echo "soak: pipeline at 80 % ($rate/s) for ${soak}s; every 30 s the agent's RSS KiB / Go heap in use KiB / goroutines:"
  hey -z "${soak}s" -c 32 -q $q -m POST -T application/json -D "$work/pipeline.json" "http://127.0.0.1:$port/v1/modules/vitals-preprocess/process" >"$work/soak.out" 2>&1 &
  h=$!
  while kill -0 $h 2>/dev/null; do
    m=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^go_memstats_heap_inuse_bytes / {h=$2/1024} /^go_goroutines / {g=$2} END {printf "%d/%d", h, g}')
    printf "%s/%s " "$(awk '/VmRSS/ {print $2}' /proc/$agent/status)" "$m"; sleep 30
  done; echo
  awk '/Requests\/sec|Status code|\[[0-9]+\]/' "$work/soak.out"
fi
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^fennec_binding_shed_total|^fennec_module_calls_total' || true
