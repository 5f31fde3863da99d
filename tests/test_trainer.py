import csv
import os
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from latentgraph.train import Trainer, evaluate, fit, get_objective, register_objective
from latentgraph.train.objectives import ClassificationObjective, available_objectives


class NoisyDataset(Dataset):
    """Random augmentation drawn from torch's global generator, so that exact
    resume must restore it; ``interrupt_at`` raises KeyboardInterrupt on that
    (1-based) item fetch, i.e. while the loader fetches a batch."""

    def __init__(self, n=40, interrupt_at=None):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 6, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.interrupt_at = interrupt_at
        self.fetches = 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.fetches += 1
        if self.fetches == self.interrupt_at:
            raise KeyboardInterrupt
        return self.x[i] + 0.1 * torch.randn(6), self.y[i]


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))


def make_trainer(model, tmp_path=None, objective=None, **kw):
    return Trainer(
        model, objective if objective is not None else ClassificationObjective(),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        scheduler=lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2], 0.5),
        checkpoint_dir=None if tmp_path is None else tmp_path / "ckpt", progress=False, seed=3, **kw)


def make_loader(dataset, generator=False):
    return DataLoader(dataset, batch_size=8, shuffle=True,
                      generator=torch.Generator().manual_seed(5) if generator else None)


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.state_dict().values()])


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def reference_run(generator=False, epochs=3):
    model = make_model()
    history = make_trainer(model).fit(make_loader(NoisyDataset(), generator), epochs=epochs)
    return flat(model), history


def test_weighted_sum_of_terms_one_sgd_step():
    # one step of SGD(lr=0.5) on a + 0.25 b with a = sum(w*x), b = sum(w^2), by hand
    class Terms:
        def __call__(self, model, batch):
            w = model.weight
            return {"a": (w * batch[0]).sum(), "b": (w ** 2).sum()}

    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    x = torch.tensor([[3.0, 4.0]])
    trainer = Trainer(model, Terms(), torch.optim.SGD(model.parameters(), lr=0.5), weights={"b": 0.25},
                      progress=False)
    history = trainer.fit([(x, torch.zeros(1))], epochs=1)
    # grad = x + 0.25 * 2 w = [3 + 0.5, 4 - 1] ; w' = w - 0.5 grad
    assert torch.equal(model.weight.detach(), torch.tensor([[1.0 - 1.75, -2.0 - 1.5]]))
    assert history[0]["train/a"] == -5.0 and history[0]["train/b"] == 5.0
    assert history[0]["train/loss"] == -5.0 + 0.25 * 5.0


def test_history_holds_epoch_means_of_each_term_and_csv(tmp_path):
    seen = []

    class Recording(ClassificationObjective):
        def __call__(self, model, batch):
            terms = super().__call__(model, batch)
            seen.append(terms["ce"].item())
            return terms

    model = make_model()
    trainer = Trainer(model, Recording(), lambda p: torch.optim.Adam(p, lr=1e-2), log_dir=tmp_path,
                      progress=False)
    history = trainer.fit(make_loader(NoisyDataset()), epochs=2, eval_loader=make_loader(NoisyDataset()))
    assert history[0]["train/ce"] == pytest.approx(sum(seen[:5]) / 5, rel=1e-12)
    assert history[1]["train/ce"] == pytest.approx(sum(seen[5:]) / 5, rel=1e-12)
    assert [row["step"] for row in history] == [5, 10]
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [float(r["train/ce"]) for r in rows] == pytest.approx([h["train/ce"] for h in history])
    assert float(rows[1]["eval/accuracy"]) == pytest.approx(history[1]["eval/accuracy"])


def test_eval_accuracy_matches_evaluate_and_objective_metrics_hook():
    class WithMetrics(ClassificationObjective):
        def metrics(self, model, loader):
            assert not model.training
            return {"always_half": 0.5}

    model = make_model()
    clean = NoisyDataset()  # evaluated without the random augmentation, so both evaluations see the same data
    eval_loader = DataLoader(TensorDataset(clean.x, clean.y), batch_size=16)
    history = Trainer(model, WithMetrics(), lambda p: torch.optim.Adam(p, lr=1e-2), progress=False).fit(
        make_loader(NoisyDataset()), epochs=1, eval_loader=eval_loader)
    expected = evaluate(model, eval_loader)  # the model after the epoch is the model that was evaluated
    assert history[0]["eval/always_half"] == 0.5
    assert history[0]["eval/accuracy"] == expected
    assert model.training  # trainer restores train mode after evaluating
    with torch.no_grad():  # and by hand: argmax of the eval-mode logits (no dropout)
        assert expected == int((model.eval()(clean.x).argmax(1) == clean.y).sum()) / len(clean.y)


