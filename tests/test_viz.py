"""Every plotting function leaves the caller's matplotlib backend and pyplot state as they were."""
from __future__ import annotations

import matplotlib
import torch

from latentgraph import viz
from latentgraph.eval import analyze


def _plots(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    result = analyze(model, torch.rand(12, 3), torch.arange(12) % 3, k=3, batch_size=12, num_batches=1)
    return {
        "plot_label_variation": lambda: viz.plot_label_variation(result, tmp_path / "lv.png"),
        "draw_latent_graphs": lambda: viz.draw_latent_graphs({"input": result.graphs["input"][0]}, tmp_path / "g.png"),
        "plot_accuracy_curves": lambda: viz.plot_accuracy_curves({"CE": ([0, 0.1], [0.9, 0.5])}, tmp_path / "a.png"),
        "plot_corruption_errors": lambda: viz.plot_corruption_errors({"CE": {"contrast": [0.1, 0.3]}},
                                                                     tmp_path / "c.png"),
        "save_saliency_overlays": lambda: viz.save_saliency_overlays(torch.rand(2, 1, 6, 6),
                                                                     {"map": torch.rand(2, 1, 6, 6)},
                                                                     tmp_path / "s.png"),
        "scatter_by_hyperparameter": lambda: viz.scatter_by_hyperparameter(
            [{"m": 0.1 * i, "gap": 0.01 * i, "width": 8 + 8 * (i % 2)} for i in range(4)], "m", ["width"],
            tmp_path / "m.png"),
        "report": lambda: result.write_report(tmp_path / "report"),
    }


def test_every_public_plot_is_covered(tmp_path):
    assert set(viz.__all__) <= set(_plots(tmp_path))


def test_the_callers_backend_and_pyplot_state_are_unchanged(tmp_path):
    backend = "svg"  # a non-Agg backend, as a notebook or an svg-writing caller would have
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    try:
        plt.switch_backend(backend)
        open_figures = plt.get_fignums()
        for name, plot in _plots(tmp_path).items():
            written = plot()
            assert written, name
            assert matplotlib.get_backend() == backend, f"{name} switched the backend"
            assert plt.get_fignums() == open_figures, f"{name} left a pyplot figure open"
    finally:
        plt.switch_backend(previous)
