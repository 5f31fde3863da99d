"""Start-up time of ``import latentgraph`` and of the command line, as ratios to ``import torch``.

Each case is a fresh interpreter (``python -c ...`` or ``python -m
latentgraph.cli ...``); the cases are timed in turn, round after round, and
the median of the rounds is divided by the median of ``import torch`` (the
floor: every case needs torch). Target: ``latentgraph --help`` ≤ 1.3×.
The last column says which of PyG, PyGSP, networkx, SciPy and matplotlib
the case imported (none is the goal for all but the last row, which builds a
graph and so needs PyG).

Usage::

    nice -n 5 python benchmarks/startup.py --output benchmarks/results/startup.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch_geometric", "pygsp", "networkx", "scipy", "matplotlib")
# printed at exit by every case, so the table can say what each one imported
REPORT = ("import atexit, sys; atexit.register(lambda: print('HEAVY', "
          f"[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)); ")

CASES = {
    "python -c 'import torch'": ["-c", REPORT + "import torch"],
    "python -c 'import latentgraph'": ["-c", REPORT + "import latentgraph"],
    "latentgraph --help": ["-c", REPORT + "import sys; sys.argv = ['latentgraph', '--help']; "
                           "import runpy; runpy.run_module('latentgraph.cli', run_name='__main__')"],
    "latentgraph analyze --data missing.npz": ["-c", REPORT + "import sys; sys.argv = ['latentgraph', 'analyze', "
                                               "'--data', 'missing.npz', '--output', 'startup-report']; "
                                               "import runpy; runpy.run_module('latentgraph.cli', run_name='__main__')"],
    "python -c 'lg.latent_graph(...)'": ["-c", REPORT + "import torch, latentgraph as lg; "
                                         "lg.latent_graph(torch.rand(10, 3), k=2)"],
}


def run(args: list[str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    heavy = next((line.split(" ", 1)[1] for line in done.stderr.splitlines() if line.startswith("HEAVY ")), "?")
    return elapsed, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args()
    cwd = os.environ.get("TMPDIR", "/tmp")
    times: dict[str, list[float]] = {name: [] for name in CASES}
    imported: dict[str, str] = {}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, argv in CASES.items():
            elapsed, imported[name] = run(argv, cwd)
            times[name].append(elapsed)
    floor = statistics.median(times["python -c 'import torch'"])
    header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
              f"{os.cpu_count()} CPU cores shared with other jobs (load average {load:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}, "
              f"median of {args.rounds} interleaved rounds\n")
    lines = ["| case | median (s) | ratio to import torch | heavy modules imported |", "|---|---|---|---|"]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| `{name}` | {median:.2f} | {median / floor:.2f} | {imported[name]} |")
    text = header + "\n" + "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        from latentgraph.atomic import write_text

        write_text(args.output, text)


if __name__ == "__main__":
    main()
