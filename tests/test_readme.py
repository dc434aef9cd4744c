"""The documentation stays true: every python block of the README runs and prints what its
comments say, the guides' python blocks compile, and relative links and anchors resolve."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import autodiff as ad

ROOT = Path(__file__).resolve().parent
while not (ROOT / "pyproject.toml").exists():  # tests/ may be nested one level deeper
    ROOT = ROOT.parent
README = (ROOT / "README.md").read_text()
DOCS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "bench" / "HISTORY.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _heading_of(text: str, block: str) -> str:
    before = text[: text.index(block)]
    return re.findall(r"^## (.+)$", before, flags=re.M)[-1]


BLOCKS = _python_blocks(README)


def test_the_readme_has_its_tutorial_blocks():
    headings = [_heading_of(README, b) for b in BLOCKS]
    assert headings == [
        "A scalar, the micrograd way",
        "Tensors, broadcasting and matmul",
        "Training a network with `nn`",
        "Seeing backpropagation",
        "Forward mode, Jacobians and Hessians",
        "Forward mode, Jacobians and Hessians",
        "Forward mode, Jacobians and Hessians",
        "Batching without loops: `vmap`",
        "Your own primitive: `custom_op`",
    ]


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_every_readme_block_runs(index, tmp_path, monkeypatch, capsys):
    from threadpoolctl import threadpool_limits

    monkeypatch.chdir(tmp_path)  # blocks write graph.png, mnist.npz
    scope: dict = {}
    with threadpool_limits(1):  # two BLAS threads on a busy machine wait for each other
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), scope)  # noqa: S102
    heading = _heading_of(README, BLOCKS[index])
    printed = capsys.readouterr().out
    if heading == "Training a network with `nn`":
        # The comment claims the test accuracy after each epoch, to two decimals.
        claim = re.search(r"# ([0-9., ]+)$", BLOCKS[index], flags=re.M).group(1)
        claimed = [float(v) for v in claim.split(",")]
        got = [float(line.split()[1]) for line in printed.splitlines()]
        assert [round(v, 2) for v in got] == claimed
        import nn

        saved = nn.load(tmp_path / "mnist.npz")
        assert saved.keys() == scope["model"].state_dict().keys()
    if heading == "Batching without loops: `vmap`":
        assert printed.splitlines() == ["(8, 2) True", "(8, 2, 2)"]
    if heading == "Your own primitive: `custom_op`":
        assert printed.splitlines()[:3] == ["Tensor([0. , 0.5, 1. ])"] * 2 + ["True"]
    if heading == "Seeing backpropagation":
        assert (tmp_path / "graph.png").read_bytes().startswith(b"\x89PNG")
        assert "path 2 of 2: summed" in printed  # the row where the chain rule adds
        # explain_backward ran the backward pass: d = tanh(ab + a) at a = 2, b = -3
        slope = 1 - np.tanh(-4.0) ** 2
        assert scope["a"].grad.item() == pytest.approx(slope * (-3 + 1))
        assert scope["b"].grad.item() == pytest.approx(slope * 2)


@pytest.mark.parametrize("doc", DOCS[1:], ids=lambda p: p.name)
def test_the_guides_python_blocks_compile(doc):
    # They are not run (some download MNIST or train for minutes), but they must parse.
    for i, block in enumerate(_python_blocks(doc.read_text())):
        # A block inside a list item is indented with the item: dedent it first.
        compile(textwrap.dedent(block), f"{doc.name} block {i}", "exec")


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # not links inside code
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    checked = 0
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        assert target.exists(), f"{doc.name}: link to missing {link}"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target.read_text()), f"{doc.name}: no anchor {link}"
        checked += 1
    assert checked or doc.name == "CHANGELOG.md" or not links


# From the tests branch (tests/test_hunt_usage.py dissolved into subjects), kept verbatim so
# that merging the two branches' tests/test_readme.py is taking this file.
def test_readme_jvp_example_prints_the_value_its_comment_claims():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # The comment said `Tensor(0.1413...) = 2 * 1 * (1 - tanh(1)**2)`; that product is
    # 0.8399, and so is what the line prints.
    line = next(li for li in README.splitlines() if li.startswith("print(dy)"))
    claimed = float(re.search(r"# ([-0-9.]+)", line).group(1))
    _, dy = ad.jvp(lambda x: (x * x).tanh().sum(), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    assert isinstance(dy, np.floating) and round(float(dy), 4) == claimed  # numpy in, out
    assert claimed == round(2 * 1 * (1 - np.tanh(1.0) ** 2), 4)
