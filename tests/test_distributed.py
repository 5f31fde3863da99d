"""Two gloo ranks on CPU against one process on the concatenated batch."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from latentgraph.train import Trainer
from latentgraph.train.distributed import average_gradients, gather_features, get_rank, shard_loader
from latentgraph.train.objectives import ClassificationObjective

WORLD = 2


def relational_loss(student, teacher):
    """Mean squared difference of the two batches' cosine-similarity matrices."""
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    return ((s @ s.T - t @ t.T) ** 2).mean()


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g)
    return x, torch.randint(0, 4, (8,), generator=g)


def nets(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(5, 4), nn.Linear(5, 6).requires_grad_(False)


def step(student, teacher, x, y, mode):
    """CE on the local batch + relational loss on the gathered batch, then backward."""
    s, t = student(x), teacher(x)
    loss = F.cross_entropy(s, y) + relational_loss(gather_features(s, mode), gather_features(t, "nograd"))
    loss.backward()
    return loss.detach()


def trainer_dataset():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 5, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())


def train(model, loader, checkpoint_dir=None, log_dir=None, epochs=2, resume=None):
    trainer = Trainer(model, ClassificationObjective(), lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9),
                      checkpoint_dir=checkpoint_dir, log_dir=log_dir, seed=7, progress=False)
    return trainer.fit(loader, epochs=epochs, resume=resume)


