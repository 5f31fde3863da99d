"""Full-Jacobian experiments on the shared protocol (Srinivas & Fleuret, 2019).

Three parts, each on a fixed split of ``experiments/protocol.py`` and sized
for 2 shared CPU cores:

* ``distill`` — the shape of the paper's Table 2 on scikit-learn digits
  (1,137 train / 300 validation / 360 test): a SmallCNN teacher (width 16)
  trained on the whole training part, a student of the same architecture
  trained on ``--per-class`` images per class with CE, activation matching,
  input-Jacobian matching, attention transfer, input-Jacobians + attention,
  full-Jacobians and full-Jacobians + attention. Bias-Jacobians are matched at
  the three BatchNorm layers, attention at the three block outputs. The
  weights are chosen on validation with the tuning seeds at
  ``--tune-per-class`` images per class, one after the other: the output
  weight (activation matching), then the input-Jacobian weight
  (i-Jacobians), the attention weight (attention) and the bias-Jacobian
  weight (full-Jacobians); the combined rows reuse those choices.
* ``regularize`` — the shape of Table 4: CE alone, dropout after ``block3``,
  bias weight decay (λ‖b‖²) and the bias-Jacobian penalty on the same layer
  (``block3``: its convolution and BatchNorm), a SmallCNN of width
  ``--reg-width`` at ``--reg-per-class`` images per class. Every network is
  trained for ``--reg-steps`` steps and the epoch with the lowest validation
  error is kept (training to a validation plateau); p and both λ are chosen
  on validation with the tuning seeds.
* ``saliency`` — FullGrad, simple FullGrad and gradient × input maps of a
  SmallCNN trained on MNIST-5k (3,500 train), and the model-randomization
  sanity check (Adebayo et al., 2018): Spearman rank correlation between each
  test image's map for the trained network and for the same network with
  re-initialized weights (all layers, and only the top block + head).

    OMP_NUM_THREADS=1 nice -n 5 python experiments/full_jacobian.py

writes ``full_jacobian_<part>`` tables (``.csv`` and ``.md``; ``_runs`` per
run, ``_choices`` the validation grids) and ``full_jacobian_saliency.png``
under ``--output`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn

from latentgraph.data import make_loader, per_class_subset
from latentgraph.jacobian import fullgrad, gradient_times_input, save_saliency_overlays
from latentgraph.models import SmallCNN
from latentgraph.seed import seed_everything
from latentgraph.train import Trainer, evaluate
from latentgraph.train.objectives import BiasJacobianObjective, ClassificationObjective, JacobianDistillationObjective
from protocol import (REPORTED_SEEDS, Record, add_run_options, choose_on_validation, load_split, paired_difference,
                      start_run, summarize)

BN_LAYERS = ["block1.1", "block2.1", "block3.1"]
BLOCKS = ["block1", "block2", "block3"]
REG_LAYERS = ["block3.0", "block3.1"]
DISTILL_METHODS = ["ce", "activation", "input_jacobian", "attention", "input_jacobian+attention", "full_jacobian",
                   "full_jacobian+attention"]


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * (1.0 - evaluate(model, make_loader(x, y, batch_size=512, shuffle=False)))


def _train(model: nn.Module, objective, x, y, steps: int, seed: int, lr: float = 1e-3, metrics=None,
           eval_loader=None) -> nn.Module:
    """Adam for about ``steps`` optimizer steps (whole epochs of batches of 64)."""
    loader = make_loader(x, y, batch_size=64, shuffle=True, seed=seed)
    epochs = max(1, round(steps / len(loader)))
    Trainer(model, objective, lambda params: torch.optim.Adam(params, lr=lr), seed=seed, progress=False,
            metrics=metrics or {}).fit(loader, epochs, eval_loader=eval_loader)
    return model.eval()


# ---------------------------------------------------------------------------- distillation
def run_distill(args, record: Record) -> None:
    split = load_split("digits")
    seed_everything(args.teacher_seed)
    teacher = _train(SmallCNN(width=16), ClassificationObjective(), split.x_train, split.y_train,
                     args.teacher_steps, args.teacher_seed)
    teacher_error = _error(teacher, split.x_test, split.y_test)
    print(f"teacher: test error {teacher_error:.2f} %", flush=True)
    weights = {"output_weight": 1.0, "input_weight": 1.0, "bias_weight": 1.0, "attention_weight": 1000.0}

    def student(method, n, seed, **override):
        seed_everything(seed)
        x, y = per_class_subset(split.x_train, split.y_train, n, seed=seed)
        objective = (ClassificationObjective() if method == "ce" else JacobianDistillationObjective(
            teacher, method=method, layers=BN_LAYERS, attention_layers=BLOCKS, **{**weights, **override}))
        return _train(SmallCNN(width=16), objective, x, y, args.steps, seed)

    grids = [("activation", "output_weight", args.output_grid), ("input_jacobian", "input_weight", args.input_grid),
             ("attention", "attention_weight", args.attention_grid), ("full_jacobian", "bias_weight", args.bias_grid)]
    notes, choices = [f"Teacher: SmallCNN width 16, seed {args.teacher_seed}, on the {len(split.y_train)} "
                      f"training digits: test error {teacher_error:.2f} %."], []
    for method, key, grid in grids:
        choice = choose_on_validation(grid, lambda v, s, m=method, k=key: _error(
            student(m, args.tune_per_class, s, **{k: v}), split.x_val, split.y_val), name=f"{key} ({method})")
        weights[key] = choice.value
        notes.append(choice.describe())
        choices += [{"method": method, "weight": key, "value": g, "validation error (%)": round(sc, 2),
                     "chosen": "yes" if g == choice.value else ""} for g, sc in zip(choice.grid, choice.scores)]
        print(choice.describe(), flush=True)
    record.write_table(args.output / "full_jacobian_distill_choices", choices,
                       title=f"Weights chosen on validation ({args.tune_per_class} per class, tuning seeds)")
    runs = []
    for seed in REPORTED_SEEDS[:args.seeds]:
        for n in args.per_class:
            for method in DISTILL_METHODS:
                error = _error(student(method, n, seed), split.x_test, split.y_test)
                runs.append({"per_class": n, "method": method, "seed": seed, "error": round(error, 2)})
                print(runs[-1], flush=True)
        record.write_table(args.output / "full_jacobian_distill_runs", runs)
    summary = summarize(runs, by=["per_class", "method"], metric="error", baseline={"method": "ce"})
    record.write_table(args.output / "full_jacobian_distill", summary,
                       title="Test error (%) on digits, student trained on n images per class", notes=notes)
    comparisons = []
    for n in args.per_class:
        for method, baseline in (("full_jacobian", "input_jacobian"),
                                 ("full_jacobian+attention", "input_jacobian+attention")):
            a = [r["error"] for r in runs if r["per_class"] == n and r["method"] == method]
            b = [r["error"] for r in runs if r["per_class"] == n and r["method"] == baseline]
            comparisons.append({"per_class": n, "comparison": f"{method} − {baseline}", "seeds": len(a),
                                "Δ error (95 % CI)": str(paired_difference(a, b))})
    record.write_table(args.output / "full_jacobian_distill_comparisons", comparisons,
                       title="What the bias-Jacobian term adds (paired, percentage points of test error)")


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


class BestOnValidation:
    """A trainer metric, called after every epoch, that measures the validation error every
    ``every`` epochs and keeps the weights of the epoch where it was lowest."""

    def __init__(self, every: int) -> None:
        self.every, self.epochs = every, 0
        self.best, self.best_epoch, self.state, self.last = float("inf"), 0, None, float("nan")

    def __call__(self, model: nn.Module, loader) -> float:
        self.epochs += 1
        if self.epochs % self.every == 0:
            self.last = 100.0 * (1.0 - evaluate(model, loader))
            if self.last < self.best:
                self.best, self.best_epoch, self.state = self.last, self.epochs, copy.deepcopy(model.state_dict())
        return self.last


def _regularized(method: str, value: float | None, width: int):
    model = SmallCNN(width=width)
    if method == "dropout":
        model.block3 = nn.Sequential(*model.block3, nn.Dropout(value))  # keeps the names block3.0 / block3.1
        return model, ClassificationObjective()
    if method == "bias weight decay":
        return model, BiasWeightDecayObjective(REG_LAYERS, value)
    if method == "bias-Jacobian":
        return model, BiasJacobianObjective(REG_LAYERS, weight=value)
    return model, ClassificationObjective()


def run_regularize(args, record: Record) -> None:
    split = load_split("digits")
    val_loader = make_loader(split.x_val, split.y_val, batch_size=512, shuffle=False)

    def trained(method, value, seed):
        seed_everything(seed)
        x, y = per_class_subset(split.x_train, split.y_train, args.reg_per_class, seed=seed)
        model, objective = _regularized(method, value, args.reg_width)
        best = BestOnValidation(args.reg_eval_every)
        _train(model, objective, x, y, args.reg_steps, seed, metrics={"val_error": best}, eval_loader=val_loader)
        model.load_state_dict(best.state)
        return model.eval(), best

    grids = {"dropout": args.dropout_grid, "bias weight decay": args.decay_grid, "bias-Jacobian": args.penalty_grid}
    chosen: dict[str, float | None] = {"none": None}
    notes, choices = [], []
    for method, grid in grids.items():
        choice = choose_on_validation(grid, lambda v, s, m=method: trained(m, v, s)[1].best, name=method)
        chosen[method] = choice.value
        notes.append(choice.describe())
        choices += [{"method": method, "value": g, "validation error (%)": round(sc, 2),
                     "chosen": "yes" if g == choice.value else ""} for g, sc in zip(choice.grid, choice.scores)]
        print(choice.describe(), flush=True)
    record.write_table(args.output / "full_jacobian_regularize_choices", choices,
                       title="Strengths chosen on validation (tuning seeds)")
    runs = []
    for seed in REPORTED_SEEDS[:args.reg_seeds]:
        for method, value in chosen.items():
            model, best = trained(method, value, seed)
            runs.append({"method": method, "value": value if value is not None else "", "seed": seed,
                         "error": round(_error(model, split.x_test, split.y_test), 2),
                         "best epoch": best.best_epoch, "of epochs": best.epochs})
            print(runs[-1], flush=True)
        record.write_table(args.output / "full_jacobian_regularize_runs", runs)
        if seed != REPORTED_SEEDS[0]:  # after every seed: partial results survive
            record.write_table(args.output / "full_jacobian_regularize",
                               summarize(runs, by=["method"], metric="error", baseline={"method": "none"}),
                               title=(f"Test error (%) on digits, SmallCNN width {args.reg_width}, "
                                      f"{args.reg_per_class} images per class, best validation epoch of "
                                      f"{args.reg_steps} steps"), notes=notes)


# ---------------------------------------------------------------------------- saliency
def _spearman(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample Spearman rank correlation of two B×1×H×W map batches over the pixels in ``mask``."""
    from scipy.stats import spearmanr

    return torch.tensor([spearmanr(u[m].numpy(), v[m].numpy())[0] for u, v, m in zip(a, b, mask)])


