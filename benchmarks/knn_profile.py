"""Where the time of ``lg.latent_graph`` goes: a CPU-time breakdown per stage.

For each B × D case, times (process CPU time, best of repeats, one thread)
the whole ``lg.latent_graph(x, k=10)`` on a non-negative random batch, its
exact search (``torch_knn_search``), the search's matrix products alone
(the same blocks, nothing else) and faiss's own exact search of the same
neighbours. The search minus its products is the top-k selection; the graph
minus the search is symmetrization, weights, normalization and the ``Data``.

Usage::

    nice -n 5 python benchmarks/knn_profile.py --cases 128x64 1024x512 4096x64 20000x128
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch

import latentgraph as lg
from latentgraph.graphs import knn

K = 10


def best(fn: Callable[[], object], budget: float) -> float:
    """Least CPU time of ``fn()`` over up to 20 repeats within ``budget`` s (at least 2)."""
    times: list[float] = []
    while len(times) < 20 and (sum(times) < budget or len(times) < 2):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def products(e: torch.Tensor) -> None:
    """The search's matrix products alone, block by block: the row blocks of
    ``blocked_topk``, or where the search uses it the tiles on and above the
    diagonal of ``symmetric_topk``."""
    if knn._symmetric_pays(*e.shape):
        bounds = knn._block_bounds(e.shape[0], K, knn._TILE)
        tiles = list(zip(bounds[:-1], bounds[1:]))
        for i, (a0, a1) in enumerate(tiles):
            for b0, b1 in tiles[i:]:
                e[a0:a1] @ e[b0:b1].T
        return
    bounds = knn._block_bounds(e.shape[0], K, knn._COLS)
    for r0 in range(0, e.shape[0], knn._ROWS):
        for c0, c1 in zip(bounds[:-1], bounds[1:]):
            e[r0:r0 + knn._ROWS] @ e[c0:c1].T


def faiss_search(x: torch.Tensor) -> object:
    import faiss

    e = torch.nn.functional.normalize(x, dim=1).numpy()
    return faiss.knn(e, e, K + 1, metric=faiss.METRIC_INNER_PRODUCT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["128x64", "1024x512", "4096x64"], metavar="BxD")
    parser.add_argument("--budget", type=float, default=1.0, help="time spent repeating one stage (s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        faiss = None
    print("| B × D | latent_graph (ms) | search | products | top-k (search − products) "
          "| rest (graph − search) | faiss (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in args.cases:
        b, d = map(int, case.lower().split("x"))
        x = torch.rand(b, d, generator=torch.Generator().manual_seed(0))
        e = torch.nn.functional.normalize(x, dim=1)
        lg.latent_graph(x, k=K)  # warm-up
        graph = best(lambda: lg.latent_graph(x, k=K), args.budget)
        search = best(lambda: knn.torch_knn_search(x, K, "cosine"), args.budget)
        prods = best(lambda: products(e), args.budget)
        ref = best(lambda: faiss_search(x), args.budget) if faiss is not None else float("nan")
        print(f"| {b} × {d} | {graph * 1e3:.2f} | {search * 1e3:.2f} | {prods * 1e3:.2f} | "
              f"{(search - prods) * 1e3:.2f} | {(graph - search) * 1e3:.2f} | {ref * 1e3:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
