#!/usr/bin/env bash
# Load on a device's NATS and MQTT bindings from a second process
# (internal/loadgen): `fennec agent --device-config` serving
#   nats  request-reply on score.risk: risk-infer alone, 16 records and the
#         model in each CBOR request
#   mqtt  one reading per MQTT publish on vitals/bed/N (QoS 1, as fennec
#         vitals --publish sends them; N and the patient id are the
#         message's sequence number, so results can be matched and each
#         bed's carried state holds one patient, as on a ward):
#         vitals-preprocess then risk-infer with the model injected from a
#         file, state carried per bed; the score is published on
#         alerts.{device}.N and matched to its reading
# It finds each binding's saturation (closed loop), then offers
# 50 %, 80 % and 200 % of that rate (open loop, evenly spaced), and prints
# throughput, p50/p99 of the answered messages and the outcomes (nats: 429 =
# shed with a reply; mqtt: missing = shed silently or lost), then the
# binding's shed counters.
#
# FENNEC=path measures that binary instead of building this tree (A/B);
# BINDINGS="mqtt" runs only those of nats and mqtt; with PIN=1 the agent
# runs on CPU 1 and the load client on CPU 0 (taskset), so that on a 2-core
# machine the two do not take each other's core.
#
# Usage: scripts/serve-load-mq.sh [SECONDS_PER_STEP]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-15}
work=$(mktemp -d)
agent=
trap '[ -n "$agent" ] && kill $agent 2>/dev/null; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp "$work/agent.log" "$KEEP"; rm -rf "$work"' EXIT
if [ -n "${FENNEC:-}" ]; then f=$FENNEC; else go build -o "$work/fennec" ./cmd/fennec; f="$work/fennec"; fi
go build -o "$work/loadgen" ./internal/loadgen
"$f" guests build --out "$work/mods" vitals-preprocess risk-infer >/dev/null
"$f" demo --devices 2 --rounds 2 --patients 6 --save-model "$work/risk.cbor" >/dev/null
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nport=$(free); mport=$(free); hport=$(free)
cat >"$work/device.toml" <<TOML
device = "load"
[http]
listen = "127.0.0.1:$hport"
[nats]
listen = "127.0.0.1:$nport"
dir = "state/nats"
[mqtt]
listen = "127.0.0.1:$mport"
[[module]]
name = "vitals-preprocess"
wasm = "mods/vitals-preprocess.wasm"
[[module]]
name = "risk-infer"
wasm = "mods/risk-infer.wasm"
[[binding]]
name = "risk"
module = "risk-infer"
entry = "predict"
source = "nats"
subject = "score.risk"
concurrency = 2
queue = 32
[[binding]]
name = "bedside"
module = "vitals-preprocess"
entry = "process"
source = "mqtt"
topic = "vitals/bed/+"
format = "json"
concurrency = 2
queue = 32
publish = "alerts.{device}.{3}"
carry = "state"
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = "risk.cbor" }
TOML
pin_agent=(); pin_client=()
if [ "${PIN:-0}" = 1 ]; then pin_agent=(taskset -c 1); pin_client=(taskset -c 0); fi
(cd "$work" && exec "${pin_agent[@]}" "$f" agent --device-config device.toml) >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null || { echo "the agent did not get ready:"; cat "$work/agent.log"; exit 1; }
python3 -c 'import cbor2' 2>/dev/null || python3 -m pip install -q cbor2
python3 - "$work" <<'PY'
import json, random, sys, cbor2
work = sys.argv[1]
random.seed(1)
keys = ["hr", "sbp", "dbp", "spo2", "rr", "temp", "glucose", "o2", "not_alert", "d_hr", "d_sbp", "d_spo2", "d_rr", "d_temp"]
feats = [dict({k: random.uniform(-2, 2) for k in keys}, patient=f"p{i}") for i in range(16)]
model = cbor2.load(open(work + "/risk.cbor", "rb"))
open(work + "/risk.cbor.req", "wb").write(cbor2.dumps({"model": model, "records": feats}))
# One reading, as a monitor publishes it; the patient id carries the
# sequence number the results are matched by.
rec = {"patient": "L{seq}", "t": 0.5, "hr": 96, "sbp": 118, "dbp": 74, "spo2": 95, "rr": 20,
       "temp": 37.4, "o2": 0, "acvpu": "A"}
open(work + "/reading.json", "w").write(json.dumps({"records": [rec]}))
PY
lg() { "${pin_client[@]}" "$work/loadgen" "$@"; }
nurl=nats://127.0.0.1:$nport
echo "pinned (PIN): ${PIN:-0}; machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# A probe of each, so a broken setup fails here and not as zero throughput.
lg -mode nats -url $nurl -subject score.risk -body "$work/risk.cbor.req" -conc 1 -duration 1s -label probe-nats | grep -q ' ok:' ||
  { echo "score.risk did not answer"; tail -20 "$work/agent.log"; exit 1; }
lg -mode mqtt -mqtt tcp://127.0.0.1:$mport -url $nurl -topic 'vitals/bed/{seq}' -results 'alerts.load.*' -body "$work/reading.json" -conc 1 -duration 1s -label probe-mqtt | grep -q ' ok:' ||
  { echo "vitals/bed/7 gave no alert"; tail -20 "$work/agent.log"; exit 1; }
for b in ${BINDINGS:-nats mqtt}; do
  if [ $b = nats ]; then args=(-mode nats -url $nurl -subject score.risk -body "$work/risk.cbor.req")
  else args=(-mode mqtt -qos "${QOS:-1}" -mqtt tcp://127.0.0.1:$mport -url $nurl -topic 'vitals/bed/{seq}' -results 'alerts.load.*' -body "$work/reading.json"); fi
  # Closed loop: 8 callers for request-reply; 32 for MQTT, whose QoS 1
  # caller also waits for the PUBACK (nats-server writes a QoS 1 message to
  # its MQTT stream first; the agent keeps that stream in memory), so 8
  # would measure the PUBACK, not the binding. Both stay within the
  # binding's concurrency + queue (34).
  conc=8; [ $b = mqtt ] && conc=32
  out=$(lg "${args[@]}" -conc $conc -duration "${step}s" -label "$b saturation")
  echo "$out"
  sat=$(echo "$out" | sed -E 's/.*answered ([0-9]+)\/s.*/\1/')
  for pct in 50 80 200; do
    rate=$(( sat * pct / 100 ))
    lg "${args[@]}" -rate $rate -duration "${step}s" -label "$b $pct% ($rate/s)"
  done
done
curl -s "http://127.0.0.1:$hport/metrics" | grep -E '^fennec_binding_(shed|dropped)_total|^fennec_module_calls_total' || true
