"""autodiff.testing: gradcheck, check_jvp / check_vjp and their messages."""

from __future__ import annotations

import re

import numpy as np
import pytest

from autodiff import Tensor


def test_gradcheck_of_a_scalar_function_reports_its_true_derivatives():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # The output was multiplied by a random weight (1.137) before differentiating, and the
    # failure message showed the weighted numbers: d/dx sum(sin(3x)) at 0.1 read "numerical
    # 3.258543" where it is 3 cos(0.3) = 2.866.
    from autodiff.testing import gradcheck

    def outside(x):  # sin(3x) computed outside the engine: no gradient flows
        return Tensor(np.sin(3 * x.numpy())).sum() + (x * 0).sum()

    with pytest.raises(AssertionError) as caught:
        gradcheck(outside, np.array([0.1, 0.2]))
    message = str(caught.value)
    numerical = float(re.search(r"vs numerical ([-0-9.e]+)", message).group(1))
    assert numerical == pytest.approx(3 * np.cos(0.3), rel=1e-6)
    assert "backprop 0 vs" in message and "w fixed random" not in message
    # a rule that ignores its upstream gradient is still caught behind a scalar output
    from autodiff.engine import apply
    from autodiff.rules import Op

    forgets_g = Op("cube", lambda x: x**3, lambda g, out, x: 3 * x**2)
    with pytest.raises(AssertionError, match=r"vs numerical 3 \("):
        gradcheck(lambda x: apply(forgets_g, (x,)), np.array(1.0))


def test_gradcheck_says_its_numbers_are_weighted_when_the_output_is_not_a_scalar():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    from autodiff.testing import gradcheck

    # The worst entry of the full Jacobians, by hand: d out[j] / d input 0[k].
    with pytest.raises(
        AssertionError, match=r"d out\[\d\] / d input 0\[\d\]: backprop 0 vs numerical"
    ):
        gradcheck(lambda x: Tensor(np.sin(3 * x.numpy())) + x * 0, np.array([0.1, 0.2]))


def test_check_jvp_and_check_vjp_say_that_several_inputs_are_a_tuple():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    from autodiff.testing import check_jvp, check_vjp

    x, y = Tensor(np.array([0.3, 0.5])), Tensor(np.array([1.5, -2.0]))
    for check in (check_jvp, check_vjp):
        # It failed with "missing 1 required positional argument", the list stacked into one.
        with pytest.raises(
            TypeError,
            match=rf"{check.__name__}: give several inputs as a "
            r"tuple",
        ):
            check(lambda a, b: (a * b).sum(), [x, y])
        assert check(lambda a, b: (a * b.tanh()).sum(), (x, y))
        assert check(lambda a: (a * a).sum(), [0.3, 0.5])  # a list of numbers: one input


# --- numerical gradients by hand -------------------------------------------------------------


def test_numerical_grad_of_a_transposed_view_perturbs_the_array_itself():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # reshape(-1) of a non-contiguous view was a copy: every derivative came out 0.
    from autodiff.testing import numerical_grad

    w = np.arange(6.0).reshape(3, 2).T  # the (in, out) weight a newcomer stores transposed
    (g,) = numerical_grad(lambda arrays: float((arrays[0] ** 2).sum()), [w])
    np.testing.assert_allclose(g, 2 * w, atol=1e-6)
    np.testing.assert_array_equal(w, np.arange(6.0).reshape(3, 2).T)  # restored


@pytest.mark.parametrize(
    "array, error",
    [
        (np.arange(6, dtype=np.float32) + 100, r"array 0 is float32.*need float64"),  # was all 0
        (np.arange(6), r"array 0 is int64.*need float64"),  # was 500000, 1500000, ...
        (Tensor(np.arange(6.0)), r"array 0 must be a numpy array.*t\.data\.copy\(\)"),
    ],
)
def test_numerical_grad_refuses_arrays_it_cannot_perturb(array, error):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    from autodiff.testing import numerical_grad

    with pytest.raises(TypeError, match=error):
        numerical_grad(lambda arrays: float((np.asarray(arrays[0]) ** 2).sum()), [array])
