"""Trees (issue #23 item 1): autodiff.trees against jax.tree_util's rules, and every transform
taking and giving nested tuples, lists, dicts and namedtuples (checked against JAX where it
installs, and against the flat computation everywhere)."""

from __future__ import annotations

from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff
from autodiff import Tensor, trees
from autodiff.func import (
    checkpoint,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
)

Point = namedtuple("Point", "x y")

# --- the tree utilities -------------------------------------------------------------------------

leaf_values = st.one_of(
    st.integers(-5, 5),
    st.floats(-5, 5),
    st.builds(np.ones, st.integers(0, 3)),
)
keys = st.text("abcdef", min_size=1, max_size=3)
tree_strategy = st.recursive(
    leaf_values | st.none(),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=3),
        st.builds(Point, children, children),
    ),
    max_leaves=10,
)


def test_flatten_orders_dicts_by_sorted_key_and_none_has_no_leaves():
    tree = {"b": 1, "a": (2, None, [3]), "c": Point(4, 5)}
    leaves, treedef = autodiff.tree_flatten(tree)
    assert leaves == [2, 3, 1, 4, 5]
    assert treedef.num_leaves == 5
    back = autodiff.tree_unflatten(treedef, leaves)
    assert back == tree and list(back) == ["a", "b", "c"] and type(back["c"]) is Point
    assert autodiff.tree_leaves(None) == []
    assert autodiff.tree_map(lambda v: v * 10, tree) == {
        "a": (20, None, [30]),
        "b": 10,
        "c": Point(40, 50),
    }


def test_ordered_and_default_dicts_keep_their_kind():
    od = OrderedDict([("b", 1), ("a", 2)])
    leaves, treedef = autodiff.tree_flatten(od)
    assert leaves == [1, 2]
    assert type(autodiff.tree_unflatten(treedef, leaves)) is OrderedDict
    dd = defaultdict(list, {"b": 1, "a": 2})
    back = autodiff.tree_map(lambda v: -v, dd)
    assert type(back) is defaultdict and back.default_factory is list and back == {"a": -2, "b": -1}


def test_structure_mismatches_are_named():
    with pytest.raises(ValueError, match="does not match"):
        autodiff.tree_map(lambda a, b: a + b, {"a": 1}, {"b": 1})
    with pytest.raises(ValueError, match="has 2 leaves, got 3"):
        autodiff.tree_unflatten(autodiff.tree_structure((1, 2)), [1, 2, 3])
    with pytest.raises(TypeError, match="sortable"):
        autodiff.tree_flatten({1: 0, "a": 0})


@given(tree_strategy)
def test_property_flatten_matches_jax_tree_util(tree):
    tu = pytest.importorskip("jax.tree_util")
    ours, treedef = trees.tree_flatten(tree)
    theirs, jax_def = tu.tree_flatten(tree)
    assert len(ours) == len(theirs) and all(a is b for a, b in zip(ours, theirs, strict=True))
    assert treedef.num_leaves == jax_def.num_leaves
    rebuilt = trees.tree_unflatten(treedef, ours)
    assert tu.tree_structure(rebuilt) == jax_def
    # Equal structures exactly when JAX says so (the leaves' values do not matter).
    other = trees.tree_map(lambda v: 0, tree)
    assert trees.tree_structure(other) == treedef
    assert tu.tree_structure(tu.tree_map(lambda v: 0, tree)) == jax_def


@given(tree_strategy, tree_strategy)
def test_property_structure_equality_matches_jax(a, b):
    tu = pytest.importorskip("jax.tree_util")
    assert (trees.tree_structure(a) == trees.tree_structure(b)) == (
        tu.tree_structure(a) == tu.tree_structure(b)
    )


# --- transforms over trees ---------------------------------------------------------------------


def _loss(p, x):
    h = (x @ p["w"] + p["b"]).tanh()
    return (h * h).sum() + (p["extra"][0] * p["extra"][1]).sum()


