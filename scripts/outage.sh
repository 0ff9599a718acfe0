#!/usr/bin/env bash
# The hub killed (kill -9) under steady MQTT traffic (issue #12): real
# processes, all on loopback.
#   fennec hub --access --leaf-listen   the hub, its store in a directory
#   fennec agent --leaf --device-config the device: its own leaf node (the
#       outbox) carrying an MQTT binding that scores each reading
#       (vitals-preprocess then risk-infer, the worked case) and publishes
#       the score on alerts.ward3.7, an outbox subject
#   fennec vitals --publish mqtt://...  a bedside monitor, RATE readings/s
# After WARM seconds it kill -9s the hub, waits OUTAGE seconds, restarts
# the hub on the same store, publishes TAIL seconds more, stops the
# monitor and waits for the outbox to drain; then it stops the hub and
# counts the hub's uplink offline (scripts/uplinkcount: each message is
# identified by the outbox sequence its source header names). It prints
# the counts and the agent's RSS before, during and after the outage, and
# exits 1 if a reading was not scored, or a scored one is lost or arrives
# twice at the hub.
#
# Usage: OUTAGE=300 RATE=20 scripts/outage.sh   (env: OUTAGE s, RATE/s, WARM s, TAIL s)
set -euo pipefail
cd "$(dirname "$0")/.."
outage=${OUTAGE:-300}
rate=${RATE:-20}
warm=${WARM:-30}
tail_s=${TAIL:-30}
for t in go python3 curl; do command -v $t >/dev/null || { echo "outage.sh needs $t"; exit 2; }; done
work=$(mktemp -d)
hub="" agent="" pub=""
cleanup() {
  for p in $pub $agent $hub; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
go build -o "$work/fennec" ./cmd/fennec
go build -o "$work/uplinkcount" ./scripts/uplinkcount
f="$work/fennec"
cd "$work"
"$f" guests build --out mods vitals-preprocess risk-infer risk-train >/dev/null
"$f" demo --devices 2 --rounds 2 --patients 6 --save-model risk.cbor >/dev/null
# Five free ports below the kernel's ephemeral range: the hub restarts on
# the same ones, and during the outage an outgoing connection of any
# process on this machine could take a free ephemeral port (it did, once).
read -r hubport leafport mqttport httpport dashport < <(python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < 5:
    p = random.randrange(20000, min(lo, 32768))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    if p not in ports:
        ports.append(p)
print(*ports)
PY
)
{
  echo '[[operator]]'; echo 'name = "ops"'; "$f" deploy nkey creds/ops.nk | grep '^nkey'
  echo; echo '[[device]]'; echo 'id = "ward3"'; echo 'group = "ward"'; "$f" deploy nkey creds/ward3.nk | grep '^nkey'
} >access.toml
python3 -c '
import random; random.seed(3)
for n in range(60): print(",".join(f"{random.uniform(-1,1):.2f}" for _ in range(7)) + f",{n%2}")' >ward3.csv
start_hub() {
  "$f" hub --data hub --access access.toml --listen 127.0.0.1:$hubport --leaf-listen 127.0.0.1:$leafport \
    --http 127.0.0.1:$dashport --init-mlp 7,8,1 --min-devices 1 --rounds 1 --deadline 10s >>hub.log 2>&1 &
  hub=$!
  for _ in $(seq 300); do
    [ "$(grep -c '^access control on' hub.log)" -ge "$1" ] && return 0
    kill -0 $hub 2>/dev/null || break
    sleep 0.2
  done
  echo "the hub did not start (start $1):"; tail -20 hub.log; exit 1
}
start_hub 1
"$f" hub creds --secret hub/fleet.secret --id ward3 >ward3.creds
# The hub's own count of what it stored from the outbox (the dashboard's
# uplink_delivered: the last outbox sequence in its uplink stream).
token=$("$f" hub token --nkey creds/ops.nk --operator ops --ttl 2h)
stored() {
  curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$dashport/api/v1/devices/ward3" |
    python3 -c 'import json, sys
try: print(json.load(sys.stdin).get("uplink_delivered", 0))
except Exception: print(0)'
}
cat >device.toml <<TOML
device = "ward3"
[http]
listen = "127.0.0.1:$httpport"
[mqtt]
listen = "127.0.0.1:$mqttport"
[[module]]
name = "vitals-preprocess"
wasm = "mods/vitals-preprocess.wasm"
[[module]]
name = "risk-infer"
wasm = "mods/risk-infer.wasm"
[[binding]]
name = "bedside"
module = "vitals-preprocess"
entry = "process"
source = "mqtt"
topic = "vitals/bed/+"
format = "json"
queue = 256
publish = "alerts.{device}.{3}"
carry = "state"
  [[binding.then]]
  module = "risk-infer"
  entry = "predict"
  inject = { model = "risk.cbor" }
TOML
"$f" agent --leaf nats-leaf://127.0.0.1:$leafport --leaf-dir leaf --creds ward3.creds --nkey creds/ward3.nk \
  --module mods/risk-train.wasm --data ward3.csv --device-config device.toml >agent.log 2>&1 &
agent=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$httpport/readyz" >/dev/null && break; kill -0 $agent 2>/dev/null || break; sleep 0.2; done
curl -sf "http://127.0.0.1:$httpport/readyz" >/dev/null || { echo "the agent did not start:"; tail -20 agent.log; exit 1; }
metric() { # NAME [LABEL-MATCH]: the sum of the series of NAME (whose labels match)
  curl -s "http://127.0.0.1:$httpport/metrics" | awk -v n="$1" -v m="${2:-}" '$1 ~ "^"n"($|\\{)" && index($1, m) {s += $2} END {printf "%d", s}'
}
scored() { metric fennec_module_calls_total 'module="risk-infer",outcome="ok"'; }
rss() { awk '/VmRSS/ {print $2}' /proc/$agent/status; }
# The monitor publishes until stopped: a stay long enough that no reading
# repeats (40 patients, 48 h).
"$f" vitals --patients 40 --hours 48 --publish "mqtt://127.0.0.1:$mqttport/vitals/bed/7" --rate "$rate" \
  --duration $((warm + outage + tail_s + 600))s >pub.log 2>&1 &
pub=$!
echo "machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "hub kill -9 for ${outage}s under $rate readings/s over MQTT (warm-up ${warm}s, ${tail_s}s after the restart)"
sleep "$warm"
rss_before=$(rss) scored_kill=$(scored) pending_kill=$(metric fennec_leaf_outbox_pending_messages)
kill -9 $hub; wait $hub 2>/dev/null || true
t_kill=$(date +%s)
echo "$(date -u +%T) hub killed; scored so far $scored_kill, outbox pending $pending_kill; agent RSS $rss_before KiB"
rss_during="" pending_max=0
while [ $(( $(date +%s) - t_kill )) -lt "$outage" ]; do
  sleep $(( outage < 30 ? outage : 30 ))
  r=$(rss) p=$(metric fennec_leaf_outbox_pending_messages)
  rss_during="$rss_during $r"; [ "$p" -gt "$pending_max" ] && pending_max=$p
  echo "$(date -u +%T) hub down $(( $(date +%s) - t_kill ))s: scored $(scored), outbox pending $p, hub connected $(metric fennec_leaf_hub_connected), RSS $r KiB"
done
scored_restart=$(scored) pending_restart=$(metric fennec_leaf_outbox_pending_messages)
t0=$(date +%s.%N)
start_hub 2
echo "$(date -u +%T) hub restarted on its store in $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")s; $pending_restart messages were pending"
sleep "$tail_s"
kill -INT $pub; wait $pub 2>/dev/null || true; pub=""
published=$(awk '/^published/ {print $2}' pub.log)
[ -n "$published" ] || { echo "the monitor did not finish:"; cat pub.log; exit 1; }
# Drain: every reading answered (scored, or refused and counted), nothing
# pending on the device (sent to the hub), everything stored at the hub.
answered() { echo $(( $(scored) + $(metric fennec_binding_shed_total) + $(metric fennec_binding_rejected_total) + $(metric fennec_module_calls_total 'outcome="error"') )); }
t0=$(date +%s)
sent_at=""
until [ "$(answered)" -ge "$published" ] && [ "$(metric fennec_leaf_outbox_pending_messages)" = 0 ] &&
  [ "$(stored)" -ge "$(metric fennec_leaf_outbox_messages)" ]; do
  [ -z "$sent_at" ] && [ "$(answered)" -ge "$published" ] && [ "$(metric fennec_leaf_outbox_pending_messages)" = 0 ] && sent_at=$(( $(date +%s) - t0 ))
  el=$(( $(date +%s) - t0 ))
  [ $el -gt 300 ] && { echo "the outbox did not drain in 300 s"; break; }
  kill -0 $hub 2>/dev/null || { echo "the hub ended:"; tail -5 hub.log; exit 1; }
  [ $((el % 10)) = 0 ] && echo "$(date -u +%T) draining: answered $(answered) of $published, outbox pending $(metric fennec_leaf_outbox_pending_messages), stored at the hub $(stored) of $(metric fennec_leaf_outbox_messages), hub connected $(metric fennec_leaf_hub_connected)"
  sleep 1