def test_evaluation_does_not_change_training():
    a, b = make_model(), make_model()
    make_trainer(a).fit(make_loader(NoisyDataset()), epochs=2, eval_loader=make_loader(NoisyDataset()))
    make_trainer(b).fit(make_loader(NoisyDataset()), epochs=2)
    assert torch.equal(flat(a), flat(b))


def test_seeded_runs_are_bitwise_identical():
    first, h1 = reference_run()
    second, h2 = reference_run()
    assert torch.equal(first, second) and without_time(h1) == without_time(h2)


@pytest.mark.parametrize("generator", [False, True])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, generator):
    expected, expected_history = reference_run(generator)
    # batches of 8 from 40 samples: 5 per epoch; stop while fetching the 8th batch (epoch 2)
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(model, tmp_path).fit(make_loader(NoisyDataset(interrupt_at=7 * 8 + 1), generator), epochs=3)
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch"]) == (7, 1, 2)

    resumed = make_model(seed=99)  # different initial weights: all must come from the checkpoint
    history = make_trainer(resumed, tmp_path).fit(make_loader(NoisyDataset(), generator), epochs=3, resume=True)
    assert torch.equal(flat(resumed), expected)
    assert without_time(history)[0] == without_time(expected_history)[0]
    assert [row["step"] for row in history] == [5, 10, 15]
    # the epoch means after resume include the steps done before the interrupt
    assert history[1]["train/ce"] == pytest.approx(expected_history[1]["train/ce"], rel=1e-12)


def test_crash_resumes_from_last_periodic_checkpoint(tmp_path):
    expected, _ = reference_run()

    class CrashAt(ClassificationObjective):
        calls = 0

        def __call__(self, model, batch):
            CrashAt.calls += 1
            if CrashAt.calls == 9:
                raise RuntimeError("boom")
            return super().__call__(model, batch)

    trainer = make_trainer(make_model(), tmp_path, objective=CrashAt(), checkpoint_every=3)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(make_loader(NoisyDataset()), epochs=3)
    assert torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["step"] == 6
    resumed = make_model(seed=1)
    make_trainer(resumed).fit(make_loader(NoisyDataset()), epochs=3, resume=tmp_path / "ckpt" / "last.pt")
    assert torch.equal(flat(resumed), expected)


def test_ctrl_c_signal_during_a_step_saves_after_the_step(tmp_path):
    expected, _ = reference_run()

    class SignalAt(ClassificationObjective):
        calls = 0

        def __call__(self, model, batch):
            SignalAt.calls += 1
            if SignalAt.calls == 4:
                os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of step 4
            return super().__call__(model, batch)

    trainer = make_trainer(make_model(), tmp_path, objective=SignalAt())
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(make_loader(NoisyDataset()), epochs=3)
    assert torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)["step"] == 4
    resumed = make_model(seed=1)
    make_trainer(resumed).fit(make_loader(NoisyDataset()), epochs=3, resume=tmp_path / "ckpt")
    assert torch.equal(flat(resumed), expected)


def test_interrupt_during_evaluation_resumes_with_complete_history(tmp_path):
    expected, _ = reference_run()
    calls = []

    def metric(model, loader):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return 0.0

    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(model, tmp_path, metrics={"m": metric}).fit(
            make_loader(NoisyDataset()), epochs=3, eval_loader=[(torch.zeros(1, 6), torch.zeros(1))])
    resumed = make_model(seed=1)
    history = make_trainer(resumed, tmp_path, metrics={"m": metric}).fit(
        make_loader(NoisyDataset()), epochs=3, eval_loader=[(torch.zeros(1, 6), torch.zeros(1))], resume=True)
    assert [row["epoch"] for row in history] == [1, 2, 3] and all("eval/m" in row for row in history)
    assert torch.equal(flat(resumed), expected)


def test_resume_mid_epoch_with_other_loader_is_an_error(tmp_path):
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        make_trainer(model, tmp_path).fit(make_loader(NoisyDataset(interrupt_at=3 * 8 + 1)), epochs=2)
    with pytest.raises(ValueError, match="batches per epoch"):
        make_trainer(make_model(), tmp_path).fit(DataLoader(NoisyDataset(), batch_size=4), epochs=2, resume=True)


