"""No adapter function grows past radon's C: the shared machinery keeps platforms simple.

Issue 17 measured the adapters by radon's cyclomatic complexity; this keeps the
result (``radon cc -s -n D adapters`` printing nothing) from sliding back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Class, Function

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def _blocks(blocks: list[Function | Class]) -> Iterator[Function | Class]:
    """Every function, method and closure radon rates, nested ones included."""
    for block in blocks:
        yield block
        if isinstance(block, Function):
            yield from _blocks(list(block.closures))


def rated_d_or_worse(source: str) -> list[str]:
    """``name (rank complexity)`` for each block of ``source`` rated D or worse."""
    return [
        f"{block.fullname} ({cc_rank(block.complexity)} {block.complexity})"
        for block in _blocks(cc_visit(source))
        if cc_rank(block.complexity) >= "D"
    ]


def test_no_adapter_function_is_rated_d_or_worse() -> None:
    modules = sorted(ADAPTERS.glob("*.py"))
    assert len(modules) >= 8  # the package itself, not an empty glob
    found = {
        path.name: bad for path in modules if (bad := rated_d_or_worse(path.read_text("utf-8")))
    }
    assert found == {}


def test_the_check_sees_a_function_that_is_too_complex() -> None:
    branches = "\n".join(f"    if x == {n}:\n        return {n}" for n in range(25))
    assert rated_d_or_worse(f"def tangled(x):\n{branches}\n    return -1\n") == ["tangled (D 26)"]
