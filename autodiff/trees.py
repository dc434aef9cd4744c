"""Trees of values: nested tuples, lists, dicts and namedtuples of arrays or Tensors (leaves).

    params = {"w": np.ones((3, 2)), "b": np.zeros(2)}
    leaves, treedef = tree_flatten(params)        # [b, w] (dict keys sorted), and the shape
    tree_unflatten(treedef, [2 * v for v in leaves])
    tree_map(lambda p, g: p - 0.1 * g, params, grads)

The transforms (`grad`, `jvp`, `vjp`, `jacrev`, ...) take and give such trees: the gradient
of a loss of a dict of parameters is a dict of the same keys. The structure rules are JAX's
(`jax.tree_util`), so code and habits carry over:

* tuples, lists and namedtuples are nodes whose children are their items, in order;
* a dict is a node whose children are its values in the order of its *sorted* keys (so two
  dicts built in different orders have one structure), and comes back with sorted keys;
  an OrderedDict keeps its own order, a defaultdict its default factory;
* None is a node with no children (an absent entry, not a leaf);
* everything else is a leaf: a Tensor, an array, a number, or any other object.

`is_leaf(x)`, if given, stops the descent at any x for which it answers True.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "TreeDef",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_structure",
    "tree_unflatten",
]

# Node kinds; the leaf kind has no children and stands for one value.
_LEAF, _NONE, _TUPLE, _LIST, _NAMEDTUPLE, _DICT, _ORDERED, _DEFAULT = range(8)
_NAMES = {
    _TUPLE: "tuple",
    _LIST: "list",
    _DICT: "dict",
    _ORDERED: "OrderedDict",
    _DEFAULT: "defaultdict",
}


class TreeDef:
    """The structure of a tree without its leaves: what `tree_unflatten` rebuilds from.

    Two TreeDefs are equal when their node types, dict keys and namedtuple classes agree
    at every position (the leaves' values and types do not matter)."""

    __slots__ = ("kind", "aux", "children", "num_leaves")

    def __init__(self, kind: int, aux: Any, children: tuple[TreeDef, ...]) -> None:
        self.kind = kind
        self.aux: Any = aux  # dict keys, the namedtuple class, (keys, default factory)
        self.children = children
        self.num_leaves: int = 1 if kind == _LEAF else sum(c.num_leaves for c in children)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TreeDef)
            and self.kind == other.kind
            and self.aux == other.aux
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((self.kind, _hashable(self.aux), self.children))

    def __repr__(self) -> str:
        return f"TreeDef({self._show()})"

    def _show(self) -> str:
        if self.kind == _LEAF:
            return "*"
        if self.kind == _NONE:
            return "None"
        inner = [c._show() for c in self.children]
        if self.kind == _TUPLE:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        if self.kind == _LIST:
            return "[" + ", ".join(inner) + "]"
        if self.kind == _NAMEDTUPLE:
            fields = self.aux._fields
            return (
                f"{self.aux.__name__}("
                + ", ".join(f"{k}={v}" for k, v in zip(fields, inner, strict=True))
                + ")"
            )
        keys = self.aux[0] if self.kind == _DEFAULT else self.aux
        body = "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(keys, inner, strict=True)) + "}"
        return body if self.kind == _DICT else f"{_NAMES[self.kind]}({body})"

    @property
    def is_leaf(self) -> bool:
        """Whether this structure is one bare leaf (no container around it)."""
        return self.kind == _LEAF

    def unflatten(self, leaves: Iterable[Any]) -> Any:
        """The tree of this structure with `leaves` in order (see `tree_unflatten`)."""
        return tree_unflatten(self, leaves)


def _hashable(aux: Any) -> Any:
    if isinstance(aux, tuple):
        return tuple(_hashable(a) for a in aux)
    try:
        hash(aux)
    except TypeError:
        return id(aux)
    return aux


_LEAF_DEF = TreeDef(_LEAF, None, ())


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _sorted_keys(d: dict) -> tuple:
    try:
        return tuple(sorted(d))
    except TypeError:
        raise TypeError(
            "tree_flatten: a dict's keys must be sortable (all strings, or all numbers) to "
            f"give one order, got {[type(k).__name__ for k in d]}"
        ) from None


