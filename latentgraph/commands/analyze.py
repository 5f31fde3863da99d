"""``latentgraph analyze``: how the classes separate, layer by layer.

Without options it trains :class:`~latentgraph.models.SmallCNN` on
scikit-learn's digits (seeded), then analyses held-out batches with
:func:`latentgraph.analyze` and writes the report under ``--output``. Options
point it at your own data (``--data``: a ``.npz`` with ``x`` and ``y``, a
``.pt``/``.npy`` file, or a folder of images with one subfolder per class) and
model (``--model module:factory`` with ``--model-kwargs``, and ``--checkpoint``).
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import logging
import time
from pathlib import Path

#: Files ``AnalysisResult.write_report`` may write into ``--output``.
REPORT_FILES = ("report.md", "table.csv", "graphs.pt", "label_variation.png", "latent_graphs.png", "whole_set.md")

HELP = "train a small CNN on digits (or load your model) and report how its layers separate the classes"

log = logging.getLogger("latentgraph.analyze")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``latentgraph analyze`` to ``parser``."""
    data = parser.add_argument_group("data and model")
    data.add_argument("--data", metavar="PATH",
                      help="a .npz with arrays 'x' (N×D vectors or N×C×H×W images) and 'y' (N integer labels); "
                      "a .pt holding {'x': ..., 'y': ...} or (x, y); a .npy or .pt of samples with --labels; or a "
                      "folder of PNG/JPEG images with one subfolder per class (see --image-size). 20%% of the "
                      "samples (seeded) are held out for the analysis (default: scikit-learn digits)")
    data.add_argument("--labels", metavar="FILE",
                      help="a .npy or .pt of N integer labels, for a --data file of samples alone")
    data.add_argument("--image-size", metavar="SIZE",
                      help="resize the images of a --data folder to SIZE×SIZE or H×W pixels, e.g. 32 or 64x48 "
                      "(default: keep them; they must then all have one size)")
    data.add_argument("--model", metavar="MODULE:FACTORY",
                      help="a callable returning a torch.nn.Module, e.g. mypkg.nets:make_net, "
                      "torchvision.models:resnet18 or path/to/nets.py:make_net (default: SmallCNN for images, "
                      "MLP for vectors)")
    data.add_argument("--model-kwargs", nargs="+", metavar="KEY=VALUE",
                      help="keyword arguments of the factory: key=value pairs (values read as JSON or Python "
                      "literals, else kept as text), or one JSON object, e.g. num_classes=10 or "
                      "'{\"num_classes\": 10}'")
    data.add_argument("--checkpoint", metavar="FILE",
                      help="a state dict or trainer checkpoint to load (torch.load with weights_only=True); skips training "
                      "and analyses all of --data")
    graphs = parser.add_argument_group("graphs")
    graphs.add_argument("--layers", metavar="NAMES",
                        help="comma-separated module names in depth order; 'input' is the input "
                        "(default: input and each top-level block of the model)")
    graphs.add_argument("--k", type=int, default=10, help="neighbours per node (default: %(default)s)")
    graphs.add_argument("--similarity", default="auto", choices=("auto", "cosine", "rbf", "pearson"),
                        help="auto (default): cosine for non-negative features, RBF otherwise")
    graphs.add_argument("--no-normalize", dest="normalize", action="store_false",
                        help="keep raw weights instead of D^-1/2 A D^-1/2")
    graphs.add_argument("--batch-size", type=int, default=100, help="samples per analysed batch (default: %(default)s)")
    graphs.add_argument("--batches", type=int, default=5, help="batches to average over (default: %(default)s)")
    graphs.add_argument("--whole", action="store_true",
                        help="also build each layer's graph of the whole analysed set (lg.dataset_graph) and "
                        "report its normalized label variation next to the batch averages")
    graphs.add_argument("--whole-backend", default="torch", choices=("torch", "faiss", "faiss-ivf", "faiss-hnsw"),
                        help="kNN search for --whole: exact torch or faiss, approximate faiss-ivf or faiss-hnsw "
                        "(default: %(default)s)")
    train = parser.add_argument_group("training (when no --checkpoint is given)")
    train.add_argument("--epochs", type=int, default=10, help="training epochs (default: %(default)s)")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: %(default)s)")
    run_ = parser.add_argument_group("run")
    run_.add_argument("--seed", type=int, default=0, help="seed of training and batch draws (default: %(default)s)")
    run_.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    run_.add_argument("--threads", type=int, default=None,
                      help="CPU threads for PyTorch; 1 is often faster on a busy machine (default: PyTorch's)")
    run_.add_argument("--output", default="latentgraph-report", metavar="DIR", help="report folder (default: %(default)s)")
    run_.add_argument("--no-plots", dest="plots", action="store_false", help="skip the two figures")
    run_.add_argument("--overwrite", action="store_true",
                      help="replace report files in --output that latentgraph did not write")


