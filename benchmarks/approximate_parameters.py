"""Approximate kNN graphs under a grid of search parameters: process CPU time of the whole
graph (``lg.latent_graph``, search included) and recall@10 of its neighbour table against
exact scores (``lg.knn_recall``, 1,000 queries), next to faiss's exact search.

Data sets: ``latent16`` is ``benchmarks/dataset_graph.py``'s features (10 classes, a
16-dimensional latent code through a random linear map and a ReLU; cosine); ``latent64``
the same with a 64-dimensional code (harder: higher intrinsic dimension); ``gaussian``
i.i.d. standard normal features (no structure at all; RBF). A search is written
``ivf`` / ``ivf:NLIST:NPROBE[:NITER]`` or ``hnsw`` / ``hnsw:M:EF_CONSTRUCTION:EF_SEARCH``
(``ivf`` and ``hnsw`` alone: the defaults; ``-`` keeps one default).
Times are CPU seconds of this process (``time.process_time``), one run each, on 1 thread.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/approximate_parameters.py --sizes 100000x128 \\
        --data latent16 latent64 --searches ivf ivf:-:8 ivf:-:32 hnsw --output approx.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from dataset_graph import K, faiss_search, features  # noqa: E402

import latentgraph as lg  # noqa: E402
from latentgraph.atomic import write_text  # noqa: E402
from latentgraph.graphs.approximate import HNSWSearch, IVFSearch  # noqa: E402
from latentgraph.graphs.knn import KNN_BACKENDS  # noqa: E402

DATA = {
    "latent16": lambda n, dim: features(n, dim)[0],
    "latent64": lambda n, dim: features(n, dim, latent_dim=64)[0],
    "gaussian": lambda n, dim: torch.randn(n, dim, generator=torch.Generator().manual_seed(0)),
}


def parse_search(spec: str) -> IVFSearch | HNSWSearch:
    """``ivf:NLIST:NPROBE[:NITER]`` or ``hnsw:M:EF_CONSTRUCTION:EF_SEARCH``, ``-`` for a default."""
    kind, *values = spec.split(":")
    cls, names = {"ivf": (IVFSearch, ("nlist", "nprobe", "niter")),
                  "hnsw": (HNSWSearch, ("m", "ef_construction", "ef_search"))}[kind]
    return cls(**{name: int(v) for name, v in zip(names, values) if v != "-"})


def describe(search: IVFSearch | HNSWSearch, n: int) -> str:
    """The parameters a search runs with at ``n`` samples, defaults resolved."""
    if isinstance(search, IVFSearch):
        nlist = min(search.nlist or search.default_nlist(n), n)
        nprobe = min(search.nprobe or search.default_nprobe(nlist, K), nlist)
        return f"IVF nlist={nlist} nprobe={nprobe} niter={search.niter}"
    return f"HNSW M={search.m} efC={search.ef_construction} efS={search.ef_search or max(96, 2 * K)}"


class Recorded:
    """A search that keeps its last neighbour table, so the timed graph's recall can be measured."""

    def __init__(self, search: IVFSearch | HNSWSearch) -> None:
        self.search, self.found = search, None

    def __call__(self, x: torch.Tensor, k: int, sim: object) -> object:
        result = self.search(x, k, sim)
        self.found = result[0] if isinstance(result, tuple) else result
        return result


def cpu_seconds(fn) -> tuple[object, float]:
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10000x128", "100000x128"], help="N×D (default: %(default)s)")
    parser.add_argument("--data", nargs="+", default=["latent16", "latent64"], choices=sorted(DATA),
                        help="data sets (default: %(default)s)")
    parser.add_argument("--searches", nargs="+", default=["ivf", "hnsw"], help="searches (default: %(default)s)")
    parser.add_argument("--exact", action="store_true", help="also time faiss's exact search and the exact torch graph")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lg.latent_graph(*features(3000, 8), k=K)  # imports (PyG) untimed
    header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
              f"load average {os.getloadavg()[0]:.1f} at the start, 1 thread, torch {torch.__version__}, k = {K}, "
              "process CPU seconds\n\n")
    lines = ["| data | N × D | method | graph CPU (s) | recall@10 |", "|---|---|---|---|---|"]
    print(header + "\n".join(lines), flush=True)
    for size in args.sizes:
        n, dim = (int(v) for v in size.lower().split("x"))
        for data in args.data:
            x = DATA[data](n, dim)
            y = torch.zeros(n, dtype=torch.long)
            rows = []
            if args.exact:
                _, seconds = cpu_seconds(lambda: faiss_search(x))
                rows.append(("faiss exact search (IndexFlatL2)", seconds, 1.0))
                _, seconds = cpu_seconds(lambda: lg.latent_graph(x, y, k=K, backend="torch"))
                rows.append(("exact torch graph", seconds, 1.0))
            for spec in args.searches:
                search = Recorded(parse_search(spec))
                KNN_BACKENDS["benchmark"] = (search, lambda: True)
                _, seconds = cpu_seconds(lambda: lg.latent_graph(x, y, k=K, backend="benchmark"))
                rows.append((describe(search.search, n), seconds, lg.knn_recall(x, search.found, queries=1000)))
            for method, seconds, recall in rows:
                lines.append(f"| {data} | {n:,} × {dim} | {method} | {seconds:.2f} | {recall:.3f} |")
                print(lines[-1], flush=True)
            if args.output is not None:  # after every data set, so a cut run keeps what it measured
                write_text(args.output, header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
