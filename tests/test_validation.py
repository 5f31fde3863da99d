"""The one checker: wrong type -> TypeError, wrong value -> ValueError, the argument named."""
import pytest
import torch

from latentgraph import validation as v


def test_meta_tensors_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`feats` is on the meta device"):
        v.check_features(torch.empty(4, 3, device="meta"), "feats")


@pytest.mark.parametrize("value, error, phrase", [
    (True, TypeError, "`n` must be an int, got bool True"),
    (2.0, TypeError, "`n` must be an int, got float 2.0"),
    (0, ValueError, "`n` must be an int in 1..5, got 0"),
    (6, ValueError, "`n` must be an int in 1..5, got 6"),
])
def test_check_int_states_the_accepted_range(value, error, phrase):
    with pytest.raises(error, match=phrase):
        v.check_int(value, "n", minimum=1, maximum=5)
    assert v.check_int(3, "n", minimum=1, maximum=5) == 3


def test_check_labels_names_the_ignore_index_and_the_class_count():
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="ignore_index"):
        v.check_labels(torch.tensor([0, -100]), 2, cpu)
    with pytest.raises(ValueError, match=r"in 0\.\.1 \(the model gives 2 logits\), got 2"):
        v.check_labels(torch.tensor([0, 2]), 2, cpu, num_classes=2)


def _flag_calls():
    from torch import nn

    import latentgraph as lg
    from latentgraph.capture import capture
    from latentgraph.data.loading import make_loader
    from latentgraph.eval.probes import embedding_label_variation
    from latentgraph.jacobian import decomposition, fullgrad
    from latentgraph.losses.jacobian import InputJacobianMatchingLoss
    from latentgraph.losses.label_variation import LabelVariationLoss
    from latentgraph.train import fit
    from latentgraph.train.objectives import LabelVariationObjective, LaplacianSmoothnessObjective

    x, y = torch.rand(10, 4), torch.arange(10) % 2
    model = nn.Sequential(nn.Linear(4, 3))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    return {
        "LabelVariationLoss(normalize)": ("normalize", lambda: LabelVariationLoss(k=3, normalize="no")),
        "LabelVariationLoss(normalized)": ("normalized", lambda: LabelVariationLoss(k=3, normalized="false")),
        "LabelVariationLoss(normalized=0)": ("normalized", lambda: LabelVariationLoss(k=3, normalized=0)),
        "LabelVariationObjective": ("cross_entropy", lambda: LabelVariationObjective(cross_entropy="yes")),
        "LaplacianSmoothnessObjective": ("apply_relu", lambda: LaplacianSmoothnessObjective(apply_relu=1)),
        "InputJacobianMatchingLoss": ("normalize", lambda: InputJacobianMatchingLoss(normalize="no")),
        "capture": ("detach", lambda: capture(model, ["0"], detach="no").__enter__()),
        "make_loader": ("shuffle", lambda: make_loader(x, y, 2, shuffle="no")),
        "full_jacobian": ("strict", lambda: decomposition.full_jacobian(model, x, strict="no")),
        "decompose": ("batch_statistics", lambda: decomposition.decompose(model, x, batch_statistics="no")),
        "fullgrad": ("differentiable", lambda: fullgrad(conv, torch.rand(2, 1, 5, 5), differentiable="no")),
        "embedding_label_variation": ("normalized", lambda: embedding_label_variation(x, y, k=3, normalized="no")),
        "fit": ("recalibrate_bn", lambda: fit(model, [(x, y)], epochs=1, recalibrate_bn="no")),
        "label_variation": ("normalized", lambda: lg.label_variation(lg.latent_graph(x, k=3), y, normalized="no")),
    }


@pytest.mark.parametrize("name", list(_flag_calls()))
def test_flags_must_be_real_bools(name):
    argument, call = _flag_calls()[name]
    with pytest.raises(TypeError, match=f"`{argument}` must be True or False, got"):
        call()