def run(args: argparse.Namespace) -> int:
    """Run ``latentgraph analyze``; returns 0 on success."""
    import torch

    from ..seed import seed_everything
    from ..outputs import prepare_output

    for name in ("k", "batch_size", "batches", "epochs", "threads"):
        low = 0 if name == "epochs" else 1
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if args.k is not None and args.k >= args.batch_size:
        raise ValueError(f"--k must be below --batch-size ({args.batch_size}): a node has at most "
                         f"{args.batch_size - 1} neighbours, got {args.k}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    manifest = prepare_output(args.output, REPORT_FILES, args.overwrite)  # before any work
    seed_everything(args.seed)

    x_train, y_train, x_eval, y_eval, data_name = load_data(args.data, args.seed, holdout=not args.checkpoint,
                                                            labels=args.labels, image_size=args.image_size)
    model, model_name = model_from_option(args.model, x_eval, y_eval, parse_kwargs(args.model_kwargs))
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    if layers is not None:  # before training, so that a typo does not cost a training run
        from ..eval.layers import check_layers

        try:
            check_layers(model, layers)
        except ValueError as error:
            raise ValueError(f"--layers: {str(error).removeprefix('`layers`: ')}") from None
    model.to(device)
    log.info("data: %s — %s%d samples to analyse, of shape %s", data_name,
             f"{len(y_train)} to train on, " if y_train is not None else "", len(y_eval), tuple(x_eval.shape[1:]))
    log.info("model: %s (%d parameters)", model_name, sum(p.numel() for p in model.parameters()))

    info: dict[str, object] = {"command": f"`{getattr(args, 'command_line', 'latentgraph analyze')}`",
                               "data": data_name, "model": model_name}
    if args.checkpoint:
        load_checkpoint_option(model, args.checkpoint)
        info["checkpoint"] = args.checkpoint
        log.info("loaded checkpoint %s", args.checkpoint)
    if args.batch_size > len(y_eval):
        raise ValueError(f"--batch-size must be at most the {len(y_eval)} samples analysed, got {args.batch_size}")
    if not args.checkpoint and args.epochs > 0:
        from ..data import make_loader
        from ..train import fit

        start = time.perf_counter()
        log.info("training for %d epochs on %s", args.epochs, device)
        fit(model, make_loader(x_train, y_train, batch_size=64, shuffle=True, seed=args.seed),
            epochs=args.epochs, lr=args.lr, device=device, seed=args.seed, progress=True)
        info["training"] = f"{args.epochs} epochs, {time.perf_counter() - start:.1f} s on {device}"
    accuracy = held_out_accuracy(model, x_eval, y_eval, device)
    if accuracy is not None:
        info["held-out accuracy"] = f"{100 * accuracy:.1f} % on {len(y_eval)} samples"
        log.info("held-out accuracy: %.1f %%", 100 * accuracy)

    from ..eval import analyze  # PyG, on first use: a bad option above fails fast

    start = time.perf_counter()
    result = analyze(model, x_eval, y_eval, layers=layers, k=args.k, similarity=args.similarity,
                     normalize=args.normalize, batch_size=args.batch_size, num_batches=args.batches,
                     seed=args.seed, device=device)
    log.info("analysed %d layers on %d batches of %d in %.1f s",
             len(result.layers), args.batches, args.batch_size, time.perf_counter() - start)
    print(result.format_table())
    files = result.write_report(args.output, info=info, plots=args.plots)
    if args.whole:
        from ..atomic import write_text

        table = whole_set_table(model, x_eval, y_eval, result, args, device)
        print(table)
        files["whole set"] = write_text(Path(args.output) / "whole_set.md", table + "\n")
    manifest.record(path.name for path in files.values())
    for kind, path in files.items():
        log.info("wrote %-14s %s", kind, path)
    return 0


def load_checkpoint_option(model, path: str) -> None:
    """Load ``--checkpoint`` (a state dict or trainer checkpoint, ``weights_only=True``)
    into ``model``; errors name the option."""
    from ..torch_files import load_model_weights

    try:
        load_model_weights(model, path)
    except (FileNotFoundError, ValueError) as error:
        raise type(error)(f"--checkpoint: {error}") from error


def resolve_device(name: str | None):
    """``torch.device(name)``, or CUDA when available and ``name`` is ``None``;
    a :class:`ValueError` naming ``--device`` for a malformed or absent device
    (:func:`latentgraph.device.resolve_device`, shared with the trainer)."""
    from ..device import resolve_device as resolve

    return resolve(name, where="--device")


def load_data(path: str | None, seed: int, holdout: bool = True, labels: str | None = None,
              image_size: str | None = None):
    """``(x_train, y_train, x_eval, y_eval, description)``: the digits split by
    default, else the samples at ``path`` (:func:`read_data`), of which a
    seeded 20 % is held out for evaluation with ``holdout=True``, or all
    evaluated (no training part)."""
    import torch

    from ..data import load_digits

    if path is None:
        for option, value in (("--labels", labels), ("--image-size", image_size)):
            if value is not None:
                raise ValueError(f"{option} needs --data")
        x_train, y_train, x_test, y_test = load_digits()
        return x_train, y_train, x_test, y_test, "scikit-learn digits (8×8, 10 classes)"
    x, y, path = read_data(path, labels, image_size)
    if not holdout:
        return None, None, x, y, f"{path} (all {len(y)} samples)"
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    held = order[: max(1, len(y) // 5)]
    return x[order[len(held):]], y[order[len(held):]], x[held], y[held], f"{path} (seeded 80/20 split)"


def read_data(path: str, labels: str | None = None, image_size: str | None = None):
    """``(x, y, description)`` of ``--data``: a folder of class subfolders
    (:func:`~latentgraph.data.load_image_folder`), a ``.npz``
    (:func:`~latentgraph.data.load_npz`) or a ``.npy``/``.pt`` file
    (:func:`~latentgraph.data.load_tensors`); errors name the option."""
    from ..data import load_image_folder, load_npz, load_tensors

    folder = Path(path).is_dir()
    if image_size is not None and not folder:
        raise ValueError("--image-size applies to a --data folder of images only")
    if labels is not None and Path(path).suffix.lower() not in (".npy", ".pt", ".pth"):
        raise ValueError("--labels applies to a --data .npy or .pt file only")
    if not folder and not Path(path).is_file():
        raise FileNotFoundError(f"--data: no such file or folder {path!r}")
    try:
        if folder:
            x, y, classes = load_image_folder(path, size=parse_size(image_size))
            return x, y, f"{path} ({len(classes)} classes, {x.shape[-2]}×{x.shape[-1]} images)"
        if Path(path).suffix.lower() == ".npz":
            x, y = load_npz(path)
        else:
            x, y = load_tensors(path, labels)
    except (FileNotFoundError, ValueError, TypeError) as error:
        raise type(error)(f"--data: {error}") from None
    return x, y, path


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"32"`` → ``(32, 32)``, ``"64x48"`` → ``(64, 48)`` (height × width); ``None`` stays ``None``."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) not in (1, 2) or min(size) < 1:
        raise ValueError(f"--image-size must be SIZE or HxW with positive integers, e.g. 32 or 64x48; got {text!r}")
    return (size[0], size[-1])


def parse_kwargs(items: list[str] | None) -> dict[str, object]:
    """The factory's keyword arguments from ``--model-kwargs``: one JSON object,
    or ``key=value`` items whose values are read as JSON, else as a Python
    literal (:func:`ast.literal_eval`, which evaluates no code), else kept as
    text.

    Example:
        >>> parse_kwargs(["num_classes=10", "weights=None", "name=resnet", "sizes=(1, 2)"])
        {'num_classes': 10, 'weights': None, 'name': 'resnet', 'sizes': (1, 2)}
        >>> parse_kwargs(['{"num_classes": 10, "pretrained": false}'])
        {'num_classes': 10, 'pretrained': False}
    """
    if not items:
        return {}
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        try:
            kwargs = json.loads(items[0])
        except json.JSONDecodeError as error:
            raise ValueError(f"--model-kwargs: not a JSON object ({error}): {items[0]!r}") from None
        if not isinstance(kwargs, dict):
            raise ValueError(f"--model-kwargs must be a JSON object, got {items[0]!r}")
        return kwargs
    kwargs: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--model-kwargs takes key=value pairs (or one JSON object), got {item!r}")
        if key in kwargs:
            raise ValueError(f"--model-kwargs: {key!r} is given twice")
        kwargs[key] = _literal(text.strip())
    return kwargs


def _literal(text: str) -> object:
    """``text`` as JSON, else as a Python literal, else as itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def model_from_option(spec: str | None, x, y, kwargs: dict[str, object] | None = None):
    """The model named by ``spec`` (``module:factory`` or ``file.py:factory``,
    called with ``kwargs``), or the default for the data: SmallCNN for
    ``N×C×H×W`` images, MLP for ``N×D`` vectors."""
    from torch import nn

    kwargs = kwargs or {}
    if spec is None and kwargs:
        raise ValueError("--model-kwargs needs --model")
    if spec is None:
        from ..models import MLP, SmallCNN

        classes = int(y.max()) + 1
        if x.dim() == 4:
            return SmallCNN(in_channels=x.shape[1], num_classes=classes), f"SmallCNN(in_channels={x.shape[1]})"
        if x.dim() == 2:
            return MLP(in_features=x.shape[1], num_classes=classes), f"MLP(in_features={x.shape[1]})"
        raise ValueError(f"--data: the default models take N×C×H×W images or N×D vectors, got x of shape "
                         f"{tuple(x.shape)}; reshape it or pass --model")
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model must look like module:factory or path/to/file.py:factory, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise FileNotFoundError(f"no such file {module_name!r}")
            module_spec = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as error:
        raise ValueError(f"--model: cannot import {module_name!r} ({type(error).__name__}: {error})") from error
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"--model: {module_name!r} has no callable {attr!r}")
    call = f"{spec}({', '.join(f'{key}={value!r}' for key, value in kwargs.items())})" if kwargs else spec
    try:
        model = factory(**kwargs)
    except Exception as error:
        hint = "; pass its arguments with --model-kwargs" if not kwargs else ""
        raise ValueError(f"--model: calling {call} failed ({type(error).__name__}: {error}){hint}") from error
    if not isinstance(model, nn.Module):
        raise TypeError(f"--model: {call} returned {type(model).__name__}, not a torch.nn.Module")
    check_model_runs(model, x, call)
    return model, call


def check_model_runs(model, x, spec: str) -> None:
    """One clear error, before any training, for a ``--model`` that does not run on the data."""
    import torch

    from ..eval.accuracy import eval_mode

    try:
        with eval_mode(model), torch.no_grad():
            model(x[:2].to(next((t.device for t in model.parameters()), x.device)))
    except (RuntimeError, ValueError, TypeError, IndexError) as error:  # shape mismatches, wrong dtypes
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"--model: {spec} does not run on the data's inputs of shape {tuple(x.shape[1:])} "
                         f"({type(error).__name__}: {first[:200]})") from None


def held_out_accuracy(model, x, y, device) -> float | None:
    """Top-1 accuracy (:func:`latentgraph.train.evaluate`) of ``model`` on
    ``(x, y)``, or ``None`` when its output is not one score per class."""
    import torch

    from ..data import make_loader
    from ..eval import eval_mode, evaluate

    with eval_mode(model), torch.no_grad():
        out = model(x[:2].to(device))
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] <= int(y.max()):
        return None
    return evaluate(model, make_loader(x, y, batch_size=512, shuffle=False), device=device)


def whole_set_table(model, x, y, result, args: argparse.Namespace, device) -> str:
    """``--whole``: a Markdown table of each layer's graph of all ``len(y)`` samples
    (:func:`latentgraph.dataset_graph`, same k, similarity and normalization)
    beside the batch mean ± std of the normalized label variation."""
    from ..data import make_loader
    from ..graphs.dataset import dataset_graph
    from ..gsp import label_variation

    start = time.perf_counter()
    graphs = dataset_graph(model, make_loader(x, y, batch_size=256, shuffle=False), result.names, k=args.k,
                           similarity=args.similarity, normalize=args.normalize, backend=args.whole_backend,
                           device=device)
    log.info("built the whole-set graphs of %d samples in %.1f s", len(y), time.perf_counter() - start)
    lines = [f"Whole analysed set: {len(y)} samples, k = {args.k}, backend {args.whole_backend}; batches: "
             f"{args.batches} of {args.batch_size}.", "",
             "| layer | edges (whole set) | normalized LV, whole set | normalized LV, batches (mean ± std) |",
             "|---|---|---|---|"]
    for layer in result.layers:
        g = graphs[layer.layer]
        lines.append(f"| {layer.layer} | {g.edge_index.shape[1] // 2} | {float(label_variation(g, normalized=True)):.4f} | "
                     f"{layer.mean('label_variation_normalized'):.4f} ± {layer.std('label_variation_normalized'):.4f} |")
    return "\n".join(lines)