def _reinitialized(model: nn.Module, blocks: list[str], seed: int) -> nn.Module:
    """A copy of ``model`` whose modules under ``blocks`` get fresh weights and BN statistics."""
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


def run_saliency(args, record: Record) -> None:
    split = load_split("mnist5k")
    x_eval = split.x_test[: args.saliency_images]
    maps = {"FullGrad": lambda m, x, t=None: fullgrad(m, x, target=t),
            "simple FullGrad": lambda m, x, t=None: fullgrad(m, x, target=t, variant="simple"),
            "gradient × input": lambda m, x, t=None: gradient_times_input(m, x, target=t)}
    runs = []
    for seed in REPORTED_SEEDS[:args.saliency_seeds]:
        seed_everything(seed)
        model = _train(SmallCNN(width=16), ClassificationObjective(), split.x_train, split.y_train,
                       args.saliency_steps, seed)
        error = _error(model, split.x_test, split.y_test)
        target = model(x_eval).argmax(1)
        trained = {name: fn(model, x_eval, target) for name, fn in maps.items()}
        if seed == REPORTED_SEEDS[0]:
            firsts = [int((split.y_test == c).nonzero()[0]) for c in range(10)]
            shown = split.x_test[firsts]
            save_saliency_overlays(shown, {name: fn(model, shown) for name, fn in maps.items()},
                                   args.output / "full_jacobian_saliency.png",
                                   titles=[f"digit {c}" for c in range(10)])
        for scope, blocks in (("all layers", ["block1", "block2", "block3", "head"]),
                              ("block3 + head", ["block3", "head"])):
            randomized = _reinitialized(model, blocks, seed)
            for name, fn in maps.items():
                other = fn(randomized, x_eval, target)
                for pixels, mask in (("all", torch.ones_like(x_eval, dtype=torch.bool)), ("foreground", x_eval > 0)):
                    runs.append({"map": name, "re-initialized": scope, "pixels": pixels, "seed": seed,
                                 "model error (%)": round(error, 2),
                                 "spearman": round(float(_spearman(trained[name], other, mask).mean()), 4)})
        print(runs[-1], flush=True)
        record.write_table(args.output / "full_jacobian_saliency_runs", runs)
    summary = summarize(runs, by=["re-initialized", "pixels", "map"], metric="spearman",
                        baseline={"map": "gradient × input"}, digits=3)
    errors = [r["model error (%)"] for r in runs if r["map"] == "FullGrad" and r["pixels"] == "all"
              and r["re-initialized"] == "all layers"]
    record.write_table(args.output / "full_jacobian_saliency", summary,
                       title="Spearman ρ between the maps of the trained and the re-initialized network",
                       notes=[f"SmallCNN width 16 on MNIST-5k ({args.saliency_steps} Adam steps), test errors "
                              f"{errors} %; ρ averaged over {args.saliency_images} test images per seed, "
                              "target = the trained network's prediction; lower ρ = the map depends more on "
                              "the weights (passes the check)."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["saliency", "distill", "regularize"],
                        choices=["distill", "regularize", "saliency"])
    parser.add_argument("--seeds", type=int, default=5, help="reported seeds of the distillation part")
    parser.add_argument("--per-class", nargs="+", type=int, default=[3, 10])
    parser.add_argument("--tune-per-class", type=int, default=5)
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per student")
    parser.add_argument("--teacher-seed", type=int, default=0)
    parser.add_argument("--teacher-steps", type=int, default=300)
    parser.add_argument("--output-grid", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--input-grid", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--attention-grid", type=float, nargs="+", default=[100.0, 1000.0])
    parser.add_argument("--bias-grid", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--reg-seeds", type=int, default=5)
    parser.add_argument("--reg-width", type=int, default=64)
    parser.add_argument("--reg-per-class", type=int, default=5)
    parser.add_argument("--reg-steps", type=int, default=300)
    parser.add_argument("--reg-eval-every", type=int, default=10, help="epochs between validation checks")
    parser.add_argument("--dropout-grid", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--decay-grid", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--penalty-grid", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    parser.add_argument("--saliency-seeds", type=int, default=5)
    parser.add_argument("--saliency-steps", type=int, default=200)
    parser.add_argument("--saliency-images", type=int, default=100)
    add_run_options(parser)
    args = parser.parse_args(argv)
    record = start_run(args)
    for part in args.parts:
        {"distill": run_distill, "regularize": run_regularize, "saliency": run_saliency}[part](args, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
