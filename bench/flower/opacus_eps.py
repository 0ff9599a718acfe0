"""Epsilon from Opacus's RDP accountant over a grid of DP-SGD parameters.

Writes privacy/dp/testdata/opacus_rdp.json, which TestOpacusTable
(privacy/dp) checks fennec's accountant against without Python.

It runs Opacus's own RDPAccountant class (opacus/accountants/rdp.py, with
opacus/accountants/analysis/rdp.py) on numpy and scipy. Opacus's package
__init__ imports torch for the optimiser and grad-sample code, which the
accountant does not use; to avoid a 540 MB torch wheel (plus its CUDA
libraries) this script installs opacus with --no-deps and imports the
accountant modules from the installed package without running opacus's and
opacus.accountants' __init__ files (the only torch-dependent import on the
path, opacus.optimizers.DPOptimizer in accountant.py, is a type hint there).

usage: python opacus_eps.py OUT.json
"""

import importlib
import importlib.util
import json
import math
import os
import sys
import types
import warnings


def load_opacus_rdp():
    spec = importlib.util.find_spec("opacus")
    if spec is None:
        sys.exit("opacus is not installed")
    pkgdir = os.path.dirname(spec.origin)
    for name, path in [("opacus", pkgdir), ("opacus.accountants", os.path.join(pkgdir, "accountants")),
                       ("opacus.accountants.analysis", os.path.join(pkgdir, "accountants", "analysis"))]:
        m = types.ModuleType(name)
        m.__path__ = [path]
        sys.modules[name] = m
    opt = types.ModuleType("opacus.optimizers")
    opt.DPOptimizer = object  # accountant.py uses it only in a type hint
    sys.modules["opacus.optimizers"] = opt
    rdp = importlib.import_module("opacus.accountants.rdp")
    from importlib.metadata import version
    return rdp.RDPAccountant, version("opacus")


def row(sigma, q, steps, delta, eps, alpha):
    # JSON has no infinity: an unbounded epsilon is null.
    eps, alpha = float(eps), float(alpha)
    return {"sigma": sigma, "q": q, "steps": steps, "delta": delta,
            "epsilon": eps if math.isfinite(eps) else None,
            "alpha": alpha if math.isfinite(alpha) else None}


def main():
    out = sys.argv[1]
    RDPAccountant, ver = load_opacus_rdp()
    warnings.simplefilter("ignore")  # "optimal order is the largest alpha" at the grid's end
    rows = []
    for sigma in [0.5, 0.7, 1.0, 1.1, 1.5, 2.0, 4.0, 10.0]:
        for q in [0.001, 0.004, 0.01, 0.04, 0.1, 0.25, 1.0]:
            for steps in [1, 10, 100, 1000, 10000]:
                for delta in [1e-5, 1e-3]:
                    acc = RDPAccountant()
                    acc.history = [(sigma, q, steps)]  # what `steps` calls of step() leave
                    eps, alpha = acc.get_privacy_spent(delta=delta)
                    rows.append(row(sigma, q, steps, delta, eps, alpha))
    # One composition through step() itself, as DPOptimizer drives it.
    acc = RDPAccountant()
    for _ in range(300):
        acc.step(noise_multiplier=1.1, sample_rate=0.01)
    eps, alpha = acc.get_privacy_spent(delta=1e-5)
    rows.append(row(1.1, 0.01, 300, 1e-5, eps, alpha))
    doc = {
        "source": "opacus %s, opacus.accountants.RDPAccountant().get_privacy_spent(delta=...) "
                  "with its DEFAULT_ALPHAS; regenerate with bench/flower/run.sh opacus" % ver,
        "alphas": [float(a) for a in RDPAccountant.DEFAULT_ALPHAS],
        "cases": rows,
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    print("wrote %d cases to %s (opacus %s)" % (len(rows), out, ver))


if __name__ == "__main__":
    main()
