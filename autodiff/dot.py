"""Drawing basics shared by the static drawings (`autodiff.viz`) and the step-through page
(`autodiff.page`): the colours, finding and running Graphviz's `dot`, and the layout choices
both make the same way. Both modules import this one; neither imports the other's helpers.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import graphviz
import numpy as np

from .graph import Graph

# Colours that say what a node is; the same in every drawing, frame and legend.
COLORS = {
    "leaf_param": "#cfe2ff",  # blue: a leaf that requires grad (weights, inputs you study)
    "constant": "#e9ecef",  # grey: data, no gradient
    "intermediate": "#ffffff",  # white: computed by an op
    "output": "#c8ecc8",  # green: the root backward starts from
    "op": "#ffe8a3",  # amber: an operation
    "module": "#e5dbff",  # lavender: a module call drawn as one box
    "current": "#ff9b73",  # orange: the node backward is processing (animations)
}
LEGEND = {
    "leaf_param": "parameter (requires grad)",
    "constant": "constant",
    "intermediate": "computed",
    "output": "output",
    "op": "op",
    "module": "module call (collapsed)",
    "frame": "module call",
    "current": "backward is here",
}
LEGEND_STYLE = {"op": ' style="rounded"', "frame": ' style="dashed"'}
FONT = "Helvetica"


class GraphvizNotFound(graphviz.ExecutableNotFound):
    """No `dot` program: drawings can still be built and their DOT text read (`.source`).

    A graphviz.ExecutableNotFound (so a RuntimeError too): code written for graphviz
    catches it as it catches graphviz's own."""

    def __init__(self, message: str) -> None:
        RuntimeError.__init__(self, message)


def dot_executable() -> str:
    """The system `dot` if it is on PATH, else the binary the `graphviz-pure` wheel ships."""
    found = shutil.which("dot") or _graphviz_pure()
    if found is None:
        raise GraphvizNotFound(
            "rendering needs Graphviz's `dot` program: install it with `apt install graphviz` "
            "(or brew, conda, ...) or `pip install graphviz-pure`. The drawing's DOT text is "
            "still available as `digraph.source`."
        )
    return found


def _graphviz_pure() -> str | None:
    # pip puts the binary in the environment's scripts folder, which need not be on PATH
    # (a venv that is not activated, pyenv, --user installs): the wheel's file list says where.
    try:
        files = importlib.metadata.files("graphviz-pure") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name in ("graphviz-pure", "graphviz-pure.exe"):
            path = Path(str(f.locate())).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return shutil.which("graphviz-pure")


def _run_dot(source: str, fmt: str) -> bytes:
    # -Kdot: graphviz-pure picks its layout engine from its own name unless told.
    result = subprocess.run(
        [dot_executable(), "-Kdot", f"-T{fmt}"],
        input=source.encode(),
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.decode(errors='replace')[:500]}")
    return result.stdout


def _check_max_nodes(max_nodes: Any, who: str) -> float:
    """max_nodes as a limit: None for none. Below 2 the cut kept nothing but its "... earlier
    nodes" marker (max_nodes=1, 0 or -1 drew one box and "only the 0 nodes nearest the output
    are drawn", not even the output); None failed deep inside with "'>' not supported"."""
    if max_nodes is None:
        return math.inf
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)):
        raise TypeError(
            f"{who}: max_nodes must be an int (or None for no limit), got {max_nodes!r}"
        )
    if max_nodes < 2:
        raise ValueError(
            f"{who}: max_nodes must be at least 2 (the output and a note of what "
            f"was left out), got {max_nodes}"
        )
    return int(max_nodes)


# rankdir="auto" draws left to right only expressions of scalars (or tensors of up to 4
# elements, drawn on one line) whose longest chain has at most this many ops: micrograd's
# neuron, tanh(x1*w1 + x2*w2 + b), has 4. Arrays make wide records: a 2-16-2 network's
# cross-entropy loss has 4 ops and left to right it is 1,627 pt (2,169 px) wide; top down
# it is 744 x 585 pt.
AUTO_LR_DEPTH = 6


def _auto_rankdir(graph: Graph) -> str:
    small = all(math.prod(node.shape) <= 4 for node in graph.tensors.values())
    return "LR" if small and _depth(graph) <= AUTO_LR_DEPTH else "TB"


def _depth(graph: Graph) -> int:
    """The longest chain of ops from a leaf to the output."""
    depth: dict[str, int] = {}
    for tid in graph.tensors:  # parents before children
        op_id = f"op{tid[1:]}"
        parents = graph.inputs(op_id) if op_id in graph.ops else []
        depth[tid] = 1 + max((depth.get(p, 0) for p in parents), default=0) if parents else 0
    return max(depth.values(), default=0)


def _box_of(graph: Graph) -> dict[str, str | None]:
    """For each cluster, the module call it is collapsed into: the children of each top-level
    call (a model's layers), or the top-level call itself when it has no children."""
    has_children = {c.parent for c in graph.clusters.values()}
    boxes: dict[str, str | None] = {}
    for cid in graph.clusters:
        chain = [cid]
        while graph.clusters[chain[-1]].parent is not None:
            chain.append(cast(str, graph.clusters[chain[-1]].parent))  # not None: see while
        chain.reverse()  # outermost first
        if chain[0] not in has_children:
            boxes[cid] = chain[0]
        elif len(chain) == 1:
            boxes[cid] = None
        else:
            # A container (LeNet5.features is a Sequential) is not a layer: look inside it,
            # so a Conv2d gets its own box just as a Linear does.
            level = 1
            while (
                level + 1 < len(chain)
                and type(graph.clusters[chain[level]].module).__name__ in _CONTAINERS
            ):
                level += 1
            boxes[cid] = chain[level]
    return boxes


# nn's pure containers, named rather than imported: the drawing must not depend on nn.
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
