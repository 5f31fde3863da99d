"""Approximate kNN search with cheaper parameters than the defaults, on the features of
``benchmarks/dataset_graph.py``: search time (one run, neighbour table only) and recall@10
against exact scores (``lg.knn_recall``, 1,000 queries).

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/approximate_parameters.py --size 100000x128
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from dataset_graph import K, features  # noqa: E402

import latentgraph as lg  # noqa: E402
from latentgraph.graphs.approximate import HNSWSearch, IVFSearch  # noqa: E402
from latentgraph.graphs.similarity import get_similarity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="100000x128", help="N×D (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, dim = (int(v) for v in args.size.lower().split("x"))
    x, _ = features(n, dim)
    print(f"{n:,} × {dim}, load average {os.getloadavg()[0]:.1f}", flush=True)
    for name, search in (("IVFSearch(nprobe=20)", IVFSearch(nprobe=20)),
                         ("HNSWSearch(m=16, ef_construction=40, ef_search=48)",
                          HNSWSearch(m=16, ef_construction=40, ef_search=48))):
        start = time.perf_counter()
        idx = search(x, K, get_similarity("cosine"))
        seconds = time.perf_counter() - start
        print(f"{name}: {seconds:.1f} s, recall@10 {lg.knn_recall(x, idx, 'cosine', queries=1000):.4f}", flush=True)


if __name__ == "__main__":
    main()
