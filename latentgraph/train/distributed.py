"""Data-parallel training with :mod:`torch.distributed` (``torchrun``).

Under ``torchrun`` every process (rank) holds a full copy of the model and
sees its own shard of each batch. The trainer keeps the copies identical the
way :class:`~torch.nn.parallel.DistributedDataParallel` does — parameters
broadcast from rank 0 at the start, gradients averaged over ranks before
every optimizer step — but does the averaging itself, after the objective's
backward pass. Objectives therefore receive the user's own module (layers can
be captured by name) and may run extra forward/backward passes (adversarial
examples, Jacobians), which DDP's reducer does not allow.

Relational losses compare samples with each other, so a rank's shard alone
gives a different graph than the whole batch. :func:`gather_features` builds
the batch over all ranks in rank order.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ..validation import check_choice, check_number, check_tensor

GATHER_MODES = ("none", "nograd", "grad")


def is_distributed() -> bool:
    """Whether a :mod:`torch.distributed` process group is initialized."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this process logs and writes files (rank 0)."""
    return get_rank() == 0


#: Seconds a rank waits for the others in a collective before it gives up (gloo's own default is 30 min).
DEFAULT_TIMEOUT = 600.0


def init_from_env(timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Initialize the process group from ``torchrun``'s environment variables.

    Uses NCCL when CUDA is available (and binds the process to GPU
    ``LOCAL_RANK``), Gloo otherwise. Returns ``False`` without doing anything
    when ``WORLD_SIZE`` is unset or 1 or a group already exists.

    Args:
        timeout (float): seconds a collective (gradient average, barrier) waits
            for a rank that stopped answering before it fails; a frozen rank
            thus stops the job after ``timeout`` instead of hanging.
            (default: :obj:`600`)
    """
    timeout = check_number(timeout, "timeout", positive=True)
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=timeout))
    else:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    return True


def lost_rank_message(error: BaseException) -> str | None:
    """One line for a collective that failed because another rank died or froze
    (``None`` when ``error`` is not such a failure): names this rank and the ranks
    it lost contact with (the others, as gloo reports only an address).

    Example:
        >>> lost_rank_message(ValueError("bad")) is None
        True
    """
    text = str(error)
    markers = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out", "timed out",
               "Socket Timeout", "NCCL communicator was aborted", "connection refused")
    if not isinstance(error, RuntimeError) or not any(m in text for m in markers):
        return None
    rank, world = get_rank(), get_world_size()
    others = [r for r in range(world) if r != rank] if is_distributed() else []
    lost = (f"rank {others[0]}" if len(others) == 1 else f"one of ranks {', '.join(map(str, others))}") if others \
        else "another rank"
    how = "stopped answering within the distributed timeout" if "imed out" in text or "Timeout" in text else "stopped"
    return f"rank {rank}: lost contact with {lost}, which {how}; this rank stops too"


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the output gradient over
    ranks and returns this rank's slice of it."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int]) -> Tensor:  # type: ignore[override]
        ctx.sizes = sizes
        return _all_gather(x, sizes)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: get_rank()])
        return grad[start : start + ctx.sizes[get_rank()]], None


def _all_gather(x: Tensor, sizes: list[int]) -> Tensor:
    """Concatenate every rank's ``x`` (first dims ``sizes``) in rank order."""
    largest = max(sizes)
    padded = x.new_zeros((largest,) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def gather_features(x: Tensor, mode: str = "grad") -> Tensor:
    r"""Concatenate a batch of features over all ranks, in rank order.

    Args:
        x (Tensor): this rank's features, shape ``B_r×…``; ranks may hold
            different ``B_r`` but must agree on the other dimensions.
        mode (str): ``"none"`` returns ``x`` unchanged; ``"nograd"`` returns
            the concatenation detached (for a teacher); ``"grad"`` returns it
            with gradient flowing back to this rank's ``x``: the backward pass
            sums the output gradient over ranks and keeps this rank's slice.
            When every rank computes the same loss :math:`L` on the gathered
            batch, rank :math:`r` thus receives :math:`W\,\partial L/\partial x_r`
            and the trainer's gradient average over the :math:`W` ranks equals
            the gradient of one process computing :math:`L` on the whole batch.
            (default: :obj:`"grad"`)

    Outside a process group every mode returns ``x``.

    Example:
        >>> x = torch.rand(4, 3)
        >>> gather_features(x, "nograd") is x   # not distributed
        True
    """
    check_choice(mode, "mode", GATHER_MODES)
    if check_tensor(x, "x").dim() < 1:
        raise ValueError(f"`x` must have a batch dimension (at least 1 dimension), got shape {tuple(x.shape)}")
    if mode == "none" or not is_distributed():
        return x
    sizes = _batch_sizes(x)
    if mode == "nograd":
        with torch.no_grad():
            return _all_gather(x, sizes)
    return _GatherWithGrad.apply(x, sizes)


def _batch_sizes(x: Tensor) -> list[int]:
    """First-dimension size of ``x`` on every rank."""
    local = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(local) for _ in range(get_world_size())]
    dist.all_gather(sizes, local)
    return [int(s) for s in sizes]


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op when not distributed)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace every parameter's gradient by its mean over ranks (one bucketed all-reduce).

    A parameter that has no gradient on any rank keeps ``grad = None``; one
    that has a gradient on some ranks only counts zeros for the others.
    """
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    device = params[0].device
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(device) for p in params
    ] + [torch.tensor([float(p.grad is not None) for p in params], device=device, dtype=params[0].dtype)])
    dist.all_reduce(flat)
    world = get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        chunk = flat[offset : offset + n].view_as(p).div_(world)
        offset += n
        p.grad = chunk.to(p.dtype) if p.grad is None else p.grad.copy_(chunk)
    for p, has in zip(params, flat[offset:].tolist()):
        if has == 0:
            p.grad = None


def all_reduce_mean(values: Tensor) -> Tensor:
    """Mean of ``values`` over ranks (returned unchanged when not distributed)."""
    if not is_distributed():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / get_world_size()


def shard_loader(loader: DataLoader, seed: int) -> DataLoader:
    """Return ``loader`` rebuilt with a :class:`~torch.utils.data.DistributedSampler`.

    The shuffle flag follows the original sampler (shuffled when it is a
    :class:`~torch.utils.data.RandomSampler`), the seed is ``seed`` and every
    other DataLoader setting is kept. ``batch_size`` stays per process.
    Returned unchanged when not distributed or already sharded.
    """
    if not is_distributed() or isinstance(getattr(loader, "sampler", None), DistributedSampler):
        return loader
    if not isinstance(loader, DataLoader):
        raise TypeError(f"under torchrun the training loader must be a DataLoader, got {type(loader).__name__}")
    if loader.batch_size is None:
        raise ValueError(
            "under torchrun the training loader needs a batch_size (not a custom batch_sampler) "
            "or a DistributedSampler of its own"
        )
    sampler = DistributedSampler(
        loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler), seed=seed, drop_last=loader.drop_last
    )
    extra = {"prefetch_factor": loader.prefetch_factor, "persistent_workers": loader.persistent_workers} if loader.num_workers else {}
    return DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        timeout=loader.timeout, worker_init_fn=loader.worker_init_fn, generator=loader.generator, **extra,
    )


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()

