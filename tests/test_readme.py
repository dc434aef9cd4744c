"""The README's examples print what their comments say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import autodiff as ad

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_jvp_example_prints_the_value_its_comment_claims():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # The comment said `Tensor(0.1413...) = 2 * 1 * (1 - tanh(1)**2)`; that product is
    # 0.8399, and so is what the line prints.
    line = next(li for li in README.splitlines() if li.startswith("print(dy)"))
    claimed = float(re.search(r"Tensor\(([-0-9.]+)", line).group(1))
    _, dy = ad.jvp(lambda x: (x * x).tanh().sum(), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    assert round(dy.item(), 4) == claimed
    assert claimed == round(2 * 1 * (1 - np.tanh(1.0) ** 2), 4)


# --- the README, followed literally ----------------------------------------------------------


def _printed_claims(block: str) -> list[str]:
    """The comment after each print(...) of a README block, with its continuation lines."""
    claims: list[str] = []
    for line in block.splitlines():
        code, _, comment = line.partition("#")
        if code.strip().startswith("print("):
            claims.append(comment.split("<-")[0].strip())
        elif not code.strip() and comment and claims:
            claims[-1] += " " + comment.split("<-")[0].strip()
    return claims


@pytest.mark.parametrize(
    "heading", ["## A scalar, the micrograd way", "## Tensors, broadcasting and matmul"]
)
def test_readme_snippets_print_what_their_comments_say(heading, capsys):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # The broadcasting snippet claimed `Tensor(1.7871, op=mul)`; mean prints as op=mean.
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split(heading)[1].split("```python\n")[1].split("```")[0]
    claims = _printed_claims(block)
    assert claims
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README
    printed = capsys.readouterr().out.splitlines()
    # one print may span several lines (a matrix); compare with whitespace collapsed
    got = " ".join(" ".join(printed).split())
    want = " ".join(" ".join(claims).split())
    assert got == want
