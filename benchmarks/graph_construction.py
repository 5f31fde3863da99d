"""Speed of kNN graph construction: ``lg.latent_graph`` against a floor and other libraries.

For each batch size B and feature size D, every method builds the k = 10
nearest-neighbour graph of the same non-negative random batch (as after a
ReLU), and the table reports its time divided by the *floor* measured in the
same run: the least work any exact method must do, one dense similarity
product and a top-k (row-normalize, ``E @ E.T``, mask the diagonal,
``topk``). Methods:

* ``latent_graph``: ``lg.latent_graph(x, k=10)`` with the default exact
  ``torch`` backend (cosine, union-symmetrized, normalized, a PyG ``Data``);
* ``latent_graph[faiss]`` / ``latent_graph[torch_cluster]``: the same with
  another kNN backend, when installed;
* ``pygsp.NNGraph``: PyGSP's kNN graph (scipy KD-tree, Euclidean RBF weights);
* ``sklearn.kneighbors_graph``: scikit-learn's (cosine, brute force).

A method whose predicted time for a size exceeds ``--limit`` seconds is
skipped there and marked so; the prediction scales its time at the largest
size measured so far by B²·D (brute-force cost).

Usage::

    nice -n 5 python benchmarks/graph_construction.py --output benchmarks/results/graph_construction.md
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import logging
import os
import platform
import sys
import time
from collections.abc import Callable

import torch

import latentgraph as lg

K = 10
SIZES_B = (128, 1024, 4096)
SIZES_D = (64, 512, 32768)


def floor(x: torch.Tensor) -> object:
    """Dense cosine similarity + top-k: the least work of an exact kNN graph."""
    e = torch.nn.functional.normalize(x, dim=1)
    s = e @ e.T
    s.fill_diagonal_(float("-inf"))
    return s.topk(K, dim=1)


def _latent_graph(backend: str) -> Callable[[torch.Tensor], object]:
    return lambda x: lg.latent_graph(x, k=K, backend=backend)


def _pygsp(x: torch.Tensor) -> object:
    from pygsp.graphs import NNGraph

    return NNGraph(x.numpy(), k=K)


def _sklearn(x: torch.Tensor) -> object:
    from sklearn.neighbors import kneighbors_graph

    return kneighbors_graph(x.numpy(), K, metric="cosine", include_self=False)


def methods() -> dict[str, Callable[[torch.Tensor], object] | None]:
    """Name -> function, or ``None`` when its package is not installed."""
    def have(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    return {
        "floor": floor,
        "latent_graph": _latent_graph("torch"),
        "latent_graph[faiss]": _latent_graph("faiss") if have("faiss") else None,
        "latent_graph[torch_cluster]": _latent_graph("torch_cluster") if have("torch_cluster") else None,
        "pygsp.NNGraph": _pygsp if have("pygsp") else None,
        "sklearn.kneighbors_graph": _sklearn if have("sklearn") else None,
    }


def measure(fn: Callable[[torch.Tensor], object], x: torch.Tensor, budget: float) -> float:
    """Best wall time of ``fn(x)`` over repeats (at least 1, at most 7, within
    ``budget`` s; 3 at least for runs under a tenth of it). The minimum, as in
    :mod:`timeit`, is the run least disturbed by other load on the machine."""
    times = []
    while len(times) < 7:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
        if sum(times) > budget and len(times) >= (3 if times[0] < budget / 10 else 1):
            break
    return min(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}; "
            f"load average (1, 5, 15 min) {load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=20.0, help="skip runs predicted to take longer (s)")
    parser.add_argument("--budget", type=float, default=1.0, help="time spent repeating a fast run (s)")
    parser.add_argument("--sizes-b", type=int, nargs="+", default=list(SIZES_B))
    parser.add_argument("--sizes-d", type=int, nargs="+", default=list(SIZES_D))
    parser.add_argument("--output", help="also write the Markdown table to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    table = methods()
    if table["pygsp.NNGraph"] is not None:  # pygsp logs each k-NN search at DEBUG on its own handlers
        import pygsp.graphs  # noqa: F401  (creates its loggers)

        for name in list(logging.root.manager.loggerDict):
            if name.startswith("pygsp"):
                logging.getLogger(name).setLevel(logging.WARNING)

    names = [name for name, fn in table.items() if fn is not None]
    missing = [name for name, fn in table.items() if fn is None]
    largest: dict[str, tuple[int, float]] = {}  # method -> (B²·D, seconds) of its largest run so far
    rows = []
    before = machine()
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    for b in args.sizes_b:
        for d in args.sizes_d:
            x = torch.rand(b, d, generator=generator)
            for name in names:  # warm-up at the smallest size keeps one-time costs out
                if b == args.sizes_b[0] and d == args.sizes_d[0]:
                    table[name](x)
            cells = {}
            for name in names:
                work, seconds = largest.get(name, (1, 0.0))
                if seconds * b * b * d / work > args.limit:
                    cells[name] = None
                    continue
                cells[name] = measure(table[name], x, args.budget)
                if b * b * d >= work:
                    largest[name] = (b * b * d, cells[name])
            rows.append((b, d, cells))
            shown = "  ".join(f"{n}={'skip' if t is None else f'{t * 1e3:.1f}ms'}" for n, t in cells.items())
            print(f"B={b:5d} D={d:6d}  {shown}", flush=True)

    header = ["B × D", "floor (ms)"] + [f"{n} / floor" for n in names if n != "floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for b, d, cells in rows:
        base = cells["floor"]
        if base is None:
            lines.append(f"| {b} × {d} | skipped (> {args.limit:.0f} s) |" + " |" * (len(header) - 2))
            continue
        out = [f"{b} × {d}", f"{base * 1e3:.2f}"]
        for name in names[1:]:
            t = cells[name]
            out.append(f"skipped (> {args.limit:.0f} s)" if t is None else f"{t / base:.2f}")
        lines.append("| " + " | ".join(out) + " |")
    total = time.perf_counter() - started
    env = [f"{v}={os.environ[v]}" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS") if v in os.environ]
    text = "\n".join([
        f"Command: `{' '.join([*env, 'nice -n 5' if os.nice(0) else '', 'python', *sys.argv]).replace('  ', ' ')}`",
        f"Machine: {before} (at start); {machine().rsplit('; ', 1)[1]} (at end)",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; total run {total:.0f} s; k = {K}",
        f"Not installed: {', '.join(missing) or 'none'}",
        "",
        *lines,
    ]) + "\n"
    print()
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.output + ".tmp", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
