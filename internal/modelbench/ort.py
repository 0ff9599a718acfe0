"""onnxruntime side of `fennec model bench --ort` (embedded in the binary).

    python3 bench_ort.py MODEL.onnx THREADS NAME=FILE.npy ...

Prints "ready VERSION" (or "error MESSAGE") once the session is made, then
for each "run" line on stdin runs the model once and prints the run's
nanoseconds (time.perf_counter_ns around sess.run), so fennec can alternate
its runs with these.
"""
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    print(f"error {e} (pip install onnxruntime)", flush=True)
    sys.exit(0)

try:
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(sys.argv[2])
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
    feed = {}
    for arg in sys.argv[3:]:
        name, path = arg.split("=", 1)
        feed[name] = np.load(path)
except Exception as e:  # noqa: BLE001 - reported to fennec, which skips
    print("error " + str(e).replace("\n", " "), flush=True)
    sys.exit(0)

print("ready " + ort.__version__, flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        break
    try:
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        print(time.perf_counter_ns() - t0, flush=True)
    except Exception as e:  # noqa: BLE001
        print("error " + str(e).replace("\n", " "), flush=True)
        break
