#!/usr/bin/env bash
# GPU check for the CUDA backend (issue #7): build with -tags cuda against the
# machine's CUDA, run the conformance suite on the device, benchmark the
# tensor host function's GEMM at 4096^3 beside torch.matmul on the same GPU,
# and write everything under $OUT. One run, about 3-6 minutes on an H200.
#
# Run from the repository root on the GPU machine (no Go, no network there):
#   source .gpu/env.sh && bash .gpu-check/run.sh
# .gpu/ comes from ../shared/gpu/pack.sh (a Go toolchain and the vendored
# modules). Results: $OUT/summary.md (start there), run.log, env.txt,
# build.txt, info.txt/info.json, unit.txt, conformance.txt, bench.txt,
# torch.json, cuda-bench.md (ready to paste into BENCHMARKS.md).
set -uo pipefail

OUT=${OUT:-/tmp/fennec-gpu-check}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
root=$(pwd)
[ -f "$root/gpu/cuda/compat/cudacompat.h" ] || { echo "run from the repository root"; exit 2; }

CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export CGO_CFLAGS="-O2 -g -I$CUDA_HOME/include -include $root/gpu/cuda/compat/cudacompat.h"
# stubs last: link against the real libcuda when the toolkit's lib64 has no
# libcuda.so; the stub's SONAME (libcuda.so.1) loads the driver's at run time
export CGO_LDFLAGS="-L$CUDA_HOME/lib64 -L$CUDA_HOME/targets/x86_64-linux/lib -L$CUDA_HOME/lib64/stubs ${FENNEC_EXTRA_LDFLAGS:-}"
export LD_LIBRARY_PATH="$CUDA_HOME/lib64:$CUDA_HOME/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
export FENNEC_REQUIRE_GPU=1 # a missing device fails the tests instead of skipping them
BIN=/tmp/fennec-cuda
SUMMARY="$OUT/summary.md"
echo "# fennec CUDA check $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$SUMMARY"

status() { # name rc seconds
  local s=PASS; [ "$2" -ne 0 ] && s="FAIL (exit $2)"
  echo "- $1: $s, $3 s" | tee -a "$SUMMARY"
}
run_step() { # name timeout logfile cmd...
  local name=$1 limit=$2 log=$3; shift 3
  local t0=$SECONDS
  echo "== $name: $*"
  timeout "$limit" "$@" > "$OUT/$log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$log"
  status "$name" "$rc" $((SECONDS - t0))
  return $rc
}

# ---- environment ----
{
  echo "## nvidia-smi"; nvidia-smi 2>&1 | head -20
  echo "## nvidia-smi query"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  echo "## nvcc"; "$CUDA_HOME/bin/nvcc" --version 2>&1 | tail -2
  echo "## cuda.h"; grep -m1 "define CUDA_VERSION" "$CUDA_HOME/include/cuda.h"
  echo "## libraries"; ls "$CUDA_HOME"/lib64/libcublas.so* "$CUDA_HOME"/lib64/libnvrtc.so* 2>&1 | head; ldconfig -p | grep -m2 "libcuda.so"
  echo "## go"; go version; go env GOFLAGS CGO_ENABLED
  echo "## cpu"; nproc
} > "$OUT/env.txt" 2>&1
grep -E "define CUDA_VERSION|^go version|NVIDIA|Driver Version" "$OUT/env.txt" | head -5 | sed 's/^/    /' >> "$SUMMARY"

# ---- build (the point where CUDA 12/13 header incompatibilities show) ----
run_step "vet -tags cuda (gpu/cuda, cmd/fennec)" 300 vet.txt go vet -tags cuda ./gpu/cuda ./cmd/fennec
# build fennec in the background while the tests run
( t0=$SECONDS; timeout 300 go build -tags cuda -o "$BIN" ./cmd/fennec > "$OUT/build.txt" 2>&1; echo "rc=$? seconds=$((SECONDS - t0))" >> "$OUT/build.txt" ) &
buildpid=$!

# ---- tests ----
run_step "unit tests without the tag" 120 unit.txt go test -count=1 ./gpu/cuda
run_step "conformance + CUDA tests on the device" 300 conformance.txt \
  go test -tags cuda -count=1 -v -timeout 280s -run 'TestConformance|TestKernelsCompile|TestUnusableDriverIsAnError|TestConfigErrors|TestOutOfMemory|TestMaxBytes' ./gpu/cuda
grep -E "^(--- |    --- )(FAIL|SKIP)" "$OUT/conformance.txt" | head -40 | sed 's/^/    /' >> "$SUMMARY"

