"""Names available to every doctest."""
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["nn"] = nn


# Each pytest-xdist worker gets one core: extra intra-op threads only compete.
torch.set_num_threads(1)
