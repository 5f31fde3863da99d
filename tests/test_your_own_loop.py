"""The code blocks of docs/your-own-loop.md run, each after the setup block."""
import importlib.util
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "your-own-loop.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
SETUP, EXAMPLES = BLOCKS[0], BLOCKS[1:]


def _needs(block: str) -> list[str]:
    first = block.splitlines()[0]
    return first.removeprefix("# needs:").split() if first.startswith("# needs:") else []


def test_the_doc_has_its_examples():
    assert len(EXAMPLES) == 5
    assert [_needs(block) for block in EXAMPLES].count(["lightning"]) == 1


@pytest.mark.parametrize("block", EXAMPLES, ids=[f"block{i + 1}" for i in range(len(EXAMPLES))])
def test_doc_block_runs(block, tmp_path, monkeypatch):
    for module in _needs(block):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    monkeypatch.chdir(tmp_path)  # anything written lands in a temporary folder
    namespace: dict = {"__name__": "doc_example"}
    exec(compile(SETUP, f"{DOC.name}:setup", "exec"), namespace)  # noqa: S102 - the project's own doc
    exec(compile(block, f"{DOC.name}:example", "exec"), namespace)  # noqa: S102
