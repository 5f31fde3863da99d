"""Full-Jacobian experiments on scikit-learn digits and MNIST-5k (Srinivas & Fleuret, 2019).

Three parts, each sized for 2 shared CPU cores:

* ``distill`` — the shape of the paper's Table 2: a SmallCNN teacher (width 16)
  trained on all 1,437 digits, a student of the same architecture trained on
  ``--per-class`` images per class with CE, activation matching, input-Jacobian
  matching, attention transfer, input-Jacobians + attention, full-Jacobians and
  full-Jacobians + attention. Bias-Jacobians are matched at the three BatchNorm
  layers, attention at the three block outputs. Weights: output 0.1,
  input-Jacobian 0.1, bias-Jacobian 1, attention 100 (Zagoruyko & Komodakis'
  β = 1000 swamps CE on the 2×2 maps of ``block3``), chosen from a handful of
  runs on seed 0 (see docs/full-jacobian.md).
* ``regularize`` — the shape of Table 4: CE alone, dropout (p = 0.5), bias
  weight decay (λ‖b‖², λ = 0.1) and the bias-Jacobian penalty (λ = 1) on the
  same layer (``block3``: its convolution and BatchNorm), at several images per
  class.
* ``saliency`` — FullGrad, simple FullGrad and gradient × input maps of a
  SmallCNN trained on MNIST-5k, and the model-randomization sanity check
  (Adebayo et al., 2018): Spearman rank correlation between each image's map
  for the trained network and for the same network with re-initialized
  weights (all layers, and only the top block + head).

    nice -n 5 python experiments/full_jacobian.py --seeds 0 1 2

writes ``full_jacobian_<part>.csv`` / ``.md`` and ``full_jacobian_saliency.png``
under ``--output`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentgraph.atomic import write_csv, write_text
from latentgraph.data import load_digits, load_mnist5k, make_loader, per_class_subset
from latentgraph.jacobian import fullgrad, gradient_times_input, save_saliency_overlays
from latentgraph.models import SmallCNN
from latentgraph.seed import seed_everything
from latentgraph.train import Trainer, evaluate
from latentgraph.train.objectives import ClassificationObjective
from latentgraph.train.objectives.jacobian import METHODS, BiasJacobianObjective, JacobianDistillationObjective

BN_LAYERS = ["block1.1", "block2.1", "block3.1"]
BLOCKS = ["block1", "block2", "block3"]
REG_LAYERS = ["block3.0", "block3.1"]


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def _table(rows: list[dict], row_key: str, col_key: str, value: str, header: str) -> str:
    row_names = list(dict.fromkeys(r[row_key] for r in rows))
    cols = list(dict.fromkeys(r[col_key] for r in rows))
    lines = [f"| {header} | " + " | ".join(str(c) for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name in row_names:
        cells = [_mean_std([r[value] for r in rows if r[row_key] == name and r[col_key] == c]) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _train(model: nn.Module, objective, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int,
           lr: float = 1e-3) -> nn.Module:
    """Adam for about ``steps`` optimizer steps (whole epochs of batches of 64)."""
    loader = make_loader(x, y, batch_size=64, shuffle=True, seed=seed)
    epochs = max(1, round(steps / len(loader)))
    Trainer(model, objective, lambda params: torch.optim.Adam(params, lr=lr), seed=seed,
            progress=False, metrics={}).fit(loader, epochs)
    return model.eval()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * evaluate(model, make_loader(x, y, batch_size=512, shuffle=False))


# ---------------------------------------------------------------------------- distillation
def run_distill(args, out: Path) -> str:
    x_tr, y_tr, x_te, y_te = load_digits()
    rows = []
    for seed in args.seeds:
        seed_everything(seed)
        teacher = _train(SmallCNN(width=16), ClassificationObjective(), x_tr, y_tr, args.teacher_steps, seed)
        teacher_acc = _accuracy(teacher, x_te, y_te)
        print(f"seed {seed}: teacher {teacher_acc:.2f} %", flush=True)
        for n in args.per_class:
            xs, ys = per_class_subset(x_tr, y_tr, n, seed=seed)
            for method in METHODS:
                seed_everything(seed)
                student = SmallCNN(width=16)
                objective = JacobianDistillationObjective(
                    teacher, method=method, layers=BN_LAYERS, attention_layers=BLOCKS,
                    output_weight=args.output_weight, input_weight=args.input_weight, bias_weight=args.bias_weight,
                    attention_weight=args.attention_weight)
                start = time.perf_counter()
                _train(student, objective, xs, ys, args.steps, seed)
                rows.append({"seed": seed, "per_class": n, "method": method,
                             "test_accuracy": round(_accuracy(student, x_te, y_te), 2),
                             "teacher_accuracy": round(teacher_acc, 2),
                             "seconds": round(time.perf_counter() - start, 1)})
                print(rows[-1], flush=True)
    write_csv(out / "full_jacobian_distill.csv", rows)
    teacher = _mean_std([r["teacher_accuracy"] for r in rows if r["method"] == "ce" and r["per_class"] == args.per_class[0]])
    md = (f"Teacher (SmallCNN width 16, all 1,437 digits): {teacher} % test accuracy.\n\n"
          + _table(rows, "method", "per_class", "test_accuracy", "method \\ images per class"))
    write_text(out / "full_jacobian_distill.md", md + "\n")
    return md


# ---------------------------------------------------------------------------- regularization
class BiasWeightDecayObjective:
    """CE + λ Σ ‖b‖² over the bias parameters of the chosen modules (the paper's baseline)."""

    def __init__(self, layers: list[str], weight: float) -> None:
        self.layers, self.weight = layers, weight

    def __call__(self, model: nn.Module, batch) -> dict:
        x, y = batch[0], batch[1]
        modules = dict(model.named_modules())
        decay = sum(modules[name].bias.pow(2).sum() for name in self.layers)
        return {"ce": F.cross_entropy(model(x), y), "bias_decay": self.weight * decay}


def _regularized(method: str, args):
    model = SmallCNN(width=16)
    if method == "dropout":
        model.block3 = nn.Sequential(*model.block3, nn.Dropout(0.5))  # keeps the names block3.0 / block3.1
        return model, ClassificationObjective()
    if method == "bias weight decay":
        return model, BiasWeightDecayObjective(REG_LAYERS, args.bias_decay)
    if method == "bias-Jacobian":
        return model, BiasJacobianObjective(REG_LAYERS, weight=args.penalty_weight)
    return model, ClassificationObjective()


def run_regularize(args, out: Path) -> str:
    x_tr, y_tr, x_te, y_te = load_digits()
    rows = []
    for seed in args.seeds:
        for n in args.reg_per_class:
            xs, ys = per_class_subset(x_tr, y_tr, n, seed=seed)
            for method in ("none", "dropout", "bias weight decay", "bias-Jacobian"):
                seed_everything(seed)
                model, objective = _regularized(method, args)
                start = time.perf_counter()
                _train(model, objective, xs, ys, args.steps, seed)
                rows.append({"seed": seed, "per_class": n, "method": method,
                             "test_accuracy": round(_accuracy(model, x_te, y_te), 2),
                             "seconds": round(time.perf_counter() - start, 1)})
                print(rows[-1], flush=True)
    write_csv(out / "full_jacobian_regularize.csv", rows)
    md = _table(rows, "method", "per_class", "test_accuracy", "method \\ images per class")
    write_text(out / "full_jacobian_regularize.md", md + "\n")
    return md


# ---------------------------------------------------------------------------- saliency
def _spearman(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample Spearman rank correlation of two B×1×H×W map batches over the pixels in ``mask``."""
    from scipy.stats import spearmanr

    return torch.tensor([spearmanr(u[m].numpy(), v[m].numpy())[0] for u, v, m in zip(a, b, mask)])


def _reinitialized(model: nn.Module, blocks: list[str], seed: int) -> nn.Module:
    """A copy of ``model`` whose modules under ``blocks`` get fresh weights and BN statistics."""
    import copy

    torch.manual_seed(10_000 + seed)
    copy_ = copy.deepcopy(model)
    for name in blocks:
        for module in getattr(copy_, name).modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                with torch.no_grad():  # random affine parameters, so the effective biases are non-zero
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
    return copy_.eval()


def run_saliency(args, out: Path) -> str:
    x_tr, y_tr, x_te, y_te = load_mnist5k()
    x_eval = x_te[: args.saliency_images]
    rows = []
    for seed in args.seeds:
        seed_everything(seed)
        model = _train(SmallCNN(width=16), ClassificationObjective(), x_tr, y_tr, args.saliency_steps, seed)
        acc = _accuracy(model, x_te, y_te)
        maps = {"FullGrad": lambda m, x: fullgrad(m, x),
                "simple FullGrad": lambda m, x: fullgrad(m, x, variant="simple"),
                "gradient × input": gradient_times_input}
        target = model(x_eval).argmax(1)
        trained = {name: fn(model, x_eval) for name, fn in maps.items()}
        if seed == args.seeds[0]:
            firsts = [int((y_te == c).nonzero()[0]) for c in range(10)]
            shown = x_te[firsts]
            save_saliency_overlays(shown, {name: fn(model, shown) for name, fn in maps.items()},
                                   out / "full_jacobian_saliency.png",
                                   titles=[f"digit {c}" for c in range(10)])
        for scope, blocks in (("all layers", ["block1", "block2", "block3", "head"]),
                              ("block3 + head", ["block3", "head"])):
            random_model = _reinitialized(model, blocks, seed)
            for name in maps:
                if name == "gradient × input":
                    randomized = gradient_times_input(random_model, x_eval, target=target)
                else:
                    randomized = fullgrad(random_model, x_eval, target=target,
                                          variant="simple" if name.startswith("simple") else "full")
                rho = _spearman(trained[name], randomized, torch.ones_like(x_eval, dtype=torch.bool))
                rho_fg = _spearman(trained[name], randomized, x_eval > 0)
                rows.append({"seed": seed, "model_accuracy": round(acc, 2), "randomized": scope, "map": name,
                             "spearman": round(float(rho.mean()), 4),
                             "spearman_foreground": round(float(rho_fg.mean()), 4)})
                print(rows[-1], flush=True)
    write_csv(out / "full_jacobian_saliency.csv", rows)
    lines = ["| map | ρ, all layers re-initialized | ρ, block3 + head re-initialized "
             "| ρ on foreground pixels, all layers | ρ on foreground pixels, block3 + head |",
             "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["map"] for r in rows):
        cells = [_mean_std([r[key] for r in rows if r["map"] == name and r["randomized"] == s])
                 for key in ("spearman", "spearman_foreground") for s in ("all layers", "block3 + head")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    acc = _mean_std([r["model_accuracy"] for r in rows if r["randomized"] == "all layers" and r["map"] == "FullGrad"])
    md = (f"SmallCNN width 16 on MNIST-5k, test accuracy {acc} %; Spearman ρ between the maps of the "
          f"trained and the re-initialized network, averaged over {args.saliency_images} test images per "
          "seed (all 784 pixels, or only the pixels where the image is non-zero); target = the trained "
          "model's prediction.\n\n"
          + "\n".join(lines))
    write_text(out / "full_jacobian_saliency.md", md + "\n")
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["distill", "regularize", "saliency"],
                        choices=["distill", "regularize", "saliency"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-class", nargs="+", type=int, default=[3, 5, 10])
    parser.add_argument("--reg-per-class", nargs="+", type=int, default=[3, 5, 10])
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per student")
    parser.add_argument("--teacher-steps", type=int, default=300)
    parser.add_argument("--saliency-steps", type=int, default=200)
    parser.add_argument("--saliency-images", type=int, default=100)
    parser.add_argument("--output-weight", type=float, default=0.1)
    parser.add_argument("--input-weight", type=float, default=0.1)
    parser.add_argument("--bias-weight", type=float, default=1.0)
    parser.add_argument("--attention-weight", type=float, default=100.0)
    parser.add_argument("--bias-decay", type=float, default=0.1)
    parser.add_argument("--penalty-weight", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    for part in args.parts:
        md = {"distill": run_distill, "regularize": run_regularize, "saliency": run_saliency}[part](args, args.output)
        print(f"\n## {part}\n\n{md}\n", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s on {platform.machine()} "
          f"({os.cpu_count()} CPU cores, torch {torch.__version__})")


if __name__ == "__main__":
    main()
