"""``latentgraph saliency``: FullGrad saliency maps as image overlays.

Without options it trains :class:`~latentgraph.models.SmallCNN` on
scikit-learn's digits (seeded) and draws FullGrad maps next to plain
gradient × input for a few held-out digits. ``--model`` / ``--checkpoint`` /
``--images`` point it at your own network and images; data and model loading
are those of ``latentgraph analyze``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "draw FullGrad saliency maps (full-Jacobian) for a few images, next to gradient × input"

log = logging.getLogger("latentgraph.saliency")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``latentgraph saliency`` to ``parser``."""
    parser.add_argument("--model", metavar="MODULE:FACTORY",
                        help="a callable returning a torch.nn.Module (default: SmallCNN)")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="state dict to load (weights_only=True); skips training")
    parser.add_argument("--images", metavar="FILE.npz",
                        help="arrays 'x' (N×C×H×W) and 'y'; without --checkpoint a seeded 80%% "
                        "trains the model and the maps are drawn on the rest (default: digits)")
    parser.add_argument("--output", default="latentgraph-saliency", metavar="DIR",
                        help="folder for saliency.png, saliency.npz and the trained model.pt "
                        "(default: %(default)s)")
    parser.add_argument("--variant", default="full", choices=("full", "simple"),
                        help="FullGrad (bias-Jacobians) or simple FullGrad (raw gradients) (default: %(default)s)")
    parser.add_argument("--count", type=int, default=8, help="images to draw (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in --output that latentgraph did not write")


def run(args: argparse.Namespace) -> int:
    """Run ``latentgraph saliency``; returns 0 on success."""
    import numpy as np
    import torch

    from ..atomic import write_atomic
    from ..data import make_loader
    from ..jacobian import fullgrad, gradient_times_input
    from ..viz import save_saliency_overlays
    from ..seed import seed_everything
    from ..train import fit
    from ..outputs import prepare_output
    from ..train.checkpoint import save_atomic
    from .analyze import load_checkpoint_option, load_data, model_from_option, resolve_device

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    if args.epochs < 0:
        raise ValueError(f"--epochs must be at least 0, got {args.epochs}")
    device = resolve_device(args.device)
    manifest = prepare_output(args.output, ("model.pt", "saliency.png", "saliency.npz"), args.overwrite)
    seed_everything(args.seed)
    x_train, y_train, x_eval, y_eval, data_name = load_data(args.images, args.seed,
                                                            holdout=not args.checkpoint)
    if x_eval.dim() != 4:
        raise ValueError(f"--images: saliency maps need N×C×H×W images, got shape {tuple(x_eval.shape)}")
    model, model_name = model_from_option(args.model, x_eval, y_eval)
    model.to(device)
    out = Path(args.output)
    if args.checkpoint:
        load_checkpoint_option(model, args.checkpoint)
    elif args.epochs > 0:
        log.info("training %s on %s for %d epochs", model_name, data_name, args.epochs)
        fit(model, make_loader(x_train, y_train, batch_size=64, shuffle=True, seed=args.seed),
            epochs=args.epochs, lr=1e-3, device=device, seed=args.seed, progress=False)
        weights = save_atomic(model.state_dict(), out / "model.pt")
        manifest.record(["model.pt"])
        log.info("saved the trained weights to %s (reuse them with --checkpoint)", weights)
    model.eval()
    # one image per class first, then the next ones in order
    firsts = [int((y_eval == c).nonzero()[0]) for c in torch.unique(y_eval)]
    rest = [i for i in range(len(y_eval)) if i not in set(firsts)]
    chosen = torch.tensor((firsts + rest)[: args.count])
    x, y = x_eval[chosen].to(device), y_eval[chosen]
    maps = fullgrad(model, x, variant=args.variant)
    baseline = gradient_times_input(model, x)
    with torch.no_grad():
        predicted = model(x).argmax(1).cpu()
    out.mkdir(parents=True, exist_ok=True)
    name = "FullGrad" if args.variant == "full" else "simple FullGrad"
    titles = [f"y={int(a)} pred={int(b)}" for a, b in zip(y, predicted)]
    figure = save_saliency_overlays(x.cpu(), {name: maps.cpu(), "gradient × input": baseline.cpu()},
                                    out / "saliency.png", titles=titles)
    arrays = write_atomic(out / "saliency.npz", lambda f: np.savez(
        f, x=x.cpu().numpy(), y=y.numpy(), predicted=predicted.numpy(),
        fullgrad=maps.cpu().numpy(), gradient_times_input=baseline.cpu().numpy()))
    manifest.record(["saliency.png", "saliency.npz"])
    print(f"{name} maps of {len(y)} images from {data_name} with {model_name}: {figure}, {arrays}")
    return 0