def _worker(rank, port, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        out = {}
        x, y = data()
        local = slice(4 * rank, 4 * rank + 4)
        # equal shards: loss and averaged gradients of CE + relational(gathered)
        student, teacher = nets()
        loss = step(student, teacher, x[local], y[local], "grad")
        dist.all_reduce(loss)
        average_gradients(student.parameters())
        out["loss"], out["grad"] = loss / WORLD, student.weight.grad.clone()
        # unequal shards (3 and 5 rows): both modes gather the whole batch in rank order
        uneven = slice(0, 3) if rank == 0 else slice(3, 8)
        student, teacher = nets()
        s = student(x[uneven])
        out["nograd"] = gather_features(s, "nograd")
        out["nograd_requires_grad"] = out["nograd"].requires_grad
        gathered = gather_features(s, "grad")
        out["gathered"] = gathered.detach()
        relational_loss(gathered, gather_features(teacher(x[uneven]), "nograd")).backward()
        average_gradients(student.parameters())
        out["uneven_grad"] = student.weight.grad.clone()
        out["rank"] = get_rank()
        # the trainer: sharded loader, parameters broadcast from rank 0 (rank 1 starts elsewhere)
        torch.manual_seed(rank)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        loader = DataLoader(trainer_dataset(), batch_size=4, shuffle=True)
        out["sharded"] = isinstance(shard_loader(loader, 7).sampler, DistributedSampler)
        out["history"] = train(model, loader, f"{folder}/ckpt", f"{folder}/logs")
        out["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
        # the same run stopped after its first epoch, then resumed into a network initialized otherwise
        torch.manual_seed(rank)
        train(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)), loader, f"{folder}/stopped", epochs=1)
        torch.manual_seed(100 + rank)
        resumed = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        train(resumed, loader, f"{folder}/stopped", epochs=2, resume=True)
        out["resumed_weights"] = {k: v.clone() for k, v in resumed.state_dict().items()}
        # BatchNorm statistics re-estimated on each rank's shard, then averaged over ranks
        torch.manual_seed(0)
        bn_model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))
        Trainer(bn_model, ClassificationObjective(), lambda p: torch.optim.SGD(p, lr=0.2), seed=7, progress=False,
                bn_recalibration=True).fit(loader, epochs=1)
        out["bn_weights"] = {k: v.clone() for k, v in bn_model.state_dict().items()}
        torch.save(out, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    # fork, not spawn: the children inherit the imported modules instead of importing torch again
    mp.start_processes(_worker, args=(free_port(), str(folder)), nprocs=WORLD, join=True, start_method="fork")
    return folder, [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_relational_loss_and_gradients_equal_one_process_on_the_whole_batch(ranks):
    _, results = ranks
    x, y = data()
    student, teacher = nets()
    expected_loss = step(student, teacher, x, y, "none")
    for out in results:
        assert torch.allclose(out["loss"], expected_loss, atol=1e-6)
        assert torch.allclose(out["grad"], student.weight.grad, atol=1e-6)


def test_gather_with_uneven_shards_keeps_rank_order(ranks):
    _, results = ranks
    x, _ = data()
    student, teacher = nets()
    full = student(x)
    relational_loss(full, teacher(x)).backward()
    for out in results:
        assert torch.allclose(out["nograd"], full.detach(), atol=1e-6) and not out["nograd_requires_grad"]
        assert torch.allclose(out["gathered"], full.detach(), atol=1e-6)
        assert torch.allclose(out["uneven_grad"], student.weight.grad, atol=1e-6)
    assert [out["rank"] for out in results] == [0, 1]


def test_two_rank_trainer_equals_one_process_on_global_batches(ranks):
    folder, results = ranks
    assert all(out["sharded"] for out in results)
    # one process, batches of 2×4 in the order of a one-replica DistributedSampler with the same seed
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    dataset = trainer_dataset()
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=7)
    history = train(model, DataLoader(dataset, batch_size=8, sampler=sampler))
    for out in results:
        for name, value in model.state_dict().items():
            assert torch.allclose(out["weights"][name], value, atol=1e-5), name
        assert out["history"][1]["train/ce"] == pytest.approx(history[1]["train/ce"], rel=1e-5)
    assert (folder / "ckpt" / "last.pt").is_file() and (folder / "logs" / "metrics.csv").is_file()


def test_two_rank_resume_equals_an_uninterrupted_two_rank_run(ranks):
    _, outs = ranks
    for out in outs:
        for name, value in out["weights"].items():
            assert torch.equal(out["resumed_weights"][name], value), name


def test_gather_outside_a_process_group_and_bad_mode():
    x = torch.rand(3, 2)
    assert gather_features(x, "grad") is x
    with pytest.raises(ValueError, match="`mode` must be one of"):
        gather_features(x, "all")


def test_bn_recalibration_averages_the_statistics_over_ranks(ranks):
    _, results = ranks
    first = results[0]["bn_weights"]
    for out in results[1:]:
        for name, value in out["bn_weights"].items():
            assert torch.allclose(value, first[name], atol=1e-6), name
    linear = nn.Linear(5, 8)
    linear.load_state_dict({"weight": first["0.weight"], "bias": first["0.bias"]})
    with torch.no_grad():  # two shards of 16 in batches of 4: the rank mean of batch means is the data mean
        expected = linear(trainer_dataset().tensors[0]).mean(0)
    assert torch.allclose(first["1.running_mean"], expected, atol=1e-5)


def _losing_worker(rank, port, folder, how):
    import os
    import time

    from latentgraph.train.distributed import lost_rank_message

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=__import__("datetime").timedelta(seconds=3))
    dist.barrier()
    if rank == 1:
        if how == "killed":
            os._exit(1)
        time.sleep(30)  # frozen: the parent ends it
        return
    try:
        dist.all_reduce(torch.ones(3))
        message = "no error"
    except RuntimeError as error:
        message = lost_rank_message(error) or f"unrecognized: {error}"
    with open(f"{folder}/rank0.txt", "w") as f:
        f.write(message)
    os._exit(0)  # the group is broken: skip its teardown


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_the_surviving_rank_names_the_lost_one_within_the_timeout(tmp_path, how):
    import multiprocessing
    import time

    context, port = multiprocessing.get_context("fork"), free_port()
    procs = [context.Process(target=_losing_worker, args=(r, port, str(tmp_path), how)) for r in range(WORLD)]
    start = time.monotonic()
    for p in procs:
        p.start()
    procs[0].join(timeout=60)
    elapsed = time.monotonic() - start
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()
    message = (tmp_path / "rank0.txt").read_text()
    assert message.startswith("rank 0: lost contact with rank 1, which stopped"), message
    assert elapsed < 20  # the configured 3 s timeout, not gloo's 30 minutes


def test_lost_rank_message_recognizes_gloo_failures_only():
    from latentgraph.train.distributed import lost_rank_message

    closed = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1")
    assert lost_rank_message(closed) == "rank 0: lost contact with another rank, which stopped; this rank stops too"
    assert lost_rank_message(RuntimeError("size mismatch")) is None
    assert lost_rank_message(ValueError("Connection closed by peer")) is None