def tree_flatten(
    tree: Any, is_leaf: Callable[[Any], bool] | None = None
) -> tuple[list[Any], TreeDef]:
    """The leaves of `tree`, left to right (dicts by sorted key), and its structure."""
    leaves: list[Any] = []
    return leaves, _flatten(tree, is_leaf, leaves)


def _flatten(x: Any, is_leaf: Callable[[Any], bool] | None, leaves: list[Any]) -> TreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF_DEF
    if x is None:
        return TreeDef(_NONE, None, ())
    aux: Any
    if isinstance(x, tuple):
        kind, aux = (_NAMEDTUPLE, type(x)) if _is_namedtuple(x) else (_TUPLE, None)
        if kind == _TUPLE and type(x) is not tuple:
            return _leaf(x, leaves)  # a tuple subclass we cannot rebuild: a leaf, as in JAX
        return TreeDef(kind, aux, tuple(_flatten(c, is_leaf, leaves) for c in x))
    if type(x) is list:
        return TreeDef(_LIST, None, tuple(_flatten(c, is_leaf, leaves) for c in x))
    if isinstance(x, dict) and type(x) in (dict, OrderedDict, defaultdict):
        if type(x) is OrderedDict:
            kind, keys, aux = _ORDERED, tuple(x), tuple(x)
        elif type(x) is defaultdict:
            keys = _sorted_keys(x)
            kind, aux = _DEFAULT, (keys, x.default_factory)
        else:
            kind, keys = _DICT, _sorted_keys(x)
            aux = keys
        return TreeDef(kind, aux, tuple(_flatten(x[k], is_leaf, leaves) for k in keys))
    return _leaf(x, leaves)


def _leaf(x: Any, leaves: list[Any]) -> TreeDef:
    leaves.append(x)
    return _LEAF_DEF


def tree_unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """The tree of structure `treedef` whose leaves are `leaves`, in order."""
    items = list(leaves)
    if len(items) != treedef.num_leaves:
        raise ValueError(
            f"tree_unflatten: the structure {treedef} has {treedef.num_leaves} leaves, "
            f"got {len(items)}"
        )
    it = iter(items)
    return _build(treedef, it)


def _build(d: TreeDef, it: Any) -> Any:
    kind = d.kind
    if kind == _LEAF:
        return next(it)
    if kind == _NONE:
        return None
    children = [_build(c, it) for c in d.children]
    if kind == _TUPLE:
        return tuple(children)
    if kind == _LIST:
        return children
    if kind == _NAMEDTUPLE:
        return d.aux(*children)
    if kind == _DICT:
        return dict(zip(d.aux, children, strict=True))
    if kind == _ORDERED:
        return OrderedDict(zip(d.aux, children, strict=True))
    keys, factory = d.aux
    return defaultdict(factory, zip(keys, children, strict=True))


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """The leaves of `tree`, in `tree_flatten`'s order."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> TreeDef:
    """The structure of `tree` (see `TreeDef`)."""
    return tree_flatten(tree, is_leaf)[1]


def tree_map(
    f: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """A tree of `tree`'s structure whose leaves are f(leaf, *matching leaves of rest).

    Every tree in `rest` must have `tree`'s structure (or a leaf of `tree` may stand for a
    whole subtree of a tree in `rest`, which f then receives whole, as in JAX)."""
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [_leaves_like(treedef, r, i + 1) for i, r in enumerate(rest)]
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])


def _leaves_like(treedef: TreeDef, tree: Any, position: int) -> list[Any]:
    """The subtrees of `tree` at the leaf positions of `treedef` (its structure must contain
    treedef's)."""
    out: list[Any] = []

    def walk(d: TreeDef, x: Any) -> None:
        if d.kind == _LEAF:
            out.append(x)
            return
        got = _flatten(x, lambda y: y is not x, [])  # x's own node, children as leaves
        if got.kind != d.kind or got.aux != d.aux or len(got.children) != len(d.children):
            raise ValueError(
                f"tree_map: tree {position} has structure {tree_structure(tree)}, which does "
                f"not match the first tree's {treedef}"
            )
        if d.kind == _NONE:
            return
        if d.kind in (_DICT, _ORDERED, _DEFAULT):
            keys = d.aux[0] if d.kind == _DEFAULT else d.aux
            values = [x[k] for k in keys]
        else:
            values = list(x)
        for c, v in zip(d.children, values, strict=True):
            walk(c, v)

    walk(treedef, tree)
    return out