done
drain=$(( $(date +%s) - t0 ))
sleep 5 # the hub stores what it was sent
scored_end=$(scored) rss_after=$(rss)
failed=$(metric fennec_module_calls_total 'outcome="error"')
shed=$(metric fennec_binding_shed_total) rejected=$(metric fennec_binding_rejected_total)
sent=$(metric fennec_binding_published_total)
outbox=$(metric fennec_leaf_outbox_messages) olost=$(metric fennec_leaf_outbox_lost_total)
kill -TERM $hub; wait $hub 2>/dev/null || true; hub=""
read -r counts < <(./uplinkcount -store hub -device ward3 -want "$outbox")
eval "$counts" # messages unique duplicates max_seq missing first_missing
rss_min=$(tr ' ' '\n' <<<"$rss_during" | grep . | sort -n | head -1)
rss_max=$(tr ' ' '\n' <<<"$rss_during" | grep . | sort -n | tail -1)
echo
printf "%-52s %s\n" "readings published (MQTT QoS 1, acknowledged)" "$published" \
  "scored by the device (risk-infer ok)" "$scored_end" \
  "  of which while the hub was down" "$((scored_restart - scored_kill))" \
  "module errors / shed / rejected" "$failed / $shed / $rejected" \
  "scores published by the binding" "$sent" \
  "outbox messages (pending at kill / restart)" "$outbox ($pending_kill / $pending_restart)" \
  "outbox lost to its limits" "$olost" \
  "hub uplink: messages / unique outbox ids" "$messages / $unique" \
  "lost (outbox ids that never reached the hub)" "$missing" \
  "duplicates (ids stored twice)" "$duplicates" \
  "after the restart: outbox pending 0 / all stored (s)" "${sent_at:-$drain} / $drain" \
  "agent RSS KiB before / during (min-max) / after" "$rss_before / $rss_min-$rss_max / $rss_after"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
ok=1
[ "$((scored_end + shed + rejected + failed))" = "$published" ] || { echo "FAIL: $published readings published, $scored_end scored and $((shed + rejected + failed)) refused: the others were never answered"; ok=0; }
[ "$((shed + rejected + failed))" = 0 ] || { echo "FAIL: $shed readings shed (the binding's queue was full: the device did not keep up), $rejected rejected, $failed failed"; ok=0; }
[ "$sent" = "$scored_end" ] && [ "$outbox" = "$sent" ] || { echo "FAIL: $scored_end scored, $sent published by the binding, $outbox in the outbox"; ok=0; }
[ "$missing" = 0 ] && [ "$olost" = 0 ] || { echo "FAIL: $missing outbox messages never reached the hub (first: id $first_missing), $olost dropped by the outbox"; ok=0; }
[ "$duplicates" = 0 ] || { echo "FAIL: $duplicates duplicates at the hub"; ok=0; }
[ "$((scored_restart - scored_kill))" -gt 0 ] || { echo "FAIL: the device scored nothing while the hub was down"; ok=0; }
[ $ok = 1 ] && echo "PASS: nothing lost, nothing duplicated" || { tail -20 agent.log; exit 1; }
