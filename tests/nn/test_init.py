"""Weight initialisers (nn/init.py)."""

from __future__ import annotations

import numpy as np
import pytest

# --- PyTorch habits: training ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, torch_gain, fan",
    [
        ({"a": 5**0.5}, ("leaky_relu", 5**0.5), "fan_in"),  # PyTorch's own Linear init
        ({"mode": "fan_out"}, ("relu", None), "fan_out"),
        ({"nonlinearity": "tanh", "mode": "fan_out"}, ("tanh", None), "fan_out"),
        ({}, ("relu", None), "fan_in"),
    ],
)
def test_kaiming_takes_pytorchs_a_and_mode(torch, kwargs, torch_gain, fan):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # kaiming_uniform_(w, a=math.sqrt(5)) and mode="fan_out" were TypeErrors.
    import math

    import nn

    w = nn.Parameter(np.zeros((300, 200)))  # fan_in 200, fan_out 300
    fans = {"fan_in": 200, "fan_out": 300}
    std = torch.nn.init.calculate_gain(*torch_gain) / math.sqrt(fans[fan])
    nn.init.kaiming_uniform_(w, rng=0, **kwargs)
    bound = math.sqrt(3.0) * std
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    nn.init.kaiming_normal_(w, rng=0, **kwargs)
    assert w.data.std() == pytest.approx(std, rel=0.02)
    with pytest.raises(ValueError, match="kaiming_normal_: mode must be 'fan_in' or 'fan_out'"):
        nn.init.kaiming_normal_(w, mode="fan_avg")
