"""Laplacian smoothness against Parseval and the plain network (LGG paper §4.3, Table 3),
on MNIST-5k with the official Laplacian-networks recipe at CPU scale.

Networks (``--network``):

* ``preact``: :class:`~latentgraph.models.PreActResNet18` as in the official code
  (cadurosar/laplacian_networks), width ``--width`` (official: 64), one input channel;
* ``small``: the 3-ReLU :class:`~latentgraph.models.SmallCNN` (width 16), the shallow
  network of the earlier version of this experiment.

Methods, trained with the same data, optimizer and seeds:

* **plain**: cross-entropy;
* **parseval**: cross-entropy with the retraction
  :math:`W \\leftarrow (1+\\beta)W - \\beta WW^\\top W`, β = 0.01, after every step (official
  P.sh); for ``preact`` also the official Parseval architecture (``parseval=True``:
  convolutions divided by √(2k²+1), convex residual sums);
* **laplacian**: cross-entropy + γ^m · mean_ℓ |σ_{ℓ+1} − σ_ℓ| over every ReLU output
  (17 for ``preact``, 3 for ``small``), complete cosine graphs, m = 2 (official R.sh).
  ``preact`` uses the official γ = 0.01. ``small`` uses γ scaled to its depth: the γ for
  which γ^m·L_reg / CE at initialization equals the PreAct-ResNet-18's at γ = 0.01
  (both measured on the first training batch of each tuning seed, ratios averaged).

Recipe (official cifar10.py, scaled down): SGD momentum 0.9, weight decay 5e-4, batch 100,
no augmentation, lr 0.1 for the first half of the epochs and 0.001 for the second half
(official: 50 + 50 epochs). The number of epochs is chosen on the validation split for
the plain network, with the protocol's tuning seeds, from ``--epoch-grid``; the choice is saved
as ``smoothness_<network>_choice.json`` and reused by later runs (shards that split the reported
seeds with ``--seed-list``/``--shard``). The tables are rewritten after every seed.

Attacks on the test split (inputs in [0, 1]). Attacks run on the first ``--attack-images`` (500) test images (CPU budget), clean error on all:

* FGSM at the official budget, SNR = 33 dB: per image ε_i = ‖x_i‖₂ / (√D · 10^{33/20})
  (official test_fgsm.py); the table gives the mean ε_i;
* PGD-L∞ as in the official test_pgd_deepfool.py: ε = 0.01, step 0.002, 20 steps, no
  random start; its SNR is 20·log10(‖x‖₂ / (ε√D)) averaged over the test images;
* FGSM and PGD (10 steps, step ε/4, no random start) at ε = ``--large-eps`` (0.1, the usual
  MNIST budget), with its SNR likewise.

    nice -n 5 python experiments/smoothness.py --network preact
    nice -n 5 python experiments/smoothness.py --network small

writes ``smoothness_<network>_runs`` (one row per seed and method) and
``smoothness_<network>`` (mean ± std and paired difference to plain, 95 % CI) as
CSV + Markdown under ``--output`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import math
import statistics

import torch
import torch.nn.functional as F
from protocol import REPORTED_SEEDS, TUNING_SEEDS, Record, add_shard_options, load_split, saved_choice, summarize_metrics
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.data import make_loader
from latentgraph.losses.laplacian_smoothness import LaplacianSmoothnessLoss, relu_layer_names
from latentgraph.models import PreActResNet18, SmallCNN
from latentgraph.robustness import accuracy_under_attack, error_rate
from latentgraph.robustness.attacks import input_gradient
from latentgraph.seed import seed_everything
from latentgraph.train import Trainer
from latentgraph.train.objectives import ClassificationObjective, LaplacianSmoothnessObjective, ParsevalObjective

OFFICIAL_GAMMA, POWER, PARSEVAL_BETA, OFFICIAL_SNR_DB = 0.01, 2, 0.01, 33.0
PGD_OFFICIAL = {"eps": 0.01, "step_size": 0.002, "steps": 20, "random_start": False}
METRICS = ["clean_error", "fgsm_snr33_error", "pgd_official_error", "fgsm_large_error", "pgd_large_error"]


def build(network: str, width: int, parseval: bool) -> nn.Module:
    if network == "preact":
        return PreActResNet18(width=width, in_channels=1, parseval=parseval)
    return SmallCNN(width=width)


def train(network: str, width: int, objective, split, epochs: int, seed: int) -> nn.Module:
    """The official recipe at ``epochs`` epochs (half at lr 0.1, half at 0.001); eval mode."""
    seed_everything(seed)
    model = build(network, width, isinstance(objective, ParsevalObjective) and network == "preact")
    loader = make_loader(split.x_train, split.y_train, 100, shuffle=True, seed=seed)
    Trainer(model, objective, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
            scheduler=lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [epochs // 2], gamma=0.01),
            seed=seed, progress=False).fit(loader, epochs)
    return model.eval()


def snr_eps(x: Tensor, snr_db: float) -> Tensor:
    r"""Per-image L∞ budget of the official SNR attack: :math:`\lVert x\rVert_2 / (\sqrt{D}\, 10^{snr/20})`."""
    flat = x.flatten(1)
    return flat.norm(dim=1) / (math.sqrt(flat.shape[1]) * 10 ** (snr_db / 20))


def snr_of_eps(x: Tensor, eps: float) -> float:
    r"""Mean SNR (dB) of an L∞ perturbation of size ε on every pixel: :math:`20\log_{10}(\lVert x\rVert_2 / (\varepsilon\sqrt{D}))`."""
    flat = x.flatten(1)
    return float((20 * torch.log10(flat.norm(dim=1) / (eps * math.sqrt(flat.shape[1])))).mean())


def fgsm_snr(model: nn.Module, x: Tensor, y: Tensor, snr_db: float = OFFICIAL_SNR_DB) -> Tensor:
    """FGSM with the official per-image budget (``snr_eps``), clipped to [0, 1]."""
    eps = snr_eps(x, snr_db).view(-1, *[1] * (x.dim() - 1))
    return (x + eps * input_gradient(model, x, y).sign()).clamp(0, 1).detach()


def evaluate(model: nn.Module, x_all: Tensor, y_all: Tensor, large_eps: float, n_attack: int) -> dict[str, float]:
    large = {"eps": large_eps, "step_size": large_eps / 4, "steps": 10, "random_start": False}
    x, y = x_all[:n_attack], y_all[:n_attack]
    return {
        "clean_error": 100 * error_rate(model, x_all, y_all),
        "fgsm_snr33_error": 100 * (1 - accuracy_under_attack(model, x, y, fgsm_snr)),
        "pgd_official_error": 100 * (1 - accuracy_under_attack(model, x, y, "pgd", **PGD_OFFICIAL)),
        "fgsm_large_error": 100 * (1 - accuracy_under_attack(model, x, y, "fgsm", eps=large_eps)),
        "pgd_large_error": 100 * (1 - accuracy_under_attack(model, x, y, "pgd", **large)),
    }


def init_ratio(network: str, width: int, split, seed: int) -> float:
    """L_reg / CE of a freshly initialized network on the first training batch of ``seed``."""
    seed_everything(seed)
    model = build(network, width, False).train()
    x, y = next(iter(make_loader(split.x_train, split.y_train, 100, shuffle=True, seed=seed)))
    names = relu_layer_names(model)
    with torch.no_grad(), capture(model, names) as acts:
        logits = model(x)
    return float(LaplacianSmoothnessLoss(power=POWER)(list(acts.values()), y)) / float(F.cross_entropy(logits, y))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=["preact", "small"], default="preact")
    parser.add_argument("--width", type=int, default=None, help="preact: 4 (official 64); small: 16")
    parser.add_argument("--seeds", type=int, default=5, help="number of reported seeds")
    parser.add_argument("--epoch-grid", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--large-eps", type=float, default=0.1)
    parser.add_argument("--attack-images", type=int, default=500,
                        help="attacks run on the first N test images (CPU budget); clean error on all")
    add_shard_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = Record()
    width = args.width or (4 if args.network == "preact" else 16)
    split = load_split("mnist5k")
    notes = []
    stem = args.output / f"smoothness_{args.network}"

    def val_error(epochs: int, seed: int) -> float:
        return 100 * error_rate(train(args.network, width, ClassificationObjective(), split, epochs, seed),
                                split.x_val, split.y_val)

    epochs = saved_choice(stem.with_name(stem.name + "_choice.json"), args.epoch_grid, val_error,
                          name="epochs (plain network, validation error %)")
    notes.append(epochs.describe())
    print(epochs.describe(), flush=True)

    if args.network == "preact":
        gamma = OFFICIAL_GAMMA
        notes.append(f"γ = {gamma} (official, not tuned), m = {POWER}, complete graphs, all 17 ReLU outputs.")
    else:
        deep = statistics.mean(init_ratio("preact", 4, split, s) for s in TUNING_SEEDS)
        shallow = statistics.mean(init_ratio("small", width, split, s) for s in TUNING_SEEDS)
        gamma = OFFICIAL_GAMMA * math.sqrt(deep / shallow)
        notes.append(f"γ = {gamma:.4g} scaled to the depth: at initialization L_reg/CE is {shallow:.3g} here and "
                     f"{deep:.3g} on the PreAct-ResNet-18 (width 4), mean over tuning seeds {list(TUNING_SEEDS)}; "
                     f"γ = 0.01·√({deep:.3g}/{shallow:.3g}) gives both the same γ^m·L_reg/CE (m = {POWER}).")
    methods = {
        "plain": ClassificationObjective,
        "parseval": lambda: ParsevalObjective(retraction=PARSEVAL_BETA),
        "laplacian": lambda: LaplacianSmoothnessObjective(gamma=gamma, power=POWER),
    }
    x_test = split.x_test[:args.attack_images]
    mean_eps = float(snr_eps(x_test, OFFICIAL_SNR_DB).mean())
    notes.append(
        f"Budgets: FGSM SNR 33 dB = per-image ε, mean ε = {mean_eps:.4f} (official test_fgsm.py); PGD official "
        f"ε = 0.01 (SNR {snr_of_eps(x_test, 0.01):.1f} dB), step 0.002, 20 steps, no random start; large budget "
        f"ε = {args.large_eps:g} (SNR {snr_of_eps(x_test, args.large_eps):.1f} dB), PGD 10 steps of ε/4, "
        f"no random start. SNRs are of the unclipped perturbation, as in the official code.")
    notes.append(f"{args.network} width {width}; SGD momentum 0.9, wd 5e-4, batch 100, lr 0.1 then 0.001 at half; "
                 f"MNIST-5k fixed split (train {len(split.y_train)}, validation {len(split.y_val)}, test "
                 f"{len(split.y_test)}); errors in % on the test split — clean error on all of it, the attacks on its "
                 f"first {args.attack_images} images (CPU budget). Runs from every shard's {stem.name}_runs*.csv.")
    runs = []
    for seed in args.seed_list or REPORTED_SEEDS[:args.seeds]:
        for name, objective in methods.items():
            model = train(args.network, width, objective(), split, epochs.value, seed)
            runs.append({"method": name, "seed": seed, **evaluate(model, split.x_test, split.y_test, args.large_eps,
                                                                  args.attack_images)})
            print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in runs[-1].items()}, flush=True)
        every = record.write_runs(stem, runs, args.shard, title=f"Laplacian smoothness, {args.network}: runs")
        if len({r["seed"] for r in every}) >= 2:  # rewritten after every seed, so a stopped run keeps its seeds
            record.write_table(stem, summarize_metrics(every, by=["method"], metrics=METRICS,
                                                       baseline={"method": "plain"}),
                               title=f"Laplacian smoothness on MNIST-5k, {args.network} (mean ± std; Δ = method − "
                                     f"plain, paired over seeds)", notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