def _params(rng):
    return {
        "w": rng.standard_normal((3, 2)),
        "b": rng.standard_normal(2),
        "extra": (rng.standard_normal(2), rng.standard_normal(2)),
    }


def _loss_flat(w, b, e0, e1, x):
    return _loss({"w": w, "b": b, "extra": (e0, e1)}, x)


def test_grad_of_a_dict_is_a_dict_and_a_tuple_is_not_stacked():
    # Before: "grad: argument 0 is not a number ...", and a tuple of arrays was stacked.
    rng = np.random.default_rng(0)
    p, x = _params(rng), rng.standard_normal((4, 3))
    g = grad(_loss)(p, x)
    assert set(g) == {"w", "b", "extra"} and isinstance(g["extra"], tuple)
    flat = grad(_loss_flat, argnums=(0, 1, 2, 3))(p["w"], p["b"], *p["extra"], x)
    assert all(type(leaf) is np.ndarray for leaf in autodiff.tree_leaves(g))
    np.testing.assert_allclose(g["w"], flat[0], rtol=1e-12)
    np.testing.assert_allclose(g["b"], flat[1], rtol=1e-12)
    np.testing.assert_allclose(g["extra"][0], flat[2], rtol=1e-12)
    np.testing.assert_allclose(g["extra"][1], flat[3], rtol=1e-12)
    pair = grad(lambda t: (t[0] * t[1]).sum())((np.ones(2), np.full(2, 3.0)))
    assert isinstance(pair, tuple) and len(pair) == 2
    np.testing.assert_allclose(pair[0], [3.0, 3.0])
    # A list of plain numbers is still one vector (numpy's reading), as before.
    np.testing.assert_allclose(grad(lambda v: (v * v).sum())([1.0, 2.0]), [2.0, 4.0])


def test_value_and_grad_with_tuple_argnums_of_trees_and_aux():
    p = {"a": np.array([1.0, 2.0]), "b": None}
    (value, aux), (gp, gx) = value_and_grad(
        lambda p, x: ((p["a"] * x).sum(), "aux"), argnums=(0, 1), has_aux=True
    )(p, np.array([3.0, 4.0]))
    assert aux == "aux" and value == 11.0
    assert gp["b"] is None
    np.testing.assert_allclose(gp["a"], [3.0, 4.0])
    np.testing.assert_allclose(gx, [1.0, 2.0])


def test_tensor_leaves_answer_with_tensors():
    p = {"w": Tensor(np.array([1.0, 2.0])), "v": Tensor(np.array([3.0]))}
    g = grad(lambda p: (p["w"] * p["w"]).sum() + p["v"].sum())(p)
    assert isinstance(g["w"], Tensor) and not g["w"].requires_grad
    np.testing.assert_allclose(g["w"].numpy(), [2.0, 4.0])


def test_vjp_and_jvp_with_trees_in_and_out():
    x = {"a": np.array([1.0, 2.0]), "b": np.array(3.0)}
    f = lambda d: {"s": d["a"] * d["b"], "t": [d["a"].sum(), d["b"] * 2]}  # noqa: E731
    out, pullback = vjp(f, x)
    np.testing.assert_allclose(out["s"], [3.0, 6.0])
    (g,) = pullback({"s": np.ones(2), "t": [np.array(1.0), np.array(1.0)]})
    np.testing.assert_allclose(g["a"], [3.0 + 1.0, 3.0 + 1.0])
    np.testing.assert_allclose(g["b"], 1.0 + 2.0 + 2.0)
    with pytest.raises(ValueError, match="structure"):
        pullback({"s": np.ones(2)})
    tangent = {"a": np.array([1.0, 0.0]), "b": np.array(1.0)}
    y, dy = jvp(f, (x,), (tangent,))
    np.testing.assert_allclose(dy["s"], [1.0 * 3 + 1.0, 0.0 + 2.0])
    np.testing.assert_allclose(dy["t"][0], 1.0)
    np.testing.assert_allclose(dy["t"][1], 2.0)
    with pytest.raises(ValueError, match="structure"):
        jvp(f, (x,), ({"a": np.ones(2)},))


