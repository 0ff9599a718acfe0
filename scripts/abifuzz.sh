#!/usr/bin/env bash
# Runs the guest-driven ABI fuzzer (internal/abifuzz, FuzzABI) for a given
# time and prints a summary: executions by outcome and crashers (inputs that
# broke a sandbox guarantee). The Go fuzzing engine writes crashers to
# internal/abifuzz/testdata/fuzz/FuzzABI/; a host call that never returns
# kills its worker, and the harness saves that input to $FENNEC_ABIFUZZ_HANGS
# (default $TMPDIR/fennec-abifuzz-hangs) first.
#
#   scripts/abifuzz.sh [DURATION] [PARALLEL]     e.g. scripts/abifuzz.sh 10m 2
#
# DURATION defaults to 10m (issue #15's run), PARALLEL (fuzzing worker
# processes) to 1. FENNEC_ABIFUZZ_IGNORE="s1;s2" passes over findings whose
# "kind: message" contains one of the strings, and programs whose listing
# contains a string given as "prog:STRING" are not run at all (to explore
# past known bugs, hangs included). The full log is kept in $ABIFUZZ_LOG (default
# /tmp/abifuzz.log). Exit status: 0 with no crasher, 1 with one.
set -u
cd "$(dirname "$0")/.."
dur=${1:-10m}
par=${2:-1}
log=${ABIFUZZ_LOG:-/tmp/abifuzz.log}
dir=internal/abifuzz/testdata/fuzz/FuzzABI
hangs=${FENNEC_ABIFUZZ_HANGS:-${TMPDIR:-/tmp}/fennec-abifuzz-hangs}
stats=$(mktemp -d)
trap 'rm -rf "$stats"' EXIT
export FENNEC_ABIFUZZ_STATS=$stats FENNEC_ABIFUZZ_HANGS=$hangs
list() { ls "$1" 2>/dev/null | grep -v '\.txt$' | sort; }
before=$(list "$dir")
hbefore=$(list "$hangs")
start=$(date +%s)
cmd="go test -run '^\$' -fuzz '^FuzzABI\$' -fuzztime $dur -parallel $par ./internal/abifuzz"
echo "abifuzz: $cmd (log: $log)"
go test -run '^$' -fuzz '^FuzzABI$' -fuzztime "$dur" -parallel "$par" ./internal/abifuzz >"$log" 2>&1
rc=$?
end=$(date +%s)
new=$(comm -13 <(printf '%s\n' "$before") <(list "$dir") | sed '/^$/d')
hnew=$(comm -13 <(printf '%s\n' "$hbefore") <(list "$hangs") | sed '/^$/d')
sums=$(cat "$stats"/abifuzz.* 2>/dev/null | awk '{s[$1]+=$2} END {printf "execs %d (ok %d, guest trap %d, deadline %d, violations incl. passed-over %d)", s["execs"], s["ok"], s["trap"], s["deadline"], s["violations"]}')
echo "abifuzz: ran $((end - start))s, go test exit status $rc"
echo "abifuzz: ${sums:-no executions recorded}"
echo "abifuzz: the engine's last line: $(grep -E '^fuzz: elapsed: ' "$log" | tail -1)"
if ls "$stats"/violations.* >/dev/null 2>&1; then
	echo "abifuzz: violations seen (passed over or failing), first lines:"
	grep -h -E '^abifuzz: ' "$stats"/violations.* | sort | uniq -c | sort -rn | head -20
fi
found=0
for f in $new; do
	found=1
	echo "abifuzz: crasher $dir/$f (rerun: go test -run 'FuzzABI/$f' ./internal/abifuzz)"
done
for f in $hnew; do
	found=1
	echo "abifuzz: hang $hangs/$f (listing and stacks in $hangs/$f.txt; rerun: copy it to $dir/)"
	sed -n '1,/^$/p' "$hangs/$f.txt" | head -40
done
if [ $found = 1 ]; then
	echo "abifuzz: the failure as the log has it:"
	grep -E -A30 -- '--- FAIL' "$log" | head -50
	exit 1
fi
if [ $rc -ne 0 ]; then
	echo "abifuzz: go test failed without a crasher:"
	tail -30 "$log"
	exit 1
fi
echo "abifuzz: no crashers"