def test_the_same_mistake_gets_the_same_exception_type_across_losses():
    from latentgraph.losses.gkd import GKDLoss
    from latentgraph.losses.label_variation import LabelVariationLoss

    for make in (GKDLoss, LabelVariationLoss):
        with pytest.raises(TypeError, match="`k` must be an int or None, got bool"):
            make(k=True)
        with pytest.raises(ValueError, match="`k` must be at least 1"):
            make(k=0)
    with pytest.raises(ValueError, match="`power` must be an int ≥ 1, got 0"):
        GKDLoss(power=0)


def test_counts_are_checked_by_one_rule_across_the_api():
    from torch import nn

    from latentgraph.data.loading import make_loader
    from latentgraph.losses.baselines import AttentionTransferLoss
    from latentgraph.train import Trainer
    from latentgraph.train.objectives import ClassificationObjective

    sgd = lambda p: torch.optim.SGD(p, lr=0.1)  # noqa: E731
    with pytest.raises(TypeError, match="`checkpoint_every` must be an int, got bool"):
        Trainer(nn.Linear(2, 2), ClassificationObjective(), sgd, checkpoint_every=True)
    with pytest.raises(ValueError, match="`batch_size` must be an int ≥ 1, got 0"):
        make_loader(torch.rand(4, 2), torch.zeros(4, dtype=torch.long), batch_size=0)
    with pytest.raises(TypeError, match="`p` must be an int, got float"):
        AttentionTransferLoss(p=2.0)


def _monitor(**kwargs):
    from latentgraph.callbacks import LabelVariationMonitor
    y = torch.arange(12) % 3
    return LabelVariationMonitor(torch.randn(12, 4), y, ["0"], **kwargs)


def _models():
    from latentgraph.models import MLP, VGG, ResNet18, SmallCNN, WideResNet
    return MLP, VGG, ResNet18, SmallCNN, WideResNet


@pytest.mark.parametrize("call, error, phrase", [
    (lambda: _models()[3](width=True), TypeError, "`width` must be an int, got bool"),
    (lambda: _models()[3](num_classes="10"), TypeError, "`num_classes` must be an int, got str"),
    (lambda: _models()[3](in_channels=0), ValueError, "`in_channels` must be an int ≥ 1, got 0"),
    (lambda: _models()[0](64, hidden=(16, 0)), ValueError, "`hidden` must be an int ≥ 1, got 0"),
    (lambda: _models()[0](True), TypeError, "`in_features` must be an int, got bool"),
    (lambda: _models()[0](64, activation="gelu"), ValueError, "`activation` must be one of 'relu', 'tanh'"),
    (lambda: _models()[4](width=True), TypeError, "`width` must be a number, got bool"),
    (lambda: _models()[4](depth=16.0), TypeError, "`depth` must be an int, got float"),
    (lambda: _models()[4](depth=4), ValueError, "`depth` must be an int ≥ 10, got 4"),
    (lambda: _models()[4](dropout="0.1"), TypeError, "`dropout` must be a number, got str"),
    (lambda: _models()[4](dropout=-0.5), ValueError, "`dropout` must be a finite number ≥ 0"),
    (lambda: _models()[1](depth=True), TypeError, "`depth` must be an int, got bool"),
    (lambda: _models()[1](width=float("inf")), ValueError, "`width` must be a finite number > 0"),
    (lambda: _models()[2](width=64.0), TypeError, "`width` must be an int, got float"),
    (lambda: _monitor(k=True), TypeError, "`k` must be an int, got bool"),
    (lambda: _monitor(k=12), ValueError, r"`k` must be an int in 1\.\.11, got 12"),
    (lambda: _monitor(every="2"), TypeError, "`every` must be an int, got str"),
    (lambda: _monitor(every=0), ValueError, "`every` must be an int ≥ 1, got 0"),
    (lambda: _monitor().on_epoch_end(torch.nn.Identity(), 1.0), TypeError, "`epoch` must be an int, got float"),
    (lambda: _monitor().on_epoch_end(torch.nn.Identity(), -1), ValueError, "`epoch` must be an int ≥ 0, got -1"),
], ids=lambda v: "" if callable(v) or isinstance(v, type) else v[:40])
def test_models_and_callbacks_route_through_the_one_checker(call, error, phrase):
    with pytest.raises(error, match=phrase):
        call()