def test_jacobians_and_hessian_of_trees_are_laid_out_as_jax():
    x = {"a": np.array([1.0, 2.0]), "b": np.array([0.5, -1.0])}
    f = lambda d: {"y": d["a"] * d["b"], "z": d["a"]}  # noqa: E731
    for jac in (jacrev(f)(x), jacfwd(f)(x), jacobian(f)(x)):
        np.testing.assert_allclose(jac["y"]["a"], np.diag(x["b"]))
        np.testing.assert_allclose(jac["y"]["b"], np.diag(x["a"]))
        np.testing.assert_allclose(jac["z"]["a"], np.eye(2))
        np.testing.assert_allclose(jac["z"]["b"], np.zeros((2, 2)))
    h = hessian(lambda d: (d["a"] ** 2 * d["b"]).sum())(x)
    np.testing.assert_allclose(h["a"]["a"], np.diag(2 * x["b"]))
    np.testing.assert_allclose(h["a"]["b"], np.diag(2 * x["a"]))
    np.testing.assert_allclose(h["b"]["b"], np.zeros((2, 2)))
    v = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    for mode in ("forward-over-reverse", "reverse-over-forward"):
        hv = hvp(lambda d: (d["a"] ** 2 * d["b"]).sum(), x, v, mode=mode)
        np.testing.assert_allclose(hv["a"], h["a"]["a"] @ v["a"] + h["a"]["b"] @ v["b"])
        np.testing.assert_allclose(hv["b"], h["b"]["a"] @ v["a"] + h["b"]["b"] @ v["b"])


def test_namedtuple_arguments_and_results():
    pt = Point(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    g = grad(lambda p: (p.x * p.y).sum())(pt)
    assert type(g) is Point
    np.testing.assert_allclose(g.x, pt.y)
    out, dout = jvp(lambda p: Point(p.x * 2, p.y), (pt,), (Point(np.ones(2), np.zeros(2)),))
    assert type(out) is Point and type(dout) is Point
    np.testing.assert_allclose(dout.x, [2.0, 2.0])


def test_checkpoint_takes_trees_and_keywords():
    def block(p, x, *, scale):
        return ((x @ p["w"]).tanh() * scale).sum()

    rng = np.random.default_rng(1)
    p = {"w": rng.standard_normal((3, 2))}
    x = rng.standard_normal((4, 3))
    plain = grad(lambda p: block(p, x, scale=2.0))(p)
    through = grad(lambda p: checkpoint(block)(p, x, scale=2.0))(p)
    np.testing.assert_allclose(through["w"], plain["w"], rtol=1e-12)


@given(st.integers(0, 2**31 - 1))
def test_property_tree_transforms_match_jax(seed):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(seed)
    p = {"w": rng.standard_normal((3, 2)), "pair": [rng.standard_normal(2), rng.standard_normal()]}
    x = rng.standard_normal((4, 3))

    def loss(p, x, tanh, sum_):
        h = tanh(x @ p["w"]) * p["pair"][0]
        return sum_(h * h) * p["pair"][1]

    ours = grad(loss)(p, x, lambda t: t.tanh(), lambda t: t.sum())
    theirs = jax.grad(loss)(p, x, jnp.tanh, jnp.sum)
    for a, b in zip(autodiff.tree_leaves(ours), jax.tree_util.tree_leaves(theirs), strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-10, atol=1e-12)
    ours_h = hessian(lambda p: loss(p, x, lambda t: t.tanh(), lambda t: t.sum()))(p)
    theirs_h = jax.hessian(lambda p: loss(p, x, jnp.tanh, jnp.sum))(p)
    assert trees.tree_structure(ours_h) == trees.tree_structure(
        jax.tree_util.tree_map(np.asarray, theirs_h)
    )
    for a, b in zip(autodiff.tree_leaves(ours_h), jax.tree_util.tree_leaves(theirs_h), strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-12)