wait "$buildpid"
brc=$(sed -n 's/^rc=\([0-9]*\).*/\1/p' "$OUT/build.txt"); bs=$(sed -n 's/.*seconds=//p' "$OUT/build.txt")
status "go build -tags cuda ./cmd/fennec" "${brc:-1}" "${bs:-0}"
if [ "${brc:-1}" -eq 0 ]; then
  "$BIN" info > "$OUT/info.txt" 2>&1; irc=$?
  "$BIN" info --json > "$OUT/info.json" 2>&1
  status "fennec info" "$irc" 0
  sed 's/^/    /' "$OUT/info.txt" >> "$SUMMARY"
  n=$(nm -D "$BIN" | grep -c -E "cuTexRef|cuSurfRef|cuModuleGetTexRef" || true)
  echo "- texture/surface-reference imports in the binary: $n (want 0)" | tee -a "$SUMMARY"
  grep -q '"backend": "cuda"' "$OUT/info.json" && echo "- selection: CUDA serves" >> "$SUMMARY" || echo "- selection: CUDA does NOT serve (see info.txt)" >> "$SUMMARY"
fi

# ---- benchmarks: fennec ----
run_step "fennec GEMM benchmarks" 200 bench.txt \
  go test -tags cuda -count=5 -run '^$' -bench 'MatMul4096|Gemm4096BF16|ConcurrentInstances' -benchtime 20x -timeout 190s ./gpu/cuda

# ---- benchmarks: torch.matmul on the same GPU ----
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  run_step "torch.matmul reference" 150 torch.log python3 - "$OUT/torch.json" <<'PY'
import json, statistics, sys, torch
n, reps, iters = 4096, 5, 20
dev = torch.device("cuda")
res = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0)}
def bench(dtype, tf32, sync_each):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=dev).to(dtype); b = torch.randn(n, n, device=dev).to(dtype)
    for _ in range(3): torch.matmul(a, b)
    torch.cuda.synchronize()
    per = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters):
            torch.matmul(a, b)
            if sync_each: torch.cuda.synchronize()
        e.record(); torch.cuda.synchronize()
        per.append(s.elapsed_time(e) / 1e3 / iters)
    med = statistics.median(per)
    return {"median_s": med, "tflops": 2 * n**3 / med / 1e12, "runs_s": per}
res["f32"] = bench(torch.float32, False, True)
res["f32_pipelined"] = bench(torch.float32, False, False)
res["tf32"] = bench(torch.float32, True, True)
res["bf16"] = bench(torch.bfloat16, False, True)
json.dump(res, open(sys.argv[1], "w"), indent=2)
print(json.dumps({k: (v["tflops"] if isinstance(v, dict) else v) for k, v in res.items()}))
PY
else
  echo "- torch.matmul reference: SKIPPED (python3 with CUDA torch not found)" | tee -a "$SUMMARY"
fi

# ---- figures ----
med() { # benchmark name -> median ns/op and TFLOP/s over the -count runs
  grep -E "^$1-[0-9]+ " "$OUT/bench.txt" | awk '{print $3, $5}' | sort -n | awk '{a[NR]=$0} END {if (NR) print a[int((NR+1)/2)]}'
}
tj() { python3 -c "import json,sys; d=json.load(open('$OUT/torch.json')); print('%.1f' % d['$1']['tflops'])" 2>/dev/null || echo "n/a"; }
{
  echo "## CUDA backend, measured on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  echo
  echo "Machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1); $(grep -m1 'define CUDA_VERSION' "$CUDA_HOME/include/cuda.h"); $(nproc) CPU cores."
  echo
  echo "Commands: \`go test -tags cuda -count=5 -run '^\$' -bench 'MatMul4096|Gemm4096BF16|ConcurrentInstances' -benchtime 20x ./gpu/cuda\`"
  echo "(CGO_CFLAGS/LDFLAGS as in .gpu-check/run.sh) and the torch script in .gpu-check/run.sh (CUDA events, median of 5 x 20 calls)."
  echo
  echo "| 4096^3 GEMM | fennec (median ns/op, TFLOP/s) | torch.matmul TFLOP/s | fennec / torch |"
  echo "|---|---|---|---|"
  for row in "f32 (exact):BenchmarkMatMul4096:f32" "TF32:BenchmarkMatMul4096TF32:tf32" "bf16 (cuBLAS, not a host call):BenchmarkGemm4096BF16:bf16"; do
    IFS=: read -r label name key <<< "$row"
    m=$(med "$name"); ns=${m% *}; tf=${m#* }
    t=$(tj "$key")
    ratio=$(python3 -c "print('%.2f' % ($tf / $t))" 2>/dev/null || echo "n/a")
    echo "| $label | ${ns:-n/a} ns, ${tf:-n/a} | $t | $ratio |"
  done
  echo
  echo "torch f32 without a synchronize per call (pipelined): $(tj f32_pipelined) TFLOP/s."
  echo "fennec's figures include one stream synchronisation per call, as a guest's host call has; so do torch's rows above."
  c=$(med BenchmarkConcurrentInstances); echo "8 instances x 10 (512^3 MatMul + tanh), all concurrent: median ${c% *} ns per round."
} > "$OUT/cuda-bench.md"
cat "$OUT/cuda-bench.md" >> "$SUMMARY"
echo "done in $SECONDS s; results in $OUT" | tee -a "$SUMMARY"
