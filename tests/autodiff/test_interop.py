"""numpy functions on Tensors (autodiff/interop.py): np.exp(t), np.sum(t), np.matmul(a, b)."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor


def test_numpy_ufunc_error_is_reported_not_replaced_by_a_constructor_error():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # Was "TypeError: _UFuncNoLoopError.__init__() missing 1 required positional argument".
    with pytest.raises(TypeError, match=r"^sign: .*(sign|bool)"):
        ad.sign(Tensor(np.array([True, False])))
