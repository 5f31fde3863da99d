r"""Gradient attacks on image classifiers: FGSM and PGD (:math:`L_\infty`, :math:`L_2`).

Inputs live in :math:`[0, 1]`; any normalization (mean/std) belongs inside the
model. Attacks run the model in eval mode (no BatchNorm statistics update, no
dropout) and restore every submodule's train/eval flag afterwards. Gradients
are taken with :func:`torch.autograd.grad` with respect to the input only, so
the parameters' ``.grad`` fields are left untouched.

The loss an attack ascends is selectable: ``loss_fn(model, x, y) -> scalar``
(default: cross-entropy of ``model(x)``), so a regularized loss such as CE plus
an isometry term can be attacked as its authors did.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.eval.accuracy import batch_slices, eval_mode, predict
from latentgraph.validation import check_choice, check_flag, check_int, check_labels, check_number, check_tensor

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


def cross_entropy_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The default attack loss: mean cross-entropy of ``model(x)`` against ``y``.

    Example:
        >>> model = nn.Linear(2, 3)
        >>> cross_entropy_loss(model, torch.zeros(1, 2), torch.tensor([0])).shape
        torch.Size([])
    """
    return F.cross_entropy(model(x), y)


def _check_images(x: object, name: str = "x") -> Tensor:
    x = check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty batch of shape B×…, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"`{name}` must lie in [0, 1] (put normalization inside the model); "
            f"got values in [{x.min().item():.4g}, {x.max().item():.4g}]"
        )
    return x


def _check_targets(y: object, x: Tensor, num_classes: int | None = None) -> Tensor:
    """Labels of ``x``: class indices ≥ 0 (below ``num_classes`` when known); a label
    of -100, cross-entropy's ignore index, would leave its input unperturbed."""
    return check_labels(y, x.shape[0], x.device, "y", num_classes)


def _num_classes(model: nn.Module, x: Tensor) -> int | None:
    """Number of logits ``model`` gives for one input (``None`` when it does not give ``B×C`` logits)."""
    with eval_mode(model), torch.no_grad():
        out = model(x[:1])
    return out.shape[1] if isinstance(out, Tensor) and out.dim() == 2 else None


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn | None = None) -> Tensor:
    r""":math:`\nabla_x \mathrm{loss}(model, x, y)`, computed with the model as it is
    (callers choose the mode); parameters' ``.grad`` are not touched.

    Example:
        >>> model = nn.Linear(3, 2)
        >>> g = input_gradient(model, torch.rand(4, 3), torch.tensor([0, 1, 0, 1]))
        >>> g.shape, model.weight.grad is None
        (torch.Size([4, 3]), True)
    """
    loss_fn = cross_entropy_loss if loss_fn is None else loss_fn
    x = x.detach().requires_grad_(True)
    loss = loss_fn(model, x, y)
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        raise ValueError("`loss_fn` must return a scalar tensor")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, loss_fn: LossFn | None = None) -> Tensor:
    r"""Fast gradient sign method (Goodfellow et al., 2015).

    .. math::
        x_{adv} = \mathrm{clip}_{[0,1]}\big(x + \varepsilon\,
        \mathrm{sign}(\nabla_x \mathrm{loss}(x, y))\big)

    Args:
        model (nn.Module): classifier taking inputs in :math:`[0, 1]`.
        x (Tensor): inputs of shape ``B×…`` with values in :math:`[0, 1]`.
        y (Tensor): targets of shape ``[B]``.
        eps (float): :math:`L_\infty` budget, ≥ 0.
        loss_fn (callable, optional): ``loss_fn(model, x, y) -> scalar``.
            (default: cross-entropy)

    Returns:
        Tensor: adversarial inputs, detached, same shape as ``x``.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x_adv = fgsm(model, torch.rand(2, 1, 2, 2), torch.tensor([0, 2]), eps=0.1)
        >>> x_adv.shape
        torch.Size([2, 1, 2, 2])
    """
    x = _check_images(x)
    y = _check_targets(y, x, _num_classes(model, x))  # once per attack, not per step
    eps = check_number(eps, "eps")
    with eval_mode(model):
        grad = input_gradient(model, x, y, loss_fn)
    return (x.detach() + eps * grad.sign()).clamp(0, 1)


