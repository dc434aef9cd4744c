"""The README's examples print what their comments say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

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
