#!/usr/bin/env bash
# Load on a device's HTTP bindings with vegeta (go install
# github.com/tsenart/vegeta/v12@latest), from a second process: `fennec
# agent --device-config` serving
#   risk     POST /v1/modules/risk-infer/predict (the model in each request)
#   pipeline POST /v1/modules/vitals-preprocess/process, then risk-infer with
#            the model injected from a file (the worked case's binding)
# It finds each binding's saturation (closed loop: 8 callers, each sending
# its next request when the last is answered; the rate of 200 answers), then offers 50 %, 80 % and
# 200 % of that rate open loop (vegeta sends at a constant rate whatever the
# answers, adding callers as needed), and prints the answers per second, p50
# and p99 of the accepted (200) calls, the status codes, transport errors,
# and the p99 of all answers (429s included). The agent's own view follows
# each step: how long the accepted calls waited from the handler's start to
# their run slot (fennec_binding_admission_wait_seconds, p99 from the
# histogram's buckets).
# With SOAK=SECONDS it then holds 80 % for that long and samples the agent's
# RSS every 30 s.
#
# FENNEC=path measures that binary instead of building this tree (A/B
# against another branch).
#
# With PIN=1 the agent runs on CPU 1 and vegeta on CPU 0 (taskset), so
# that on a 2-core machine the client does not take the agent's core.
#
# Usage: scripts/serve-load.sh [SECONDS_PER_STEP]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-15}
soak=${SOAK:-0}
vegeta=$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")
[ -x "$vegeta" ] || { echo "needs vegeta (go install github.com/tsenart/vegeta/v12@latest)"; exit 1; }
work=$(mktemp -d)
trap 'kill $agent 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -n "${FENNEC:-}" ]; then f=$FENNEC; else go build -o "$work/fennec" ./cmd/fennec; f="$work/fennec"; fi
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
pin_agent=(); pin_client=()
if [ "${PIN:-0}" = 1 ]; then pin_agent=(taskset -c 1); pin_client=(taskset -c 0); fi
(cd "$work" && exec "${pin_agent[@]}" "$f" agent --device-config device.toml) >"$work/agent.log" 2>&1 &
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
run() { # NAME PATH CTYPE BODY ARGS... (vegeta attack flags)
  local name=$1 path=$2 ctype=$3 body=$4; shift 4
  local before; before=$(curl -s "http://127.0.0.1:$port/metrics" | grep '^fennec_binding_admission_wait_seconds_bucket' || true)
  echo "POST http://127.0.0.1:$port$path" | "${pin_client[@]}" "$vegeta" attack "$@" -header "Content-Type: $ctype" -body "$body" -timeout 30s >"$work/v.bin" 2>"$work/v.err" || true
  "$vegeta" encode --to csv "$work/v.bin" >"$work/v.csv"
  local after; after=$(curl -s "http://127.0.0.1:$port/metrics" | grep '^fennec_binding_admission_wait_seconds_bucket' || true)
  local line
  line=$(python3 - "$work/v.csv" "$name" "$label" "$before" "$after" <<'PY'
import csv, sys, collections, re
path, name, label, before, after = sys.argv[1:6]
codes, ok, every, t = collections.Counter(), [], [], []
errs = 0
for row in csv.reader(open(path)):
    ts, code, lat, err = int(row[0]), int(row[1]), int(row[2]) / 1e6, row[5]
    t.append(ts)
    if code == 0:
        errs += 1
        continue
    codes[code] += 1
    every.append(lat)
    if code == 200:
        ok.append(lat)
def q(v, p):
    if not v: return "-"
    v = sorted(v); return "%.1f" % v[min(len(v) - 1, int(p * len(v)))]
span = (max(t) - min(t)) / 1e9 if len(t) > 1 else 0
rps = "%.1f" % (sum(codes.values()) / span) if span else "-"
# The server's admission wait, this step's share of the cumulative buckets.
binding = {"risk": "risk-infer-predict-0", "pipeline": "vitals-preprocess-process-1"}[name]
def buckets(text):
    out = {}
    for l in text.splitlines():
        m = re.match(r'fennec_binding_admission_wait_seconds_bucket\{binding="([^"]+)",le="([^"]+)"\} (\S+)', l)
        if m and m.group(1) == binding:
            out[float(m.group(2))] = float(m.group(3))
    return out
b0, b1 = buckets(before), buckets(after)
d = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
srv = "-"
if d and d[-1][1] > 0:
    n = d[-1][1]
    srv = next(("%g" % (le * 1000) for le, c in d if c >= 0.99 * n), "-")
cs = " ".join("%d:%d" % kv for kv in sorted(codes.items()))
print("%-9s %-12s %10s rps  p50 %7s ms  p99 %7s ms  codes %s transport errors %d  (all answers p99 %s ms; server admission wait p99 <= %s ms)" % (
    name, label, rps, q(ok, .5), q(ok, .99), cs, errs, q(every, .99), srv))
PY
  )
  echo "${line}"
  # The rate of accepted (200) answers: a closed loop whose queue stands
  # gets fast 429s (overload), which are not the binding's capacity.
  last_rps=$(python3 -c 'import csv,sys; r=list(csv.reader(open(sys.argv[1]))); t=[int(x[0]) for x in r if x[1]!="0"]; ok=sum(1 for x in r if x[1]=="200"); print(max(1, int(ok/((max(t)-min(t))/1e9))) if len(t)>1 else 1)' "$work/v.csv")
}
echo "pinned (PIN): ${PIN:-0}; machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for b in risk pipeline; do
  if [ $b = risk ]; then path=/v1/modules/risk-infer/predict; ct=application/cbor; body=$work/risk.cbor.req
  else path=/v1/modules/vitals-preprocess/process; ct=application/json; body=$work/pipeline.json; fi
  label=saturation; run $b $path $ct "$body" -duration "${step}s" -rate 0 -workers 8 -max-workers 8
  sat=$last_rps
  for pct in 50 80 200; do
    rate=$(( sat * pct / 100 ))
    # Open loop: requests leave at a constant rate, evenly spaced, and
    # vegeta adds callers when the answers lag, so the offered rate does
    # not wait on the server; at 200 % the excess must be shed.
    label="$pct% ($rate/s)"; run $b $path $ct "$body" -duration "${step}s" -rate "$rate/1s"
  done
done
if [ "$soak" -gt 0 ]; then
  rate=$(( sat * 80 / 100 ))
  echo "soak: pipeline at 80 % ($rate/s) for ${soak}s; every 30 s the agent's RSS KiB / Go heap in use KiB / goroutines:"
  echo "POST http://127.0.0.1:$port/v1/modules/vitals-preprocess/process" | "$vegeta" attack -duration "${soak}s" -rate "$rate/1s" -header "Content-Type: application/json" -body "$work/pipeline.json" >"$work/soak.bin" 2>&1 &
  h=$!
  while kill -0 $h 2>/dev/null; do
    m=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^go_memstats_heap_inuse_bytes / {h=$2/1024} /^go_goroutines / {g=$2} END {printf "%d/%d", h, g}')
    printf "%s/%s " "$(awk '/VmRSS/ {print $2}' /proc/$agent/status)" "$m"; sleep 30
  done; echo
  "$vegeta" report "$work/soak.bin" | awk '/Requests|Latencies|Status Codes|Success/'
fi
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^fennec_binding_shed_total|^fennec_module_calls_total' || true