def _per_sample_norm(t: Tensor) -> Tensor:
    """L2 norm of each sample, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _project(delta: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "inf":
        return delta.clamp(-eps, eps)
    scale = (eps / _per_sample_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    if norm == "inf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    # uniform in the L2 ball: Gaussian direction, radius eps·U^(1/d)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
    dim = x[0].numel()
    u = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, device=x.device, dtype=x.dtype)
    return direction * eps * u.pow(1.0 / dim)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "inf",
    random_start: bool = True,
    loss_fn: LossFn | None = None,
    seed: int | None = None,
) -> Tensor:
    r"""Projected gradient descent (Madry et al., 2018), :math:`L_\infty` or :math:`L_2`.

    Starting from :math:`x_0 = x` (or a uniform random point of the ball), each
    step ascends the loss and projects back:

    .. math::
        x_{t+1} = \mathrm{clip}_{[0,1]}\Big(x + \Pi_{\varepsilon}\big(x_t +
        \alpha\, g_t - x\big)\Big),

    with :math:`g_t = \mathrm{sign}(\nabla)` for ``norm="inf"`` (projection: clamp
    to :math:`[-\varepsilon, \varepsilon]`) and :math:`g_t = \nabla / \lVert\nabla\rVert_2`
    per sample for ``norm="2"`` (projection: rescale onto the ball). Clipping to
    :math:`[0, 1]` only shrinks the perturbation, so the result stays in the ball.

    Args:
        model (nn.Module): classifier taking inputs in :math:`[0, 1]`.
        x (Tensor): inputs ``B×…`` in :math:`[0, 1]`.
        y (Tensor): targets ``[B]``.
        eps (float): radius of the ball, ≥ 0.
        step_size (float): :math:`\alpha`, ≥ 0.
        steps (int): number of steps, ≥ 1.
        norm (str): ``"inf"`` or ``"2"``. (default: :obj:`"inf"`)
        random_start (bool): start from a uniform random point of the ball.
            (default: :obj:`True`)
        loss_fn (callable, optional): ``loss_fn(model, x, y) -> scalar``.
            (default: cross-entropy)
        seed (int, optional): seed of the random start; ``None`` uses the
            global generator. (default: :obj:`None`)

    Returns:
        Tensor: adversarial inputs, detached.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(2, 1, 2, 2)
        >>> x_adv = pgd(model, x, torch.tensor([0, 2]), eps=0.1, step_size=0.05, steps=3, seed=0)
        >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
        True
    """
    x = _check_images(x)
    y = _check_targets(y, x, _num_classes(model, x))  # once per attack, not per step
    eps = check_number(eps, "eps")
    step_size = check_number(step_size, "step_size")
    steps = check_int(steps, "steps", minimum=1)
    random_start = check_flag(random_start, "random_start")
    norm = check_choice(str(norm), "norm", ("inf", "2"))
    generator = None
    if seed is not None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    x = x.detach()
    delta = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
    x_adv = (x + delta).clamp(0, 1)
    with eval_mode(model):
        for _ in range(steps):
            grad = input_gradient(model, x_adv, y, loss_fn)
            if norm == "inf":
                step = grad.sign()
            else:
                step = grad / _per_sample_norm(grad).clamp_min(1e-12)
            delta = _project(x_adv + step_size * step - x, eps, norm)
            x_adv = (x + delta).clamp(0, 1)
    return x_adv


def accuracy_under_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: str | Callable[..., Tensor] = "fgsm",
    batch_size: int = 256,
    **attack_kwargs: object,
) -> float:
    r"""Accuracy of ``model`` on ``attack(model, x, y, **attack_kwargs)``.

    ``attack`` is ``"fgsm"``, ``"pgd"`` or a callable with the same signature.
    Attacks run batch by batch; the accuracy is the share of samples whose
    adversarial version is still classified as ``y``.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x, y = torch.rand(5, 1, 2, 2), torch.randint(0, 3, (5,))
        >>> 0.0 <= accuracy_under_attack(model, x, y, "fgsm", eps=0.1) <= 1.0
        True
    """
    attack_fn = ATTACKS[check_choice(attack, "attack", ATTACKS)] if isinstance(attack, str) else attack
    if not callable(attack_fn):
        raise TypeError(f"`attack` must be a name or a callable, got {type(attack).__name__}")
    x = _check_images(x)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    y = _check_targets(y, x, _num_classes(model, x))
    correct = 0
    for s in batch_slices(x.shape[0], batch_size):
        x_adv = attack_fn(model, x[s], y[s], **attack_kwargs)
        correct += int((predict(model, x_adv, batch_size) == y[s]).sum())
    return correct / x.shape[0]


def accuracy_curve(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_values: Sequence[float],
    attack: str | Callable[..., Tensor] = "fgsm",
    batch_size: int = 256,
    **attack_kwargs: object,
) -> list[float]:
    r"""Accuracy under ``attack`` for each budget in ``eps_values`` (an accuracy-vs-ε curve).

    For ``"pgd"``, pass ``step_size`` as a number or as ``"relative"`` with
    ``step_fraction`` (default 2.5/steps, Madry's rule) to scale it with ε.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x, y = torch.rand(5, 1, 2, 2), torch.randint(0, 3, (5,))
        >>> len(accuracy_curve(model, x, y, [0.0, 0.1, 0.3]))
        3
    """
    curve = []
    for eps in eps_values:
        kwargs = dict(attack_kwargs)
        if kwargs.get("step_size") == "relative":
            if "steps" not in kwargs:
                raise ValueError("step_size='relative' scales the step with ε as step_fraction·ε "
                                 "(default step_fraction = 2.5/steps): pass `steps` too")
            fraction = kwargs.pop("step_fraction", 2.5 / check_int(kwargs["steps"], "steps", minimum=1))
            kwargs["step_size"] = float(eps) * float(fraction)
        curve.append(accuracy_under_attack(model, x, y, attack, batch_size, eps=eps, **kwargs))
    return curve


ATTACKS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "pgd": pgd}
