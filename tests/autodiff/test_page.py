"""viz.page: the step-through page. Its data (the engine's numbers), the MathML converter,
and, in a real browser, the page itself: stepping, phases, modules, the scalar view."""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest

import autodiff as ad
from autodiff.page import _formula, page, to_mathml
from autodiff.viz import page as viz_page

# --- the formula converter ---------------------------------------------------------------------


def test_to_mathml_draws_powers_fractions_calls_and_keeps_needed_parentheses():
    assert to_mathml("1 - out^2") == (
        '<math display="inline"><mrow><mn>1</mn><mo>&#x2212;</mo><mrow><msup><mrow><mi>out'
        "</mi></mrow><mrow><mn>2</mn></mrow></msup></mrow></mrow></math>"
    )
    assert to_mathml("cos(x)") == (
        '<math display="inline"><mi>cos</mi><mo>&#x2061;</mo><mrow><mo>(</mo><mi>x</mi>'
        "<mo>)</mo></mrow></math>"
    )
    # a - (b + c) keeps its parentheses, a + (b + c) loses them; a fraction needs none.
    assert "<mo>(</mo><mi>b</mi><mo>+</mo><mi>c</mi><mo>)</mo>" in to_mathml("a - (b + c)")
    assert "<mo>(</mo>" not in to_mathml("a + (b + c)")
    assert "<mo>(</mo>" not in to_mathml("(a + b)/(c*d)")
    assert to_mathml("(a + b)/(c*d)").count("<mfrac>") == 1
    # The base of a power keeps its parentheses, a^b^c is a^(b^c), -x is a minus sign.
    assert "<mo>(</mo><mfrac>" in to_mathml("(a/b)^2")
    assert to_mathml("a^b^c").count("<msup>") == 2
    assert to_mathml("a*-b").count("<mo>(</mo>") == 1
    assert to_mathml("f(a, 2.5e-3)").count("<mo>,</mo>") == 1
    assert "<mn>2.5e-3</mn>" in to_mathml("f(a, 2.5e-3)")
    lhs = to_mathml("b", ("out", "a"))
    assert "<mfrac><mrow><mo>&#x2202;</mo><mi>out</mi></mrow>" in lhs
    assert lhs.endswith("<mo>=</mo><mi>b</mi></math>")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty formula"),
        ("a +", "at 3, found 'the end'"),
        ("a $ b", "unexpected '$' at 2"),
        ("(a", "expected ')'"),
        ("a b", "expected an operator at 2, found 'b'"),
        ("f(a,)", "at 4"),
    ],
)
def test_to_mathml_names_where_a_formula_is_malformed(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        to_mathml(text)


def test_every_rows_formula_renders_as_mathml():
    from autodiff.rules import OPS

    for name, op in OPS.items():
        for f in op.formula:
            assert to_mathml(f).startswith("<math"), (name, f)


def test_formula_and_input_names_come_from_the_row():
    from autodiff.page import _input_names
    from autodiff.rules import OPS

    assert _formula(OPS["tanh"], 0) == "1 - out^2"
    assert _formula(OPS["tanh"], 1) is None
    assert _formula(OPS["mul"], 1) == "a"
    assert _input_names(OPS["mul"], 2) == ["a", "b"]
    assert _input_names(OPS["linear"], 3) == ["x", "w", "b"]
    assert _input_names(OPS["concatenate"], 2) == ["x0", "x1"]  # variadic: no names


# --- the page's data: the engine's own numbers -------------------------------------------------


def _data(p):
    text = p.html.split('<script type="application/json" id="data">', 1)[1]
    return json.loads(text.split("</script>", 1)[0].replace("<\\/", "</"))


def _neuron():
    x1 = ad.Tensor(2.0, requires_grad=True, name="x1")
    x2 = ad.Tensor(0.0, requires_grad=True, name="x2")
    w1 = ad.Tensor(-3.0, requires_grad=True, name="w1")
    w2 = ad.Tensor(1.0, requires_grad=True, name="w2")
    b = ad.Tensor(6.8813735870195432, requires_grad=True, name="b")
    out = (x1 * w1 + x2 * w2 + b).tanh()
    return out, [x1, x2, w1, w2, b]


def _tensors():
    a = ad.Tensor([[1.0, 2, 3], [4, 5, 6]], requires_grad=True, name="A")
    b = ad.Tensor([[1.0, 0], [0, 1], [1, 1]], requires_grad=True, name="B")
    c = ad.Tensor([0.5, -1.0], requires_grad=True, name="c")
    y = ((a @ b + c).tanh() * a.sum() * 0.01).sum()
    return y, [a, b, c]


def _leaf_grads(data):
    """Each leaf's last running total in the backward steps: what the page shows at the end."""
    graph = data["graphs"][data["main"]]
    grads = {}
    for step in graph["backward"]:
        for part in step["parts"]:
            node = graph["nodes"][part["p"]]
            if node["k"] == "leaf_param":
                grads[node["l"]] = part["total"]
    return grads


@pytest.mark.parametrize("make", [_neuron, _tensors], ids=["scalars", "tensors"])
def test_page_shows_the_gradients_backward_computes_and_writes_no_grad(make, tmp_path):
    root, leaves = make()
    p = page(root, tmp_path / "steps")
    assert p.path == tmp_path / "steps.html" and p.path.read_text() == p.html
    assert all(t.grad is None for t in leaves)  # the page's pass wrote nothing
    shown = _leaf_grads(_data(p))
    root.backward()
    assert set(shown) == {t.name for t in leaves}
    for t in leaves:
        np.testing.assert_allclose(
            np.reshape(shown[t.name]["d"], t.shape), np.asarray(t.grad), rtol=1e-5, atol=1e-7
        )


def test_a_backward_step_holds_the_chain_rule_at_its_node():
    root, (x1, x2, w1, w2, b) = _neuron()
    data = _data(page(root))
    g = data["graphs"]["g"]
    first = g["backward"][0]
    assert g["nodes"][first["n"]]["op"] == "tanh"
    assert first["up"]["d"] == [1]
    (part,) = first["parts"]
    assert part["f"] == "1 - out^2" and "<msup>" in g["ml"][part["ml"]]
    local = 1 - np.tanh(x1.item() * w1.item() + b.item()) ** 2
    assert part["local"]["d"][0] == pytest.approx(local, rel=1e-5)
    assert part["prod"]["d"][0] == pytest.approx(local, rel=1e-5)
    mul = next(s for s in g["backward"] if g["nodes"][s["n"]]["l"] == "mul1")
    by_name = {p["name"]: p for p in mul["parts"]}
    assert by_name["a"]["local"]["d"] == [-3]  # d(x1*w1)/dx1 = w1
    assert by_name["b"]["local"]["d"] == [2]


def test_paths_are_summed_and_broadcasting_is_undone_on_the_page():
    x = ad.Tensor([1.0, 2.0, 3.0], requires_grad=True, name="x")
    m = ad.Tensor([[1.0], [10.0]], requires_grad=True, name="m")
    y = (x * m + x).sum()  # x is read twice, and broadcast to 2x3 in the product
    g = _data(page(y))["graphs"]["g"]
    parts = [p for s in g["backward"] for p in s["parts"] if g["nodes"][p["p"]]["l"] == "x"]
    assert [p["path"] for p in parts] == [1, 2] and {p["paths"] for p in parts} == {2}
    # From the add: the upstream ones summed over the rows; from the mul: m, summed.
    assert parts[0]["raw"]["s"] == [2, 3] and parts[0]["axes"] == [0]
    np.testing.assert_allclose(parts[0]["prod"]["d"], [2, 2, 2])
    np.testing.assert_allclose(parts[1]["raw"]["d"], [1, 1, 1, 10, 10, 10])
    assert parts[1]["axes"] == [0]
    np.testing.assert_allclose(parts[1]["prod"]["d"], [11, 11, 11])
    np.testing.assert_allclose(parts[1]["total"]["d"], [13, 13, 13])
    m_part = next(p for s in g["backward"] for p in s["parts"] if g["nodes"][p["p"]]["l"] == "m")
    assert m_part["axes"] == [1] and m_part["prod"]["d"] == [6, 6]


def test_forward_mode_tangents_agree_with_the_backward_pass():
    root, (x1, x2, w1, w2, b) = _neuron()
    g = _data(page(root, wrt=w1))["graphs"]["g"]
    assert g["nodes"][g["wrt"]]["l"] == "w1"
    final = g["tangent"][-1]
    assert g["nodes"][final["n"]]["l"] == g["nodes"][g["root"][0]]["l"]
    root.backward()
    assert final["tan"]["d"][0] == pytest.approx(w1.grad.item(), rel=1e-5)
    assert [g["nodes"][n]["op"] for n in g["forward"]] == ["mul", "mul", "add", "add", "tanh"]


def test_big_arrays_are_summarised_and_the_graph_is_not_drawn_past_max_nodes():
    x = ad.Tensor(np.arange(200.0).reshape(20, 10), requires_grad=True, name="x")
    y = x
    for _ in range(10):
        y = y * 1.01
    p = page(y.sum(), max_nodes=10, full_elements=16)
    g = _data(p)["graphs"]["g"]
    node = next(n for n in g["nodes"].values() if n["l"] == "x")
    assert node["v"] == {
        "s": [20, 10],
        "min": 0,
        "mean": 99.5,
        "max": 199,
        "head": [0, 1, 2, 3, 4, 5],
    }
    assert g["views"] == [] and "too many to draw" in g["message"]
    assert "<svg" not in p.html


def test_too_many_nodes_keeps_the_collapsed_drawing_and_says_so():
    import nn

    model = nn.MLP(4, [3, 3], 2, rng=0)
    loss = nn.functional.cross_entropy(model(ad.Tensor(np.ones((2, 4)))), np.array([0, 1]))
    full = _data(page(loss, model=model))["graphs"]["g"]
    assert [v["label"] for v in full["views"]][:2] == ["modules collapsed", "every node"]
    # 19 nodes; collapsed 13; a Linear opened 15, a ReLU opened 14.
    small = _data(page(loss, model=model, max_nodes=14))["graphs"]["g"]
    labels = [v["label"] for v in small["views"]]
    assert labels == [
        "modules collapsed; 19 nodes are too many to draw each (max_nodes=14)",
        "layers.1: ReLU opened",
        "layers.3: ReLU opened",
    ]
    # Boxes with no drawing of their own (too big opened) do not open.
    assert set(small["views"][0]["expand"].values()) == {1, 2}
    none = _data(page(loss, model=model, max_nodes=5))["graphs"]["g"]
    assert none["views"] == [] and "even with each module call collapsed" in none["message"]


def test_nan_and_inf_reach_the_page_as_text():
    x = ad.Tensor([0.0, 1.0], requires_grad=True, name="x")
    with np.errstate(all="ignore"):
        g = _data(page((x.log() * x).sum()))["graphs"]["g"]
    node = next(n for n in g["nodes"].values() if n.get("op") == "log")
    assert node["v"]["d"] == ["-Infinity", 0]
    assert g["nodes"][next(k for k, n in g["nodes"].items() if n["l"] == "x")]["g"]["d"][0] == "NaN"


def test_the_page_needs_no_network():
    p = page(_tensors()[0])
    assert "<link" not in p.html and "<img" not in p.html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", p.html)
    assert not re.search(r"""@import|url\(""", p.html)


def test_a_scalar_view_redoes_a_small_op_element_by_element():
    a = ad.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="A")
    b = ad.Tensor(np.arange(6.0).reshape(3, 2) / 4, requires_grad=True, name="B")
    y = ((a @ b).tanh()).sum()
    data = _data(page(y))
    g = data["graphs"]["g"]
    matmul = next(k for k, n in g["nodes"].items() if n.get("op") == "matmul")
    sub = data["graphs"][g["scalar"][matmul]]
    leaves = {n["l"] for n in sub["nodes"].values() if n["k"] == "leaf_param"}
    assert leaves == {f"A[{i},{j}]" for i in range(2) for j in range(3)} | {
        f"B[{i},{j}]" for i in range(3) for j in range(2)
    }
    assert {n["op"] for n in sub["nodes"].values() if "op" in n} == {"mul", "add"}
    y.backward()
    shown = {}
    for step in sub["backward"]:
        for part in step["parts"]:
            shown[sub["nodes"][part["p"]]["l"]] = part["total"]["d"][0]
    for i in range(2):
        for j in range(3):
            assert shown[f"A[{i},{j}]"] == pytest.approx(np.asarray(a.grad)[i, j], rel=1e-5)