@pytest.mark.parametrize("x, error, phrase", [
    ([[1.0, 2.0]], TypeError, "`x` must be a torch.Tensor, got list"),
    (torch.ones(2, 3, dtype=torch.long), TypeError, "`x` must be a floating-point tensor"),
    (torch.zeros(0, 3), ValueError, "`x` must be a non-empty batch"),
    (torch.tensor([[1.0, float("nan"), 0.0]]), ValueError, "`x` contains NaN"),
])
def test_jacobian_and_gather_check_x_through_the_one_checker(x, error, phrase):
    from latentgraph.jacobian import full_jacobian
    from latentgraph.train.distributed import gather_features
    with pytest.raises(error, match=phrase):
        full_jacobian(torch.nn.Linear(3, 2), x)
    if isinstance(x, list):
        with pytest.raises(TypeError, match="`x` must be a torch.Tensor, got list"):
            gather_features(x, "grad")
    with pytest.raises(ValueError, match="`mode` must be one of 'none', 'nograd', 'grad'; got 'all'"):
        gather_features(torch.ones(2, 3), "all")
    with pytest.raises(ValueError, match="`x` must have a batch dimension"):
        gather_features(torch.tensor(1.0), "grad")


@pytest.mark.parametrize("kwargs, error, phrase", [
    (dict(width=True), TypeError, "`width` must be an int, got bool"),
    (dict(depth=0), ValueError, "`depth` must be an int ≥ 1, got 0"),
    (dict(dropout="0"), TypeError, "`dropout` must be a number, got str"),
    (dict(dropout=1.0), ValueError, r"`dropout` must be a number in \[0, 1\)"),
    (dict(kind="rnn"), ValueError, "`kind` must be one of"),
])
def test_zoo_networks_route_through_the_one_checker(kwargs, error, phrase):
    from latentgraph.generalization.networks import ZooNet
    with pytest.raises(error, match=phrase):
        ZooNet((4,), **kwargs)


@pytest.mark.parametrize("kwargs, error, phrase", [
    (dict(seed=1.0), TypeError, "`seed` must be an int, got float"),
    (dict(max_samples=True), TypeError, "`max_samples` must be an int, got bool"),
    (dict(max_samples=1), ValueError, "`max_samples` must be an int ≥ 2, got 1"),
    (dict(measure="nope"), ValueError, "`measure` must be one of"),
])
def test_complexity_arguments_route_through_the_one_checker(kwargs, error, phrase):
    from latentgraph.generalization.registry import complexity
    from latentgraph.models import MLP
    kwargs = {"measure": "margin", **kwargs}
    with pytest.raises(error, match=phrase):
        complexity(MLP(4, hidden=(4,), num_classes=2), torch.rand(8, 4), torch.arange(8) % 2, **kwargs)


def _fit(lr):
    from latentgraph.train import fit
    return fit(torch.nn.Linear(2, 2), [(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))], epochs=1, lr=lr, progress=False)


def _probe(C):
    from latentgraph.eval.probes import logistic_probe
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1])
    return logistic_probe(x, y, x, y, C=C)


@pytest.mark.parametrize("call, error, phrase", [
    (lambda: _fit(True), TypeError, "`lr` must be a number, got bool"),
    (lambda: _fit("0.1"), TypeError, "`lr` must be a number, got str"),
    (lambda: _fit(0.0), ValueError, "`lr` must be a finite number > 0"),
    (lambda: _probe(True), TypeError, "`C` must be a number, got bool"),
    (lambda: _probe(float("nan")), ValueError, "`C` must be a finite number > 0"),
], ids=["lr-bool", "lr-str", "lr-zero", "C-bool", "C-nan"])
def test_learning_rate_and_probe_strength_route_through_the_one_checker(call, error, phrase):
    with pytest.raises(error, match=phrase):
        call()
