"""Speed of kNN graph construction: ``lg.latent_graph`` against a floor and other libraries.

For each batch size B and feature size D, every method builds the k = 10
nearest-neighbour graph of the same non-negative random batch (as after a
ReLU), and the table reports its time divided by the *floor* measured in the
same run: the least work any exact method must do, one dense similarity
product and a top-k (row-normalize, ``E @ E.T``, mask the diagonal,
``topk``). Methods:

* ``latent_graph``: ``lg.latent_graph(x, k=10)`` with the default exact
  ``torch`` backend (cosine, union-symmetrized, normalized, a PyG ``Data``);
* ``faiss``: faiss's own exact search of the same neighbours, nothing else
  (row-normalize, ``faiss.knn`` by inner product with k + 1 results), on as
  many threads as torch — the reference for ``latent_graph[faiss]``;
* ``latent_graph[faiss]`` / ``latent_graph[torch_cluster]``: the same with
  another kNN backend, when installed;
* ``pygsp.NNGraph``: PyGSP's kNN graph (scipy KD-tree, Euclidean RBF weights);
* ``sklearn.kneighbors_graph``: scikit-learn's (cosine, brute force).

A method whose predicted time for a size exceeds ``--limit`` seconds is
skipped there and marked so; the prediction scales its time at the largest
size measured so far by B²·D (brute-force cost). Each thread count of
``--threads`` gets its own table, and after it a table of the ratios the
targets are stated in: ``latent_graph`` over the faster of the floor and
faiss, ``latent_graph[faiss]`` over faiss, PyGSP over ``latent_graph``.
``--clock cpu`` times the process's CPU time instead of the wall clock: on a
machine shared with other jobs, a one-thread run then counts only its own work.

Usage::

    nice -n 5 python benchmarks/graph_construction.py --threads 1 2 \
        --cases 128x64 1024x512 4096x64 20000x128 --output benchmarks/results/graph_construction.md
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
#: the floor's dense B × B scores are skipped above this many (256 MiB in float32)
FLOOR_MAX_SCORES = 2**26
SIZES_D = (64, 512, 32768)


def floor(x: torch.Tensor) -> object:
    """Dense cosine similarity + top-k: the least work of an exact kNN graph."""
    e = torch.nn.functional.normalize(x, dim=1)
    s = e @ e.T
    s.fill_diagonal_(float("-inf"))
    return s.topk(K, dim=1)


def _faiss(x: torch.Tensor) -> object:
    import faiss

    e = torch.nn.functional.normalize(x, dim=1).numpy()
    return faiss.knn(e, e, K + 1, metric=faiss.METRIC_INNER_PRODUCT)


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
        "faiss": _faiss if have("faiss") else None,
        "latent_graph[faiss]": _latent_graph("faiss") if have("faiss") else None,
        "latent_graph[torch_cluster]": _latent_graph("torch_cluster") if have("torch_cluster") else None,
        "pygsp.NNGraph": _pygsp if have("pygsp") else None,
        "sklearn.kneighbors_graph": _sklearn if have("sklearn") else None,
    }


def measure(fn: Callable[[torch.Tensor], object], x: torch.Tensor, budget: float,
            clock: Callable[[], float] = time.perf_counter) -> float:
    """Best time of ``fn(x)`` on ``clock`` over repeats (at least 1, at most 7, within
    ``budget`` s; 3 at least for runs under a tenth of it). The minimum, as in
    :mod:`timeit`, is the run least disturbed by other load on the machine."""
    times = []
    while len(times) < 7:
        start = clock()
        fn(x)
        times.append(clock() - start)
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


def _case(text: str) -> tuple[int, int]:
    b, d = text.lower().split("x")
    return int(b), int(d)


def run(table: dict[str, Callable[[torch.Tensor], object]], cases: list[tuple[int, int]], args,
        clock: Callable[[], float]) -> list[tuple[int, int, dict[str, float | None]]]:
    """Time every method on every case: ``(B, D, {method: seconds or None if skipped})``."""
    largest: dict[str, tuple[int, float]] = {}  # method -> (B²·D, seconds) of its largest run so far
    rows = []
    generator = torch.Generator().manual_seed(0)
    for b, d in cases:
        x = torch.rand(b, d, generator=generator)
        if (b, d) == cases[0]:  # warm-up at the first case keeps one-time costs out
            for fn in table.values():
                fn(x)
        cells: dict[str, float | None] = {}
        for name, fn in table.items():
            work, seconds = largest.get(name, (1, 0.0))
            if seconds * b * b * d / work > args.limit or (name == "floor" and b * b > FLOOR_MAX_SCORES):
                cells[name] = None
                continue
            cells[name] = measure(fn, x, args.budget, clock)
            if b * b * d >= work:
                largest[name] = (b * b * d, cells[name])
        rows.append((b, d, cells))
        shown = "  ".join(f"{n}={'skip' if t is None else f'{t * 1e3:.1f}ms'}" for n, t in cells.items())
        print(f"threads={torch.get_num_threads()} B={b:5d} D={d:6d}  {shown}", flush=True)
    return rows


def tables(rows: list[tuple[int, int, dict[str, float | None]]], names: list[str], limit: float) -> list[str]:
    """The Markdown table of times over the floor, then the table of target ratios."""
    skipped = f"skipped (> {limit:.0f} s)"
    header = ["B × D", "floor (ms)"] + [f"{n} / floor" for n in names if n != "floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for b, d, cells in rows:
        base = cells["floor"]
        if base is None:  # too large for a dense B × B: absolute times instead
            out = [f"{b} × {d}", "– (ms:)"]
            out += [skipped if cells[n] is None else f"{cells[n] * 1e3:.0f} ms" for n in names if n != "floor"]
            lines.append("| " + " | ".join(out) + " |")
            continue
        out = [f"{b} × {d}", f"{base * 1e3:.2f}"]
        out += [skipped if cells[n] is None else f"{cells[n] / base:.2f}" for n in names if n != "floor"]
        lines.append("| " + " | ".join(out) + " |")

    def ratio(top: str, *bottom: str) -> str:
        values = [rows_cells.get(n) for n in (top, *bottom)]
        if values[0] is None or all(v is None for v in values[1:]):
            return "–"
        return f"{values[0] / min(v for v in values[1:] if v is not None):.2f}"

    targets = [("latent_graph / min(floor, faiss)", ("latent_graph", "floor", "faiss"), "≤ 1.2"),
               ("latent_graph[faiss] / faiss", ("latent_graph[faiss]", "faiss"), "≤ 1.2"),
               ("pygsp.NNGraph / latent_graph", ("pygsp.NNGraph", "latent_graph"), "≥ 50 at 1024 × 512")]
    targets = [t for t in targets if all(n in names for n in t[1])]
    lines += ["", "| B × D | " + " | ".join(f"{t[0]} (target {t[2]})" for t in targets) + " |",
              "|---|" + "---:|" * len(targets)]
    for b, d, rows_cells in rows:
        lines.append(f"| {b} × {d} | " + " | ".join(ratio(*t[1]) for t in targets) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=20.0, help="skip runs predicted to take longer (s)")
    parser.add_argument("--budget", type=float, default=1.0, help="time spent repeating a fast run (s)")
    parser.add_argument("--sizes-b", type=int, nargs="+", default=list(SIZES_B))
    parser.add_argument("--sizes-d", type=int, nargs="+", default=list(SIZES_D))
    parser.add_argument("--cases", nargs="+", type=_case, default=None, metavar="BxD",
                        help="B×D cases such as 1024x512 (default: every --sizes-b × --sizes-d)")
    parser.add_argument("--output", help="also write the Markdown tables to this file")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch (and faiss) thread counts, one table each (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall clock, or the process's CPU time (default: wall)")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    cases = args.cases or [(b, d) for b in args.sizes_b for d in args.sizes_d]
    table = methods()
    if table["pygsp.NNGraph"] is not None:  # pygsp logs each k-NN search at DEBUG on its own handlers
        import pygsp.graphs  # noqa: F401  (creates its loggers)

        for name in list(logging.root.manager.loggerDict):
            if name.startswith("pygsp"):
                logging.getLogger(name).setLevel(logging.WARNING)
    names = [name for name, fn in table.items() if fn is not None]
    missing = [name for name, fn in table.items() if fn is None]
    present = {name: table[name] for name in names}
    before = machine()
    started = time.perf_counter()
    sections = []
    for threads in args.threads or [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        rows = run(present, cases, args, clock)
        sections += [f"### {threads} thread{'s' if threads > 1 else ''}", "", *tables(rows, names, args.limit), ""]
    total = time.perf_counter() - started
    env = [f"{v}={os.environ[v]}" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS") if v in os.environ]
    text = "\n".join([
        f"Command: `{' '.join([*env, 'nice -n 5' if os.nice(0) else '', 'python', *sys.argv]).replace('  ', ' ')}`",
        f"Machine: {before} (at start); {machine().rsplit('; ', 1)[1]} (at end)",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; total run {total:.0f} s; "
        f"k = {K}; clock: {args.clock}",
        f"Not installed: {', '.join(missing) or 'none'}",
        "",
        *sections,
    ])
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
