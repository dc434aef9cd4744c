"""nn.viz: training pictures (curves, weight heatmaps and GIFs, predictions,
boundaries, gradient flow) on matplotlib.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_weight_heatmap_keeps_its_colour_scale_when_a_weight_is_nan_or_inf(bad):
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # The limit was max |w| over the weights: NaN or inf, which matplotlib replaced by
    # +-0.1, so every finite weight was drawn saturated under a colour bar of +-0.1.
    from nn import viz

    fig = viz.heatmap_figure({"w": np.array([[bad, 1.0], [-2.0, 1.0]])})
    image = fig.axes[0].images[0]
    assert (image.norm.vmin, image.norm.vmax) == (-2.0, 2.0)
    rgba = image.to_rgba(image.get_array())
    assert not np.allclose(rgba[0, 1], image.cmap(1.0))  # 1.0 is half way, not saturated
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("first", [True, False])
def test_the_weight_gif_scale_ignores_a_nan_snapshot_wherever_it_is(first, tmp_path, monkeypatch):
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # Python's max() over frames gave NaN when the NaN frame came first (and not when last).
    from nn import viz

    seen = {}
    panels = viz._heatmap_panels

    def spy(snapshot, limits, image_shape):
        seen.update(limits)
        return panels(snapshot, limits, image_shape)

    monkeypatch.setattr(viz, "_heatmap_panels", spy)
    good = {"w": np.array([[1.0, -3.0], [0.5, 0.0]])}
    diverged = {"w": np.array([[np.nan, 1.0], [np.inf, 1.0]])}
    viz.weight_heatmaps([diverged, good] if first else [good, diverged], tmp_path / "w.gif")
    assert seen == {"w": 3.0}


def test_gradient_flow_says_when_a_layer_s_gradient_is_exactly_zero(recwarn):
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # On the log scale, zeros were dropped silently: a dead layer (all 0) was simply absent
    # from the plot, with matplotlib's "Data has no positive values" warning when every
    # layer was 0.
    import matplotlib.pyplot as plt

    from nn import viz

    fig = viz.gradient_flow(
        {"layers.0.weight": [0.0, 0.0, 0.0], "layers.2.weight": [1e-3, 0.0, 2e-3]}
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [
        "layers.0.weight (0 at all 3 steps: not drawable on a log scale)",
        "layers.2.weight (0 at 1 step, not drawn)",
    ]
    plt.close(fig)
    fig = viz.gradient_flow({"w": [0.0, 0.0]})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "w (0 at all 2 steps: not drawable on a log scale)"
    ]
    plt.close(fig)
    assert not [w for w in recwarn if "positive" in str(w.message)]
