"""Flower and fennec side by side on WDBC, each as real processes.

Both run one server and 10 client processes on this machine; every client
talks to its server through a counting TCP proxy (in this script), so bytes
on the wire are measured the same way for both (gRPC for Flower, NATS for
fennec, both directions, headers included). Per round: the interval between
successive round-completion lines of the server (rounds 2..R; round 1
includes the clients' joining), bytes through the proxy in that interval;
per client: peak resident memory (VmHWM from /proc/PID/status, polled).
Accuracy: the final global model on the held-out test.csv, evaluated by the
server. The runs alternate Flower, fennec, Flower, fennec... (--reps each)
so load from other users of the machine hits both.

Same experiment on both sides: the split and shards from bench/flower/split
(the ones `fennec demo --data wdbc.csv --devices 10` uses), MLP 30-16-1,
Adam lr 0.01 fresh per round, batch 32, 2 local epochs, FedAvg, 15 rounds.

usage: python compare.py [--reps N] [--rounds R]   (run by bench/flower/run.sh)
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
DIRECT = False  # --direct: clients bypass the counting proxy (latency without its hops; no byte counts)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Proxy:
    """Forwards 127.0.0.1:listen to 127.0.0.1:target, counting bytes."""

    def __init__(self, target):
        self.target, self.bytes, self.lock = target, 0, threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.bytes += len(d)
                b.sendall(d)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @property
    def addr_port(self):
        return self.target if DIRECT else self.port

    def count(self):
        with self.lock:
            return self.bytes


class MemPoll:
    """Polls VmHWM (peak RSS) of processes until stopped."""

    def __init__(self, procs):
        self.procs, self.peak, self.stop = procs, {p.pid: 0 for p in procs}, threading.Event()
        self.cpu = {p.pid: 0.0 for p in procs}  # user+system seconds, last seen
        self.tick = os.sysconf("SC_CLK_TCK")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stop.is_set():
            for p in self.procs:
                try:
                    with open("/proc/%d/status" % p.pid) as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                self.peak[p.pid] = max(self.peak[p.pid], int(line.split()[1]))
                    with open("/proc/%d/stat" % p.pid) as f:
                        st = f.read().rsplit(")", 1)[1].split()
                        self.cpu[p.pid] = (int(st[11]) + int(st[12])) / self.tick
                except (OSError, IndexError, ValueError):
                    pass
            self.stop.wait(0.1)


def wait_for(path, pattern, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(path) and re.search(pattern, open(path).read()):
            return
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for %r in %s:\n%s" % (pattern, path, open(path).read()[-3000:]))


def follow(proc, line_re, rounds, proxy, log):
    """Reads the server's stdout; on each round line records time, bytes, accuracy."""
    marks = []
    with open(log, "w") as lf:
        for line in proc.stdout:
            lf.write(line)
            lf.flush()
            m = re.search(line_re, line)
            if m:
                marks.append((time.time(), proxy.count(), float(m.group(2))))
                if int(m.group(1)) >= rounds:
                    break
    return marks


def summarize(name, marks, mem, server_cpu, client_cpu):
    dts = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    dbs = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    return {"system": name, "rounds": len(marks), "accuracy": marks[-1][2],
            "round_s": statistics.median(dts), "round_bytes": statistics.median(dbs),
            "client_peak_rss_kib": statistics.median(mem), "client_peak_rss_max_kib": max(mem),
            "server_cpu_s": server_cpu, "clients_cpu_s": client_cpu}


def run_flower(work, data, args):
    py = sys.executable
    port = free_port()
    proxy = Proxy(port)
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRPC_VERBOSITY="ERROR")
    srv = subprocess.Popen([py, os.path.join(HERE, "flower_wdbc.py"), "server", "--address", "127.0.0.1:%d" % port,
                            "--rounds", str(args.rounds), "--clients", str(args.devices), "--test", os.path.join(data, "test.csv")],
                           stdout=subprocess.PIPE, stderr=open(os.path.join(work, "flower-server.err"), "w"), text=True, env=env)
    time.sleep(0.5)  # not a wait for readiness: clients retry until the server listens
    clients = [subprocess.Popen([py, os.path.join(HERE, "flower_wdbc.py"), "client", "--server", "127.0.0.1:%d" % proxy.addr_port,
                                 "--data", os.path.join(data, "device-%d.csv" % i)],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "flower-client-%d.err" % i), "w"), env=env)
               for i in range(args.devices)]
    mem = MemPoll(clients + [srv])
    try:
        marks = follow(srv, r"^round (\d+) acc ([0-9.]+)", args.rounds, proxy, os.path.join(work, "flower-server.log"))
    finally:
        mem.stop.set()
        for p in clients + [srv]:
            p.wait(timeout=60) if p is srv else None
        for p in clients:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return summarize("flower", marks, [mem.peak[p.pid] for p in clients], mem.cpu[srv.pid], sum(mem.cpu[p.pid] for p in clients))


