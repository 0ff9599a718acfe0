"""The WDBC experiment in Flower: a server process and client processes.

The model, optimiser and local training are the ones fennec's risk-train
module runs (modules/risk-train, sdk/nn), written here in numpy because a
torch wheel is impractical on the benchmark machine (540 MB plus CUDA
libraries from PyPI; see bench/flower/README.md): an MLP 30-16-1 with ReLU
(weights [in, out], He-uniform init for the ReLU layer, Xavier-uniform for
the output), binary cross-entropy on the logit, mean over the batch, Adam
(beta1 0.9, beta2 0.999, eps 1e-8) created afresh every round, batch 32,
shuffled every epoch, float32. FedAvg weights updates by example count.

  python flower_wdbc.py server --address HOST:PORT --rounds R --test test.csv
  python flower_wdbc.py client --server HOST:PORT --data device-i.csv

The server prints one line per completed round: "round K acc A loss L",
flushed, so the driver (compare.py) can time rounds and count bytes.
"""

import argparse
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import flwr as fl  # noqa: E402

HIDDEN = 16


def load(path):
    a = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    return a[:, :-1], a[:, -1]


def init_params(features, seed):
    rng = np.random.default_rng(seed)
    lim1 = np.sqrt(6.0 / features)  # He uniform (ReLU follows)
    lim2 = np.sqrt(6.0 / (HIDDEN + 1))  # Xavier uniform
    return [rng.uniform(-lim1, lim1, (features, HIDDEN)).astype(np.float32), np.zeros(HIDDEN, np.float32),
            rng.uniform(-lim2, lim2, (HIDDEN, 1)).astype(np.float32), np.zeros(1, np.float32)]


def forward(p, x):
    h = x @ p[0] + p[1]
    a = np.maximum(h, 0)
    return h, a, (a @ p[2] + p[3])[:, 0]


def loss_acc(p, x, y):
    _, _, z = forward(p, x)
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return float(loss), float(np.mean((z > 0) == (y > 0.5)))


def train(p, x, y, epochs, lr, batch, seed):
    p = [w.copy() for w in p]
    m = [np.zeros_like(w) for w in p]
    v = [np.zeros_like(w) for w in p]
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for s in range(0, len(y), batch):
            idx = perm[s:s + batch]
            xb, yb = x[idx], y[idx]
            h, a, z = forward(p, xb)
            dz = (1 / (1 + np.exp(-z)) - yb) / len(idx)
            g2 = a.T @ dz[:, None]
            g3 = np.array([dz.sum()], np.float32)
            da = dz[:, None] @ p[2].T
            dh = da * (h > 0)
            g0 = xb.T @ dh
            g1 = dh.sum(0)
            t += 1
            for i, g in enumerate([g0, g1, g2, g3]):
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                mh = m[i] / (1 - b1 ** t)
                vh = v[i] / (1 - b2 ** t)
                p[i] = (p[i] - lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
    return p


class Client(fl.client.NumPyClient):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def fit(self, parameters, config):
        p = train(parameters, self.x, self.y, int(config["epochs"]), float(config["lr"]),
                  int(config["batch"]), int(config["seed"]))
        loss, _ = loss_acc(p, self.x, self.y)
        return p, len(self.y), {"loss": loss}

    def evaluate(self, parameters, config):
        loss, acc = loss_acc(parameters, self.x, self.y)
        return loss, len(self.y), {"accuracy": acc}


def server(args):
    tx, ty = load(args.test)

    def evaluate_fn(rnd, parameters, config):
        loss, acc = loss_acc(parameters, tx, ty)
        if rnd > 0:
            print("round %d acc %.4f loss %.4f" % (rnd, acc, loss), flush=True)
        return loss, {"accuracy": acc}

    strategy = fl.server.strategy.FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=args.clients,
        min_available_clients=args.clients, evaluate_fn=evaluate_fn,
        on_fit_config_fn=lambda rnd: {"epochs": args.epochs, "lr": args.lr, "batch": args.batch, "seed": rnd},
        initial_parameters=fl.common.ndarrays_to_parameters(init_params(tx.shape[1], args.seed)))
    fl.server.start_server(server_address=args.address, config=fl.server.ServerConfig(num_rounds=args.rounds),
                           strategy=strategy)


def client(args):
    x, y = load(args.data)
    fl.client.start_client(server_address=args.server, client=Client(x, y).to_client(), insecure=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--address", required=True)
    s.add_argument("--rounds", type=int, default=15)
    s.add_argument("--clients", type=int, default=10)
    s.add_argument("--epochs", type=int, default=2)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--test", required=True)
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--data", required=True)
    args = ap.parse_args()
    server(args) if args.cmd == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
