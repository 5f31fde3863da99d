"""Graphs of whole data sets: exact and approximate kNN graphs of N samples, their recall,
peak memory, and label variation + eigenmaps through sparse operators.

For each N × D, the features are those of a trained layer in miniature: 10
classes, a 16-dimensional latent code per sample (class centre + unit
Gaussian noise), mapped to D dimensions by a fixed random matrix, plus a
little noise, through a ReLU (non-negative, so ``similarity="auto"`` is
cosine). Every method builds the k = 10 graph of the same features:

* ``faiss search``: faiss's own exact search (``IndexFlatL2`` on the
  normalized rows, k + 1 neighbours, nothing else): the reference time;
* ``exact torch`` / ``exact faiss``: ``lg.latent_graph(x, y, k=10,
  backend=...)``, the whole graph (search, symmetrization, weights, a PyG
  ``Data``);
* ``faiss-ivf`` / ``faiss-hnsw``: the same with an approximate backend
  (default parameters, :mod:`latentgraph.graphs.approximate`), with
  recall@10 of its neighbour table against the exact search
  (``lg.knn_recall`` on 1,000 queries);
* ``LV + eigenmaps``: ``lg.label_variation(g, normalized=True)`` and
  ``lg.eigenmaps(g, dim=3)`` on the exact graph (sparse Lanczos, no N × N).

Peak memory is the rise of the process's resident-set high-water mark
(``VmHWM``, reset through ``/proc/self/clear_refs`` before each step) above
the memory held before it; a dense N × N float32 matrix would need 4 N² bytes
(40 GB at N = 10⁵). Times are wall-clock seconds of one run each (these
steps take seconds to minutes; repeats would not fit a shared machine).

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/dataset_graph.py --threads 1 \\
        --sizes 10000x64 10000x512 100000x64 100000x128 --output benchmarks/results/dataset_graph.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import latentgraph as lg
from latentgraph.atomic import write_text
from latentgraph.graphs.approximate import faiss_threads

K = 10


def features(n: int, dim: int, seed: int = 0, latent_dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative N × D features of 10 classes with a ``latent_dim``-dimensional latent structure."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=gen)
    centres = torch.randn(10, latent_dim, generator=gen)
    latent = centres[y] + torch.randn(n, latent_dim, generator=gen)
    mixing = torch.randn(latent_dim, dim, generator=gen) / 4.0
    return (latent @ mixing + 0.1 * torch.randn(n, dim, generator=gen)).relu_(), y


def _status(field: str) -> int:
    """A ``/proc/self/status`` field, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measured(fn: Callable[[], object]) -> tuple[object, float, int]:
    """``(result, seconds, peak bytes above the memory held before)``."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    before = _status("VmRSS")
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start, _status("VmHWM") - before


def faiss_search(x: torch.Tensor) -> object:
    import faiss

    e = torch.nn.functional.normalize(x, dim=1).numpy()
    with faiss_threads():
        index = faiss.IndexFlatL2(e.shape[1])
        index.add(e)
        return index.search(e, K + 1)[1]


def mib(n: int) -> str:
    return f"{n / 2**20:.0f}"


def row(n: int, dim: int, exact_faiss_limit: int) -> list[str]:
    x, y = features(n, dim)
    cells = [f"{n:,} × {dim}"]
    _, ref, _ = measured(lambda: faiss_search(x))
    cells.append(f"{ref:.2f}")
    g, t_torch, m_torch = measured(lambda: lg.latent_graph(x, y, k=K, backend="torch"))
    cells += [f"{t_torch:.2f} ({t_torch / ref:.2f}×)", mib(m_torch)]
    if n <= exact_faiss_limit:
        _, t, _ = measured(lambda: lg.latent_graph(x, y, k=K, backend="faiss"))
        cells.append(f"{t:.2f} ({t / ref:.2f}×)")
    else:
        cells.append("not run")
    for backend in ("faiss-ivf", "faiss-hnsw"):
        _, t, m = measured(lambda: lg.latent_graph(x, y, k=K, backend=backend))
        recall = lg.knn_recall(x, lg.knn_indices(x, K, "auto", backend=backend), queries=1000)
        cells.append(f"{t:.2f} ({t / t_torch:.2f} of exact torch), recall {recall:.3f}, {mib(m)} MiB")
    (sigma, coords), t, m = measured(lambda: (lg.label_variation(g, normalized=True), lg.eigenmaps(g, dim=3)))
    assert coords.shape == (n, 3) and torch.isfinite(coords).all()
    cells.append(f"{t:.2f} s, {mib(m)} MiB (LV {float(sigma):.3f})")
    cells.append(f"{4 * n * n / 2**30:.1f} GiB")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10000x64", "10000x512", "100000x64", "100000x512"],
                        help="N×D cases (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch and faiss threads (default: %(default)s)")
    parser.add_argument("--exact-faiss-limit", type=int, default=10**5,
                        help="largest N at which the faiss-backend graph is also built (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lg.eigenmaps(lg.latent_graph(*features(3000, 8), k=K), dim=3, method="sparse")  # imports (PyG, scipy) untimed
    load = os.getloadavg()
    header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
              f"{os.cpu_count()} CPU cores shared with other jobs (load average {load[0]:.1f} at the start), "
              f"{args.threads} torch/faiss thread(s), torch {torch.__version__}, k = {K}\n")
    lines = ["| N × D | faiss search (s) | exact torch graph (s, ratio to faiss search) | its peak (MiB) | "
             "exact faiss graph (s) | faiss-ivf graph | faiss-hnsw graph | LV + 3 eigenmaps | dense N×N would need |",
             "|---|---|---|---|---|---|---|---|---|"]
    print(header + "\n" + "\n".join(lines), flush=True)
    for size in args.sizes:
        n, dim = (int(v) for v in size.lower().split("x"))
        lines.append("| " + " | ".join(row(n, dim, args.exact_faiss_limit)) + " |")
        print(lines[-1], flush=True)
        text = header + f"load average after this row: {os.getloadavg()[0]:.1f}\n\n" + "\n".join(lines) + "\n"
        if args.output is not None:  # after every row, so a cut run keeps what it measured
            write_text(args.output, text)


if __name__ == "__main__":
    main()
