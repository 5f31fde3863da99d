"""Start-up cost: ``import latentgraph``, its subpackages, and the CLI's help and
argument errors import none of the heavy libraries (they are loaded on first use)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import latentgraph as lg

HEAVY = ("torch_geometric", "pygsp", "networkx", "scipy", "matplotlib", "sklearn")

# One fresh interpreter runs every case in turn (one torch import in all) and
# prints, after each, which heavy modules it has imported so far.
PROBE = """
import json, sys
heavy = {heavy!r}
loaded = lambda: [name for name in heavy if name in sys.modules]
import latentgraph
report = {{"import latentgraph": loaded()}}
from latentgraph.cli import main
for argv in {argvs!r}:
    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    report[" ".join(argv)] = loaded()
import latentgraph.eval, latentgraph.jacobian, latentgraph.losses, latentgraph.robustness, latentgraph.train
report["subpackages"] = loaded()
print("REPORT", json.dumps(report))
"""

CASES = [
    ["--help"],
    ["analyze", "--help"],
    ["train", "--help"],
    ["saliency", "--help"],
    ["analyze", "--no-such-option"],
    ["analyze", "--k", "0"],
    ["analyze", "--data", "no-such-file.npz"],
    ["train", "--config", "no-such-file.yaml"],
]


def test_import_and_cli_help_and_errors_load_no_heavy_library(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(lg.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, argvs=CASES)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    cases = ["import latentgraph", *(" ".join(argv) for argv in CASES), "subpackages"]
    assert report == {case: [] for case in cases}


def test_lazy_public_names_resolve_and_are_listed():
    names = dir(lg)
    for name in lg.__all__:
        assert name in names
        assert getattr(lg, name) is not None
    from latentgraph.graphs import latent_graph
    from latentgraph.gsp import laplacian
    from latentgraph.losses import GKDLoss

    assert lg.latent_graph is latent_graph and lg.laplacian is laplacian and lg.losses.GKDLoss is GKDLoss
    assert callable(lg.capture)  # the function, not the submodule of the same name


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        lg.no_such_name  # noqa: B018