def run_fennec(work, data, args, fennec, wasm):
    port = free_port()
    proxy = Proxy(port)
    hubdir = tempfile.mkdtemp(dir=work)
    hub_log = os.path.join(work, "fennec-hub.log")
    hub = subprocess.Popen([fennec, "hub", "--data", hubdir, "--listen", "127.0.0.1:%d" % port, "--init-mlp", "30,16,1",
                            "--rounds", str(args.rounds), "--min-devices", str(args.devices), "--fraction", "1",
                            "--epochs", "2", "--lr", "0.01", "--batch", "32", "--deadline", "120s",
                            "--eval-data", os.path.join(data, "test.csv"), "--eval-module", wasm] + args.hub_args.split(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = hub.stdout.readline()  # "hub ... ready at ..."
    while "ready at" not in line:
        if not line:
            raise RuntimeError("fennec hub exited before it was ready")
        line = hub.stdout.readline()
    agents = []
    for i in range(args.devices):
        creds = os.path.join(work, "device-%d.creds" % i)
        with open(creds, "w") as f:
            subprocess.run([fennec, "hub", "creds", "--secret", os.path.join(hubdir, "fleet.secret"), "--id", "device-%d" % i],
                           stdout=f, check=True)
        agents.append(subprocess.Popen([fennec, "agent", "--hub", "nats://127.0.0.1:%d" % proxy.addr_port, "--creds", creds,
                                        "--module", wasm, "--data", os.path.join(data, "device-%d.csv" % i)] + args.fennec_args.split(),
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "fennec-agent-%d.err" % i), "w")))
    mem = MemPoll(agents + [hub])
    try:
        marks = follow(hub, r"^round (\d+) completed:.* acc ([0-9.]+)", args.rounds, proxy, hub_log)
    finally:
        mem.stop.set()
        for p in agents:
            p.terminate()
        for p in agents + [hub]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return summarize("fennec", marks, [mem.peak[p.pid] for p in agents], mem.cpu[hub.pid], sum(mem.cpu[p.pid] for p in agents))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "wdbc.csv"))
    ap.add_argument("--out", default="")
    ap.add_argument("--systems", default="flower,fennec", help="comma-separated: flower, fennec")
    ap.add_argument("--fennec-args", default="", help="extra flags for every fennec agent (space-separated)")
    ap.add_argument("--fennec-before", default="", help="a second fennec binary (a build from before a change) run as system fennec-before")
    ap.add_argument("--hub-args", default="", help="extra flags for the fennec hub (space-separated; -v logs each round's phases)")
    ap.add_argument("--direct", action="store_true", help="clients connect straight to the server (no byte counts)")
    args = ap.parse_args()
    global DIRECT
    DIRECT = args.direct
    if not os.path.exists(args.data):
        print("bench/flower: skipped: %s not found (the shared data directory)" % args.data)
        return
    work = tempfile.mkdtemp(prefix="fennec-flower-")
    data = os.path.join(work, "data")
    subprocess.run(["go", "run", "./bench/flower/split", "-data", args.data, "-devices", str(args.devices),
                    "-skew", "0.5", "-seed", "1", "-out", data], cwd=ROOT, check=True)
    fennec = os.path.join(work, "fennec")
    subprocess.run(["go", "build", "-o", fennec, "./cmd/fennec"], cwd=ROOT, check=True, env=dict(os.environ, CGO_ENABLED="0"))
    if args.fennec_before:
        # The same runs also with this binary (a build from before a change),
        # alternating with the tree's: "fennec-before" in the results.
        fennec_before = os.path.abspath(args.fennec_before)
    subprocess.run([fennec, "guests", "build", "risk-train", "--out", os.path.join(work, "g")], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    wasm = os.path.join(work, "g", "risk-train.wasm")
    wasm_before = wasm
    if args.fennec_before:
        # Each binary runs its own guest: the before binary's is the copy it
        # embeds (prebuilt; run outside the source tree so it does not build
        # this tree's sources), since a guest may import host functions an
        # older host lacks.
        env = {k: v for k, v in os.environ.items() if k != "FENNEC_SRC"}
        subprocess.run([fennec_before, "guests", "build", "risk-train", "--out", os.path.join(work, "gb")], cwd=work,
                       check=True, stdout=subprocess.DEVNULL, env=env)
        wasm_before = os.path.join(work, "gb", "risk-train.wasm")
    results = []
    for rep in range(args.reps):
        for name in args.systems.split(","):
            d = os.path.join(work, "%s-%d" % (name, rep))
            os.makedirs(d)
            if name == "flower":
                r = run_flower(d, data, args)
            else:
                r = run_fennec(d, data, args, *((fennec_before, wasm_before) if name == "fennec-before" else (fennec, wasm)))
                r["system"] = name
            r["rep"] = rep
            print(json.dumps(r), flush=True)
            results.append(r)
    systems = args.systems.split(",")
    med = {}
    for name in systems:
        rs = [r for r in results if r["system"] == name]
        med[name] = {k: statistics.median([r[k] for r in rs]) for k in
                     ("accuracy", "round_s", "round_bytes", "client_peak_rss_kib")}
    if "flower" not in med or "fennec" not in med:
        return
    f, g = med["flower"], med["fennec"]
    b = med.get("fennec-before")
    print("\nmedians of %d alternating runs each (logs in %s):" % (args.reps, work))
    print("%-28s %12s %12s %8s  goal" % ("", "Flower", "fennec", "ratio") + ("%16s %8s" % ("fennec-before", "ratio") if b else ""))
    rows = [("final test accuracy", "accuracy", "%.4f", "within 0.01 or better"),
            ("wall time per round (s)", "round_s", "%.3f", "<= 0.5x"),
            ("bytes on the wire per round", "round_bytes", "%.0f", "<= 1x"),
            ("peak client RSS (KiB)", "client_peak_rss_kib", "%.0f", "<= 0.5x")]

    def ratio(x, k):
        if k == "accuracy":
            return "%+.4f" % (x[k] - f[k])
        return "%.2fx" % (x[k] / f[k]) if f[k] else "n/a"
    for label, k, fmt, goal in rows:
        line = "%-28s %12s %12s %8s  %s" % (label, fmt % f[k], fmt % g[k], ratio(g, k), goal)
        if b:
            line += "   %16s %8s" % (fmt % b[k], ratio(b, k))
        print(line)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"runs": results, "medians": med}, fh, indent=1)


if __name__ == "__main__":
    main()
