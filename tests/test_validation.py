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
