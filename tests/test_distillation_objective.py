"""The "distill" objective: frozen teacher, CE + Σ λ_i L_i, layer pairs by name, gathering."""
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from latentgraph.capture import capture
from latentgraph.losses.baselines import KDLoss, RKDLoss
from latentgraph.losses.ega import EGALoss
from latentgraph.losses.gkd import GKDLoss
from latentgraph.models import SmallCNN
from latentgraph.train import Trainer
from latentgraph.train.build import build_objective, model_from_config
from latentgraph.train.config import ModelConfig, load_config
from latentgraph.train.objectives.distillation import DistillationObjective, teacher_agreement
from latentgraph.train.objectives.registry import get_objective


def _nets(seed=0):
    torch.manual_seed(seed)
    return SmallCNN(width=8), SmallCNN(width=4)


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3


def test_registered_under_distill():
    assert get_objective("distill") is DistillationObjective


def test_terms_equal_losses_on_the_named_layers():
    teacher, student = _nets()
    x, y = _batch()
    objective = DistillationObjective(
        teacher, {"gkd": {}, "kd": {"weight": 0.5}, "rkd": {"layers": ["block3"]}}, layers=["block2", "block3"]
    )
    terms = objective(student, (x, y))
    # independent forward: SmallCNN's blocks are applied in sequence
    s1 = student.block1(x)
    s2 = student.block2(s1)
    s3 = student.block3(s2)
    logits = student.head(student.pool(s3))
    with torch.no_grad():
        t2 = teacher.block2(teacher.block1(x))
        t3 = teacher.block3(t2)
        t_logits = teacher.head(teacher.pool(t3))
    assert torch.allclose(terms["ce"], F.cross_entropy(logits, y))
    # raw terms; the λ's are the objective's weights, applied once by the trainer
    assert torch.allclose(terms["gkd"], GKDLoss()([s2, s3], [t2, t3]))
    assert torch.allclose(terms["kd"], KDLoss()(logits, t_logits))
    assert torch.allclose(terms["rkd"], RKDLoss()(s3, t3))
    assert objective.weights == {"gkd": 25.0, "kd": 0.5, "rkd": 1.0}


def test_layer_pairs_by_dict_and_class_masks_get_labels():
    teacher, student = _nets()
    x, y = _batch()
    objective = DistillationObjective(teacher, {"gkd": {"edges": "inter_class", "weight": 1.0}},
                                      layers={"block3": "block2"})
    with torch.no_grad():
        t2 = teacher.block2(teacher.block1(x))
    s3 = student.block3(student.block2(student.block1(x)))
    expected = GKDLoss(edges="inter_class")(s3, t2, y)
    assert torch.allclose(objective(student, (x, y))["gkd"], expected)


