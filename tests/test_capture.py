import pytest
import torch
from torch import nn

import latentgraph as lg


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 5), nn.ReLU()))
        self.shared = nn.Linear(5, 5)
        self.rnn = nn.GRU(5, 3, batch_first=True)

    def forward(self, x):
        h = self.shared(self.shared(self.encoder(x)))  # `shared` is called twice
        out, last = self.rnn(h[:, None, :])
        return out[:, 0], last  # the model returns a tuple


def test_nested_names_repeated_calls_and_tuple_outputs():
    model = Nested()
    x = torch.rand(3, 4)
    with lg.capture(model, ["encoder.2.1", "shared", "rnn"]) as acts:
        out, _ = model(x)
    assert list(acts) == ["encoder.2.1", "shared", "shared#1", "rnn"]
    expected = model.encoder(x)
    assert torch.equal(acts["encoder.2.1"], expected)
    assert torch.equal(acts["shared#1"], model.shared(model.shared(expected)))
    assert torch.equal(acts["rnn"], out[:, None, :])
    assert "encoder.2.1" in lg.layer_names(model)


def test_activations_keep_the_graph_unless_detached():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with lg.capture(model, ["0"]) as acts:
        model(torch.rand(2, 3))
    acts["0"].sum().backward()
    assert model[0].weight.grad is not None
    with lg.capture(model, "0", detach=True) as acts:
        model(torch.rand(2, 3))
    assert not acts["0"].requires_grad


def test_hooks_are_removed_even_on_exceptions():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with pytest.raises(RuntimeError):
        with lg.capture(model, ["0", "1"]):
            model(torch.rand(2, 5))  # wrong width
    assert not model[0]._forward_hooks and not model[1]._forward_hooks
    with lg.capture(model, ["0"]):
        pass
    assert not model[0]._forward_hooks


def test_unknown_name_lists_close_matches_and_available_names():
    model = Nested()
    with pytest.raises(ValueError, match=r"no module named 'encoder\.3'.*Did you mean.*Available: encoder"):
        with lg.capture(model, ["encoder.3"]):
            pass
    with pytest.raises(TypeError, match="nn.Module"):
        with lg.capture("model", ["a"]):
            pass


def test_outputs_modified_in_place_later_are_copied_or_reported():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True))
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    expected = model[0](x)
    assert (expected < 0).any()  # so the ReLU changes it
    with lg.capture(model, ["0"], detach=True) as acts:
        model(x)
    assert torch.equal(acts["0"], expected.detach())
    with pytest.raises(RuntimeError, match=r"'0' was modified in place"):
        with lg.capture(model, ["0"]) as acts:
            model(x)
    assert not model[0]._forward_hooks
    with lg.capture(model, ["1"]) as acts:  # the in-place module itself is fine
        model(x)
    assert torch.equal(acts["1"], expected.relu())
    with torch.inference_mode(), lg.capture(model, ["0", "1"]) as acts:  # no version counters there
        model(x)


def test_layer_names_must_be_strings():
    with pytest.raises(TypeError, match="`layers` must hold module names"):
        with lg.capture(nn.Sequential(nn.Linear(2, 2)), [0]):
            pass


def test_a_module_registered_under_two_names_is_found_under_either():
    class Aliased(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(3, 3)
            self.second = self.first  # named_modules() lists it once, as `first`

        def forward(self, x):
            return self.second(x)

    model = Aliased()
    x = torch.rand(2, 3)
    with lg.capture(model, ["second"]) as acts:
        out = model(x)
    assert torch.equal(acts["second"], out)