def test_resume_with_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        make_trainer(make_model()).fit(make_loader(NoisyDataset()), 1, resume=tmp_path / "nothing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.pt"):
        make_trainer(make_model()).fit(make_loader(NoisyDataset()), 1, resume=bad)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        make_trainer(make_model()).fit(make_loader(NoisyDataset()), 1, resume=True)
    # a good checkpoint of another network: one error naming the file, no half-restored trainer
    make_trainer(make_model(), tmp_path).fit(make_loader(NoisyDataset()), 1)
    wider = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    with pytest.raises(ValueError, match=r"(?s)last\.pt' does not fit this run .*size mismatch"):
        make_trainer(wider).fit(make_loader(NoisyDataset()), 2, resume=tmp_path / "ckpt")


class TeacherObjective(nn.Module):
    """Objective carrying a frozen teacher (with BatchNorm) and a trainable head."""

    def __init__(self):
        super().__init__()
        self.teacher = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)).requires_grad_(False)
        self.head = nn.Linear(2, 4)

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, model, batch):
        with torch.no_grad():
            target = self.teacher(batch[0])
        return {"match": ((self.head(model(batch[0])) - target) ** 2).mean()}


def test_objective_parameters_are_optimized_and_teacher_stays_frozen(tmp_path):
    model, objective = make_model(), TeacherObjective()
    teacher_before = {k: v.clone() for k, v in objective.teacher.state_dict().items()}
    head_before = objective.head.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # model only: the trainer adds the head
    trainer = Trainer(model, objective, optimizer, checkpoint_dir=tmp_path, progress=False)
    trainer.fit(make_loader(NoisyDataset()), epochs=1)
    assert not torch.equal(objective.head.weight, head_before)
    assert all(torch.equal(v, teacher_before[k]) for k, v in objective.teacher.state_dict().items())
    assert not objective.teacher.training
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["objective"]
    assert torch.equal(saved["head.weight"], objective.head.weight.detach())


def test_optimizer_missing_objective_parameters_with_built_scheduler_is_an_error():
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(ValueError, match="lacks 2 trainable parameter"):
        Trainer(model, TeacherObjective(), optimizer, scheduler=scheduler, progress=False)


def test_bad_terms_and_weights():
    loader = make_loader(NoisyDataset())
    opt = lambda p: torch.optim.SGD(p, lr=0.1)  # noqa: E731
    with pytest.raises(ValueError, match="weights given for terms the objective does not return: gkd"):
        Trainer(make_model(), ClassificationObjective(), opt, weights={"gkd": 2.0}, progress=False).fit(loader, 1)
    with pytest.raises(TypeError, match="non-empty dict"):
        Trainer(make_model(), lambda m, b: m(b[0]).sum(), opt, progress=False).fit(loader, 1)
    with pytest.raises(TypeError, match="not a scalar tensor"):
        Trainer(make_model(), lambda m, b: {"ce": m(b[0])}, opt, progress=False).fit(loader, 1)
    with pytest.raises(ValueError, match="weight of term 'ce'"):
        Trainer(make_model(), ClassificationObjective(), opt, weights={"ce": float("nan")})
    with pytest.raises(TypeError, match="optimizer"):
        Trainer(make_model(), ClassificationObjective(), "sgd")
    with pytest.raises(ValueError, match="checkpoint_every"):
        Trainer(make_model(), ClassificationObjective(), opt, checkpoint_every=0)
    with pytest.raises(TypeError, match="must have a length"):
        Trainer(make_model(), ClassificationObjective(), opt, progress=False).fit((b for b in loader), 1)
    with pytest.raises(ValueError, match="epochs"):
        Trainer(make_model(), ClassificationObjective(), opt, progress=False).fit(loader, -1)


def test_non_finite_term_stops_before_updating():
    model = make_model()
    before = flat(model)
    nan_objective = lambda m, b: {"ce": m(b[0]).sum() * float("nan"), "other": m(b[0]).sum()}  # noqa: E731
    with pytest.raises(FloatingPointError, match="step 1: ce=nan"):
        Trainer(model, nan_objective, lambda p: torch.optim.SGD(p, lr=0.1), progress=False).fit(
            make_loader(NoisyDataset()), 1)
    assert torch.equal(flat(model), before)


def test_fit_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(200, 2)
    y = (x[:, 0] - x[:, 1] > 0).long()
    model = fit(nn.Linear(2, 2), DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True), epochs=8, lr=0.1,
                progress=False)
    assert evaluate(model, [(x, y)]) > 0.95


def test_evaluate_counts_and_restores_mode():
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    model.train()
    x = torch.tensor([[2.0, 1.0], [0.0, 3.0], [-1.0, -1.0], [1.0, 0.0]])
    assert evaluate(model, [(x[:2], torch.tensor([0, 1])), (x[2:], torch.tensor([2, 1]))]) == 0.75
    assert model.training
    with pytest.raises(ValueError, match="no samples"):
        evaluate(model, [])
    with pytest.raises(ValueError, match="B×C logits"):
        evaluate(nn.Identity(), [(torch.zeros(2), torch.zeros(2, dtype=torch.long))])