def test_page_is_viz_page_and_refuses_what_it_cannot_show():
    assert viz_page is page
    with pytest.raises(TypeError, match="page: root must be a Tensor"):
        page(3.0)
    with pytest.raises(ValueError, match="max_nodes must be at least 2"):
        page(_neuron()[0], max_nodes=1)
    with pytest.raises(ValueError, match="not a scalar; pass grad="):
        page(ad.Tensor([1.0, 2.0], requires_grad=True) * 2)
    assert "<iframe srcdoc=" in page(_neuron()[0])._repr_html_()


def test_a_drawing_offers_its_page(tmp_path):
    from autodiff.viz import draw_graph

    root, _ = _neuron()
    drawing = draw_graph(root)
    assert repr(drawing).endswith(".page() steps through it>")
    p = drawing.copy().page(tmp_path / "from_drawing.html")
    assert p.path.exists() and p.steps == 5 and "tanh1: backpropagation" in p.html
    with pytest.raises(ValueError, match="only a drawing made by draw_graph"):
        __import__("autodiff.viz").viz.Drawing("x").page()


def test_python_m_nn_page_writes_the_page_of_a_training_step(tmp_path):
    from nn.__main__ import main

    argv = ["--dataset", "xor", "--epochs", "1", "--no-plots", "--quiet", "--page"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    written = tmp_path / "backward.html"
    assert summary["page"] == str(written) and summary["options"]["page"] is True
    html = written.read_text()
    data = json.loads(html.split('id="data">', 1)[1].split("</script>", 1)[0])
    graph = data["graphs"]["g"]
    assert {n["l"] for n in graph["nodes"].values() if n["k"] == "leaf_param"} == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    }
    assert len(graph["backward"]) >= 4 and graph["views"]


