"""Bugs found by the second hunt, in the function transforms, conv and export; each test failed
before its fix. Reference values come from torch.func / torch.nn.functional in float64."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

import autodiff as ad
from autodiff import func

Pair = namedtuple("Pair", "value double")


def test_jvp_and_vjp_give_a_namedtuple_result_back_as_that_namedtuple():
    # Was: TypeError "Pair.__new__() missing 1 required positional argument" (the tuple
    # type was called with one generator), for a result check_outputs had accepted.
    x, v = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    out, tangent = ad.jvp(lambda a: Pair(a * a, a * 2), (x,), (v,))
    assert type(out) is Pair and type(tangent) is Pair
    np.testing.assert_allclose(tangent.value.numpy(), 2 * x * v)
    np.testing.assert_allclose(tangent.double.numpy(), 2 * v)
    value, pullback = func.vjp(lambda a: Pair(a * a, a * 2), x)
    assert type(value) is Pair
    np.testing.assert_allclose(value.value, x * x)
    (g,) = pullback(Pair(np.ones(2), np.ones(2)))
    np.testing.assert_allclose(g, 2 * x + 2)