def test_teacher_frozen_and_in_eval_mode_whatever_the_trainer_does():
    teacher, student = _nets()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = DistillationObjective(teacher, {"gkd": {}, "kd": {}}, layers=["block1", "block2", "block3"])
    objective.train()
    student.train()
    teacher.train()  # even a user switching it back is undone at the next call
    x, y = _batch()
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for _ in range(2):
        loss = sum(objective(student, (x, y)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not teacher.training and all(not m.training for m in teacher.modules())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():  # BN running stats untouched too
        assert torch.equal(v, before[k]), k
    assert list(objective.parameters()) == []


def test_trainer_runs_distillation_and_logs_agreement():
    teacher, student = _nets()
    x, y = _batch(24)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    objective = DistillationObjective(teacher, {"gkd": {}, "ega": {"proj_dim": 256}}, layers=["block3"],
                                      student=student, example_input=x[:2])
    trainer = Trainer(student, objective, lambda p: torch.optim.SGD(p, lr=0.05), progress=False)
    history = trainer.fit(loader, epochs=1, eval_loader=loader)
    assert {"train/ce", "train/gkd", "train/ega", "eval/agreement"} <= set(history[0])
    assert history[0]["eval/agreement"] == teacher_agreement(student, teacher, loader)
    assert not teacher.training
    # EGA's heads are trained with the student and saved with the objective
    assert {"criteria.ega.student_head.weight", "criteria.ega.teacher_head.weight",
            "criteria.ega.teacher_classifier.weight"} <= set(objective.state_dict())
    assert "train/ega_teacher_ce" in history[0]
    # the student's block3 on 8×8 inputs: 16 channels × 2×2, flattened
    assert objective.criteria["ega"].student_head.weight.shape == (256, 16 * 2 * 2)


def test_gkd_term_decreases_when_minimized():
    teacher, student = _nets(1)
    x, y = _batch(16, seed=1)
    objective = DistillationObjective(teacher, {"gkd": {}}, layers=["block2", "block3"])
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    values = []
    for _ in range(30):
        gkd = objective(student, (x, y))["gkd"]
        values.append(gkd.item())
        opt.zero_grad()
        gkd.backward()
        opt.step()
    assert values[-1] < 0.5 * values[0]


def test_ega_head_wiring_is_the_official_one():
    """github.com/yccm/EGA helper/loops.py: the alignment trains the student and its head; the teacher head
    gets only its own classifier's CE (the alignment's gradient on it is zeroed before optimizer_t.step())."""
    teacher, student = _nets()
    x, y = _batch()
    objective = DistillationObjective(teacher, {"ega": {"proj_dim": 5}}, layers=["pool"], student=student,
                                      example_input=x[:2])
    ega = objective.criteria["ega"]
    assert isinstance(ega, EGALoss) and ega.num_classes == 10 == ega.teacher_classifier.out_features  # teacher outputs
    terms = objective(student, (x, y))
    assert set(terms) == {"ce", "ega", "ega_teacher_ce"}
    terms["ega"].backward(retain_graph=True)
    assert ega.student_head.weight.grad.abs().sum() > 0
    assert ega.teacher_head.weight.grad is None and ega.teacher_classifier.weight.grad is None
    student.zero_grad()
    terms["ega_teacher_ce"].backward()
    assert all(p.grad is None or not p.grad.any() for p in student.parameters())
    # the teacher-head term is the CE of classifier(head(teacher pool)), written out here
    with torch.no_grad(), capture(teacher, ["pool"]) as acts:
        teacher(x)
    t = acts["pool"].flatten(1)
    logits = t @ ega.teacher_head.weight.T + ega.teacher_head.bias
    logits = logits @ ega.teacher_classifier.weight.T + ega.teacher_classifier.bias
    assert terms["ega_teacher_ce"].item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert ega.teacher_head.weight.grad.abs().sum() > 0


def test_ega_one_backward_equals_the_official_two():
    """Summing the terms and one backward gives the official two-backward gradients, head and student alike."""
    teacher, student = _nets(2)
    x, y = _batch(seed=2)
    objective = DistillationObjective(teacher, {"ega": {"proj_dim": 4}}, layers=["pool"], student=student,
                                      example_input=x[:2])
    ega = objective.criteria["ega"]
    sum(objective(student, (x, y)).values()).backward()
    ours = [p.grad.clone() for p in list(student.parameters()) + list(ega.parameters())]
    for p in list(student.parameters()) + list(ega.parameters()):
        p.grad = None
    # the official scheme: CE + EGA with the teacher projection *not* detached, then the teacher
    # head's gradient is discarded and replaced by that of its own CE
    with capture(student, ["pool"]) as s_acts:
        logits = student(x)
    with torch.no_grad(), capture(teacher, ["pool"]) as t_acts:
        teacher(x)
    fs, ft = ega.student_head(s_acts["pool"].flatten(1)), ega.teacher_head(t_acts["pool"].flatten(1))
    loss = F.cross_entropy(logits, y) + EGALoss()(fs, ft)
    loss.backward(retain_graph=True)
    for p in list(ega.teacher_head.parameters()) + list(ega.teacher_classifier.parameters()):
        p.grad = None
    F.cross_entropy(ega.teacher_classifier(ft), y).backward()
    official = [p.grad for p in list(student.parameters()) + list(ega.parameters())]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, official))


def test_teacher_agreement_counts_equal_decisions():
    student, teacher = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        student.weight.copy_(torch.eye(2))
        teacher.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    # student: argmax(x₁, x₂) = 0, 1, 0, 1; teacher: argmax(x₁, −x₂) = 0, 0, 0, 1 → 3 of 4 agree
    x = torch.tensor([[2.0, 1.0], [1.0, 2.0], [3.0, -1.0], [-1.0, 0.5]])
    assert teacher_agreement(student, teacher, [(x, torch.zeros(4))]) == pytest.approx(0.75)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown distillation method 'fitnet'"):
        DistillationObjective(_nets()[0], {"fitnet": {}}, layers=["block1"])


def test_missing_teacher_layer_is_named():
    with pytest.raises(ValueError, match="no module named 'block9'"):
        DistillationObjective(_nets()[0], {"gkd": {}}, layers=["block9"])


def test_missing_student_layer_is_named():
    teacher, _ = _nets()
    objective = DistillationObjective(teacher, {"gkd": {}}, layers={"layer3": "block3"})
    with pytest.raises(ValueError, match="no module named 'layer3'"):
        objective(SmallCNN(width=4), _batch())


def test_layers_required_for_feature_methods():
    with pytest.raises(ValueError, match="give `layers`"):
        DistillationObjective(_nets()[0], {"gkd": {}})


def test_embedding_methods_take_one_pair():
    with pytest.raises(ValueError, match="one layer pair"):
        DistillationObjective(_nets()[0], {"ega": {"proj_dim": None}}, layers=["block2", "block3"])


def test_ega_heads_need_widths():
    with pytest.raises(ValueError, match="example_input"):
        DistillationObjective(_nets()[0], {"ega": {"proj_dim": 8}}, layers=["pool"])
    with pytest.raises(ValueError, match="num_classes"):  # widths alone leave the teacher head untrained
        DistillationObjective(_nets()[0], {"ega": {"proj_dim": 8, "student_dim": 16, "teacher_dim": 32}},
                              layers=["pool"])


