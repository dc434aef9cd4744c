"""Regression tests for bugs found by adversarial testing of nn/ (one test per bug)."""

from __future__ import annotations

import numpy as np
import pytest

import nn
import nn.functional as F
from autodiff import Tensor

# --- losses ------------------------------------------------------------------------------------


def test_nll_loss_refuses_boolean_and_float_labels_by_name():
    # Boolean labels used to index as a mask: [True, False] picked log p[0, 0] and log p[1, 0]
    # (loss 1.26) where the labels 1, 0 give 0.16, silently. Float labels failed deep inside
    # getitem. Both are now refused naming nll_loss and the dtype, as cross_entropy does.
    log_probs = Tensor(np.log(np.array([[0.1, 0.9], [0.8, 0.2]])))
    with pytest.raises(ValueError, match=r"nll_loss: labels must be integers .*bool"):
        F.nll_loss(log_probs, np.array([True, False]))
    with pytest.raises(ValueError, match=r"nll_loss: labels must be integers .*float64"):
        F.nll_loss(log_probs, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"labels must be integers"):
        nn.NLLLoss()(log_probs, [1.0, 0.0])
    # Integer labels (list or array) still work, with the right value.
    expected = -(np.log(0.9) + np.log(0.8)) / 2
    assert F.nll_loss(log_probs, [1, 0]).item() == pytest.approx(expected)
    assert F.nll_loss(log_probs, np.array([1, 0], dtype=np.uint8)).item() == \
        pytest.approx(expected)
    # No labels at all (np.asarray([]) is float64): the sum over nothing is 0.
    assert F.nll_loss(Tensor(np.zeros((0, 2))), [], reduction="sum").item() == 0.0