def _chain(nodes):
    """A graph of about `nodes` nodes (tensors and ops): a chain of scalar ops."""
    x = ad.Tensor(0.5, requires_grad=True, name="x")
    y = x
    for i in range((nodes - 1) // 5):  # 3 tensors and 2 ops a round
        c = ad.Tensor(1.0 + i / 100, requires_grad=True)
        y = (y * c).tanh()
    return y


def test_a_200_node_page_stays_under_300_kb():
    root = _chain(200)
    p = page(root)
    assert 195 <= p.nodes + len(_data(p)["graphs"]["g"]["forward"]) <= 205
    assert p.size < 300_000


# --- in a real browser ---------------------------------------------------------------------------

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _numbers(text):
    return [float(v) for v in NUMBER.findall(text)]


def _open(tab, p):
    tab.goto(p.path.as_uri())
    tab.wait_for_selector("body[data-ready='1']")


def _counter(tab):
    return tab.inner_text("#counter")


def _shown_leaf_grads(tab):
    return {
        row.query_selector("td").inner_text(): _numbers(row.query_selector("td.grad").inner_text())
        for row in tab.query_selector_all("#leaves tr[data-id]")
    }


def _not_blank(png):
    import imageio.v2 as imageio

    image = imageio.imread(io.BytesIO(png))
    colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    assert image.shape[0] > 300 and len(colours) > 20  # a drawing, text, highlights


@pytest.mark.parametrize("make", [_neuron, _tensors], ids=["scalars", "tensors"])
def test_in_the_browser_stepping_shows_the_gradients_of_backward(make, tmp_path, browser_page):
    tab = browser_page
    root, leaves = make()
    p = page(root, tmp_path / "page.html")
    _open(tab, p)
    steps = p.steps
    assert _counter(tab) == f"step 1 of {steps}"
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("ArrowRight")
    assert _counter(tab) == f"step 3 of {steps}"
    tab.keyboard.press("ArrowLeft")
    assert _counter(tab) == f"step 2 of {steps}"
    tab.click("#next")
    assert _counter(tab) == f"step 3 of {steps}"
    tab.click("#prev")
    tab.click("#prev")
    assert _counter(tab) == f"step 1 of {steps}"
    assert tab.query_selector("#step math") is not None  # the local derivative, as MathML
    assert "?" in tab.inner_text("#leaves")  # at step 1 not every leaf has its gradient
    # The slider and the play button.
    tab.eval_on_selector("#slider", "s => { s.value = 1; s.dispatchEvent(new Event('input')); }")
    assert _counter(tab) == f"step 2 of {steps}"
    tab.click("#play")
    tab.wait_for_function("document.getElementById('counter').textContent.startsWith('step 3')")
    tab.click("#play")  # pauses
    tab.click("#prev")
    assert _counter(tab) == f"step 2 of {steps}"
    for _ in range(steps + 2):  # past the end: it stays on the last step
        tab.keyboard.press("ArrowRight")
    assert _counter(tab) == f"step {steps} of {steps}"
    shown = _shown_leaf_grads(tab)
    root.backward()
    assert set(shown) == {t.name for t in leaves}
    for t in leaves:
        np.testing.assert_allclose(
            shown[t.name], np.asarray(t.grad).reshape(-1), rtol=1e-5, atol=1e-6
        )
    # The current node is highlighted in the drawing.
    assert tab.query_selector("#drawing .view:not([hidden]) g.cur") is not None
    _not_blank(tab.screenshot())
    assert tab.errors == []


def test_in_the_browser_the_phases_switch(tmp_path, browser_page):
    tab = browser_page
    root, (x1, x2, w1, w2, b) = _neuron()
    _open(tab, page(root, tmp_path / "page.html"))
    tab.click("button[data-phase=forward]")
    assert _counter(tab) == "step 1 of 5"
    assert "mul1 = mul(x1, w1)" in tab.inner_text("#step")
    assert _numbers(tab.inner_text("#step .value")) == [-6]
    tab.click("button[data-phase=tangent]")
    tab.keyboard.press("End")
    assert _counter(tab) == "step 4 of 4"  # x1's tangent reaches mul1, add1, add2, tanh1
    root.backward()
    assert _numbers(tab.inner_text("#step .tan")) == [pytest.approx(x1.grad.item(), rel=1e-5)]
    tab.click("button[data-phase=backward]")
    assert _counter(tab) == "step 1 of 5"
    assert tab.get_attribute("button[data-phase=backward]", "class") == "on"
    # Clicking a node shows its arrays.
    tab.click("#drawing .view:not([hidden]) g.node:has-text('w1')")
    assert _numbers(tab.inner_text("#detail .dvalue")) == [-3]
    assert _numbers(tab.inner_text("#detail .dgrad")) == [pytest.approx(w1.grad.item(), rel=1e-5)]
    assert tab.errors == []


def test_in_the_browser_a_module_opens_on_a_click(tmp_path, browser_page):
    import nn

    tab = browser_page
    model = nn.MLP(784, [128], 10, rng=0)  # a 784-128-10 network's training step
    x = ad.Tensor(np.random.default_rng(0).normal(size=(4, 784)).astype(np.float32))
    loss = nn.functional.cross_entropy(model(x), np.array([1, 2, 3, 4]))
    p = page(loss, tmp_path / "mlp.html", model=model)
    assert p.size < 300_000
    _open(tab, p)
    visible = "#drawing .view:not([hidden])"
    assert "modules collapsed" in tab.inner_text("#where")
    boxes = tab.query_selector_all(f"{visible} g.node:has-text('click to open')")
    assert len(boxes) == 3  # Linear, ReLU, Linear
    boxes[0].click()
    assert "opened" in tab.inner_text("#where")
    assert len(tab.query_selector_all(f"{visible} g.node:has-text('click to open')")) == 2
    assert tab.query_selector(f"{visible} g.node:has-text('weight')")
    tab.click("#collapse")
    assert "modules collapsed" in tab.inner_text("#where")
    tab.keyboard.press("End")
    shown = _shown_leaf_grads(tab)
    loss.backward()
    params = dict(model.named_parameters())
    assert set(shown) == set(params)
    for name, param in params.items():
        grad = np.asarray(param.grad)
        if grad.size <= 64:
            np.testing.assert_allclose(shown[name], grad.reshape(-1), rtol=1e-4, atol=1e-6)
        else:  # summarised: shape, then min, mean, max and the first values
            numbers = shown[name]
            assert numbers[: grad.ndim] == list(grad.shape)
            expected = [grad.min(), grad.mean(), grad.max()]
            np.testing.assert_allclose(
                numbers[grad.ndim : grad.ndim + 3], expected, rtol=1e-4, atol=1e-7
            )
    assert tab.errors == []


def test_in_the_browser_the_scalar_view_steps_element_by_element(tmp_path, browser_page):
    tab = browser_page
    a = ad.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="A")
    b = ad.Tensor(np.arange(6.0).reshape(3, 2) / 4, requires_grad=True, name="B")
    y = (a @ b).tanh().sum()
    p = page(y, tmp_path / "mm.html")
    _open(tab, p)
    while "matmul1 = matmul" not in tab.inner_text("#step"):
        tab.keyboard.press("ArrowRight")
    tab.click("#scalar")
    assert "scalar view of matmul1" in tab.inner_text("#where")
    assert tab.query_selector("#drawing .view:not([hidden]) g.node:has-text('A[1,2]')")
    tab.keyboard.press("End")
    shown = _shown_leaf_grads(tab)
    y.backward()
    for i in range(2):
        for j in range(3):
            assert shown[f"A[{i},{j}]"] == [pytest.approx(np.asarray(a.grad)[i, j], rel=1e-5)]
    tab.click("#back")
    assert "scalar view" not in tab.inner_text("#where")
    assert tab.errors == []


def test_in_the_browser_a_200_node_page_is_interactive_within_a_second(tmp_path, browser_page):
    tab = browser_page
    p = page(_chain(200), tmp_path / "big.html")
    assert p.size < 300_000
    started = time.perf_counter()
    _open(tab, p)
    tab.keyboard.press("End")
    tab.wait_for_function(
        f"document.getElementById('counter').textContent === 'step {p.steps} of {p.steps}'"
    )
    elapsed = time.perf_counter() - started
    ready = tab.evaluate("window.pageReady")  # ms from navigation to the script's end
    assert ready < 1000 and elapsed < 2.0, (ready, elapsed)
    assert tab.errors == []