def test_ega_proj_dim_default_is_the_loss_default():
    """One default: the objective (256 before) and EGALoss (None) used to disagree."""
    teacher = _nets()[0]
    assert DistillationObjective(teacher, {"ega": {}}, layers=["pool"]).criteria["ega"].proj_dim is None
    assert EGALoss().proj_dim is None
    heads = DistillationObjective(teacher, {"ega": {"student_dim": 3, "teacher_dim": 4, "num_classes": 10}},
                                  layers=["pool"], proj_dim=6)
    assert heads.criteria["ega"].proj_dim == 6  # the objective's proj_dim is a shortcut for EGA's option


def test_bad_loss_option_and_weight():
    with pytest.raises(ValueError, match="bad options for method 'gkd'"):
        DistillationObjective(_nets()[0], {"gkd": {"temperature": 4}}, layers=["block1"])
    with pytest.raises(ValueError, match="weight"):
        DistillationObjective(_nets()[0], {"gkd": {"weight": -1}}, layers=["block1"])


def test_bad_gather_mode():
    with pytest.raises(ValueError, match="gather"):
        DistillationObjective(_nets()[0], {"kd": {}}, gather="all")


# ------------------------------------------------------------------ gathering over 2 gloo ranks
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_setup():
    torch.manual_seed(0)
    teacher, student = nn.Sequential(nn.Linear(5, 6), nn.ReLU()), nn.Sequential(nn.Linear(5, 3), nn.ReLU())
    x = torch.rand(8, 5, generator=torch.Generator().manual_seed(1))
    return teacher, student, x, torch.arange(8) % 2


def _rank_grads(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    teacher, student, x, y = _tiny_setup()
    shard = slice(4 * rank, 4 * rank + 4)
    for mode in ("grad", "nograd"):
        student.zero_grad()
        objective = DistillationObjective(teacher, {"gkd": {"weight": 1.0, "edges": "inter_class"}}, layers=["1"],
                                          gather=mode)
        gkd = objective(student, (x[shard], y[shard]))["gkd"]
        gkd.backward()
        out[rank, mode] = (gkd.detach().clone(), student[0].weight.grad.clone())
    dist.destroy_process_group()


@pytest.mark.slow  # spawning two processes takes ~20 s on 2 shared cores
def test_gathered_gkd_equals_one_process_on_the_whole_batch():
    out = mp.Manager().dict()
    mp.spawn(_rank_grads, args=(2, _free_port(), out), nprocs=2)
    teacher, student, x, y = _tiny_setup()
    with torch.no_grad():
        t = teacher(x)
    loss = GKDLoss(edges="inter_class")

    def grad_through(rows):
        student.zero_grad()
        feats = student(x)
        keep = torch.zeros(8, 1, dtype=torch.bool)
        keep[rows] = True
        value = loss(torch.where(keep, feats, feats.detach()), t, y)
        value.backward()
        return value.detach(), student[0].weight.grad.clone()

    expected, full_grad = grad_through(slice(0, 8))
    for rank in range(2):
        assert torch.allclose(out[rank, "grad"][0], expected)
        assert torch.allclose(out[rank, "nograd"][0], expected)
        # "nograd": the gradient flows through this rank's own slice only
        assert torch.allclose(out[rank, "nograd"][1], grad_through(slice(4 * rank, 4 * rank + 4))[1], atol=1e-6)
    # "grad": the trainer's average over ranks equals one process on the whole batch
    assert torch.allclose((out[0, "grad"][1] + out[1, "grad"][1]) / 2, full_grad, atol=1e-6)


# ------------------------------------------------------------------ configs/distill
CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "distill").glob("*.yaml"))
EXPECTED = {"kd": ("kd", None), "rkd": ("rkd", None), "gkd": ("gkd", "all"), "gkd_inter": ("gkd", "inter_class"),
            "ega": ("ega", None)}


def test_one_config_per_method():
    assert {p.stem for p in CONFIGS} == set(EXPECTED) | {"student"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_distill_configs_build_their_objective(path):
    config = load_config(path)
    model = model_from_config(config.model)
    if path.stem == "student":
        assert config.teacher is None and config.method.name == "classification"
        return
    teacher = model_from_config(ModelConfig(config.teacher.name, config.teacher.kwargs))
    objective = build_objective(config.method, model, teacher, torch.rand(2, 1, 28, 28), str(path))
    method, edges = EXPECTED[path.stem]
    assert list(objective.criteria) == [method]
    if edges is not None:
        assert objective.criteria[method].edges == edges
    terms = objective(model, (torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])))
    extra = {"ega_teacher_ce"} if method == "ega" else set()  # EGA's teacher head, trained by its own CE
    assert set(terms) == {"ce", method} | extra and all(torch.isfinite(v) for v in terms.values())