def test_registry():
    assert get_objective("classification") is ClassificationObjective
    assert "classification" in available_objectives()
    with pytest.raises(ValueError, match="unknown objective 'nope'; registered objectives: .*classification"):
        get_objective("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_objective("classification")(type("Other", (), {}))
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassificationObjective(label_smoothing=1.5)


def test_tensorboard_receives_each_epoch_row_when_installed(tmp_path, monkeypatch):
    import sys
    import types

    calls = []

    class FakeWriter:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    history = Trainer(make_model(), ClassificationObjective(), lambda p: torch.optim.SGD(p, lr=0.1),
                      log_dir=tmp_path, progress=False).fit(make_loader(NoisyDataset()), epochs=2)
    assert calls[0] == ("init", str(tmp_path))
    assert ("train/ce", history[1]["train/ce"], 2) in calls and ("lr", 0.1, 1) in calls
    assert not any(c[0] in ("epoch", "step") for c in calls)


def test_interrupt_raised_inside_a_step_keeps_the_last_good_checkpoint(tmp_path):
    class InterruptAt(ClassificationObjective):
        calls = 0

        def __call__(self, model, batch):
            InterruptAt.calls += 1
            if InterruptAt.calls == 4:  # half-way through step 4: the state is not a step boundary
                raise KeyboardInterrupt
            return super().__call__(model, batch)

    model = make_model()
    trainer = Trainer(model, InterruptAt(), lambda p: torch.optim.SGD(p, lr=0.1), checkpoint_dir=tmp_path,
                      checkpoint_every=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(make_loader(NoisyDataset()), epochs=1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["step"] == 2 and trainer.step == 3


def bn_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))


def test_bn_recalibration_sets_the_statistics_of_the_final_weights_before_the_last_metrics():
    data = NoisyDataset(n=40)
    torch.manual_seed(0)
    x = torch.stack([data[i][0] for i in range(40)])  # the loader's inputs: fixed noise for this test
    y = data.y
    data = TensorDataset(x, y)
    plain, recal = bn_model(), bn_model()
    make_trainer(plain).fit(make_loader(data, generator=True), epochs=2, eval_loader=[(x, y)])
    history = make_trainer(recal, bn_recalibration=True).fit(make_loader(data, generator=True), epochs=2,
                                                             eval_loader=[(x, y)])
    # training itself is unchanged: same weights, only the running statistics differ
    weights = [n for n, _ in recal.named_parameters()]
    assert all(torch.equal(dict(plain.named_parameters())[n], dict(recal.named_parameters())[n]) for n in weights)
    bn = recal[1]
    # 5 shuffled batches of 8: the mean of the batch means is the mean over the data
    assert torch.allclose(bn.running_mean, recal[0](x).mean(0).detach(), atol=1e-6)
    assert not torch.allclose(plain[1].running_mean, bn.running_mean, atol=1e-3)
    assert bn.momentum == 0.1 and recal.training  # restored
    # the last epoch's metrics are those of the recalibrated model
    assert history[-1]["eval/accuracy"] == evaluate(recal, [(x, y)])


def test_recalibrate_bn_in_fit_and_bad_flag():
    x = torch.randn(32, 6)
    y = (x[:, 0] > 0).long()
    model = fit(bn_model(), DataLoader(TensorDataset(x, y), batch_size=8), epochs=1, progress=False,
                recalibrate_bn=True)
    assert torch.allclose(model[1].running_mean, model[0](x).mean(0).detach(), atol=1e-6)
    with pytest.raises(TypeError, match="`bn_recalibration` must be a bool"):
        make_trainer(bn_model(), bn_recalibration="yes")


def test_recalibrate_batchnorm_averages_batch_statistics_and_restores_the_layers():
    from latentgraph.train.batchnorm import recalibrate_batchnorm

    model = bn_model().eval()
    model[1].momentum = 0.3
    x = torch.randn(20, 6)
    norms = recalibrate_batchnorm(model, DataLoader(TensorDataset(x, torch.zeros(20)), batch_size=10))
    assert norms == [model[1]]
    with torch.no_grad():
        h = model[0](x)
    expected_var = (h[:10].var(0) + h[10:].var(0)) / 2  # unbiased variance of each batch, averaged
    assert torch.allclose(model[1].running_mean, h.mean(0), atol=1e-6)
    assert torch.allclose(model[1].running_var, expected_var, atol=1e-6)
    assert model[1].momentum == 0.3 and not model.training
    assert recalibrate_batchnorm(nn.Linear(2, 2), [torch.zeros(1, 2)]) == []


# ------------------------------------------------------------------ λ applied once (issue 10, item 2)
class _WeightedToy:
    weights = {"b": 4.0}

    def __call__(self, model, batch):
        out = model(batch[0])
        return {"a": out.mean() * 0 + 1.0, "b": out.pow(2).mean() * 0 + 2.0}


def _toy_history(weights=None):
    model = nn.Linear(3, 1)
    data = TensorDataset(torch.randn(8, 3), torch.zeros(8))
    trainer = Trainer(model, _WeightedToy(), lambda p: torch.optim.SGD(p, lr=0.0), weights=weights, progress=False,
                      metrics={})
    return trainer.fit(DataLoader(data, batch_size=4), epochs=1)[0]


def test_objective_weights_are_applied_once_and_both_values_logged():
    row = _toy_history()
    assert row["train/a"] == 1.0 and row["train/b"] == 2.0  # raw
    assert row["train/a/weighted"] == 1.0 and row["train/b/weighted"] == 8.0
    assert row["train/loss"] == 1.0 + 4.0 * 2.0


def test_trainer_weights_replace_the_objectives_not_multiply():
    row = _toy_history({"b": 0.5})
    assert row["train/b/weighted"] == 1.0 and row["train/loss"] == 1.0 + 0.5 * 2.0


def test_a_zero_weight_still_logs_the_raw_term():
    row = _toy_history({"b": 0.0})
    assert row["train/b"] == 2.0 and row["train/b/weighted"] == 0.0


def _interrupted_mid_epoch(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        make_trainer(make_model(), tmp_path).fit(make_loader(NoisyDataset(interrupt_at=3 * 8 + 1)), epochs=2)
    return tmp_path / "ckpt" / "last.pt"


def test_a_mid_epoch_checkpoint_under_another_world_size_is_refused(tmp_path, monkeypatch):
    import latentgraph.train.trainer as trainer_module

    last = _interrupted_mid_epoch(tmp_path)
    assert torch.load(last, weights_only=True)["batch_size"] == 8
    monkeypatch.setattr(trainer_module, "get_world_size", lambda: 2)  # as if resumed under torchrun with 2 ranks
    with pytest.raises(ValueError, match=r"stopped mid-epoch \(after batch 3 of 5\).*1 process\(es\) -> 2"):
        make_trainer(make_model(), tmp_path).fit(make_loader(NoisyDataset()), epochs=2, resume=True)


def test_an_epoch_boundary_checkpoint_under_another_world_size_resumes_with_a_warning(tmp_path, monkeypatch):
    import logging

    import latentgraph.train.trainer as trainer_module

    make_trainer(make_model(), tmp_path).fit(make_loader(NoisyDataset()), epochs=1)
    monkeypatch.setattr(trainer_module, "get_world_size", lambda: 2)
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # the CLI's setup_logging may have stopped propagation to pytest's handler
    logging.getLogger("latentgraph.train").addHandler(handler)
    try:
        history = make_trainer(make_model(), tmp_path).fit(make_loader(NoisyDataset()), epochs=2, resume=True)
    finally:
        logging.getLogger("latentgraph.train").removeHandler(handler)
    assert len(history) == 2
    assert any("at an epoch boundary with 1 process(es) -> 2" in r.getMessage() for r in records)


def test_resume_with_another_kind_of_optimizer_is_one_error_not_a_key_error(tmp_path):
    _interrupted_mid_epoch(tmp_path)
    adam = Trainer(make_model(), ClassificationObjective(), lambda p: torch.optim.Adam(p, lr=0.01),
                   scheduler=lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2], 0.5),
                   checkpoint_dir=tmp_path / "ckpt", progress=False, seed=3)
    with pytest.raises(ValueError, match=r"holds the state of another optimizer \(Adam settings"):
        adam.fit(make_loader(NoisyDataset()), epochs=2, resume=True)


def test_the_trainer_removes_stale_checkpoint_temporaries(tmp_path):
    (tmp_path / "ckpt").mkdir()
    stale = tmp_path / "ckpt" / ".last.pt.q9w8.tmp"
    stale.write_bytes(b"\0" * 100)
    make_trainer(make_model(), tmp_path).fit(make_loader(NoisyDataset(n=16)), epochs=1)
    assert not stale.exists() and (tmp_path / "ckpt" / "last.pt").is_file()
