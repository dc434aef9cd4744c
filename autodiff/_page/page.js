"use strict";
// Shows the steps that autodiff.page recorded from the engine; it computes no numbers itself.
(function () {
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const $ = (id) => document.getElementById(id);
  const state = { graph: DATA.main, phase: "backward", step: 0, view: {}, timer: null, sel: null };
  const PHASES = { forward: "forward pass", backward: "backward pass", tangent: "forward mode" };

  const G = () => DATA.graphs[state.graph];
  const steps = () => G()[state.phase];
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const label = (id) => esc(G().nodes[id].l);
  const ml = (k) => (k === null || k === undefined ? "" : G().ml[k]);
  const shapeText = (s) => (s.length ? s.join("\u00d7") : "scalar");

  function fmt(x) {
    if (typeof x === "string") return x;
    if (Number.isInteger(x)) return String(x);
    let s = x.toPrecision(6);
    if (s.includes("e")) return s.replace(/\.?0+e/, "e");
    return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
  }
  function nest(d, s, off) {
    if (s.length === 0) return fmt(d[off]);
    const inner = s.slice(1).reduce((a, b) => a * b, 1);
    const items = [];
    for (let i = 0; i < s[0]; i++) items.push(nest(d, s.slice(1), off + i * inner));
    return "[" + items.join(s.length > 1 ? ",\n " : ", ") + "]";
  }
  // An array as text: in full when the page has it, else its summary.
  function arr(a) {
    if (!a) return '<span class="arr">?</span>';
    if (a.d) return '<span class="arr">' + esc(nest(a.d, a.s, 0)) + "</span>";
    return '<span class="arr">' + esc(shapeText(a.s) + ": min " + fmt(a.min) + ", mean " + fmt(a.mean) +
      ", max " + fmt(a.max) + "; first " + a.head.map(fmt).join(", ") + ", ...") + "</span>";
  }
  const sh = (a) => (a ? ' <span class="note">(' + shapeText(a.s) + ")</span>" : "");

  function currentView() {
    const g = G();
    if (!g.views.length) return null;
    const k = state.view[g.key] ?? g.start;
    return g.views[k];
  }
  function el(id) {
    const v = currentView();
    if (!v) return null;
    return document.getElementById(v.prefix + (v.where[id] || id));
  }
  function mark(id, cls) {
    const e = el(id);
    if (e) e.classList.add(cls);
  }

  function showView() {
    const g = G();
    const v = currentView();
    document.querySelectorAll(".view").forEach((d) => {
      d.hidden = !(v && d.dataset.graph === g.key && Number(d.dataset.view) === g.views.indexOf(v));
    });
    $("toobig").hidden = Boolean(v);
    $("toobig").textContent = g.message || "";
    $("collapse").hidden = !(v && g.collapsed !== undefined && g.views.indexOf(v) !== g.collapsed);
    $("expandall").hidden = !(v && g.all !== undefined && g.views.indexOf(v) !== g.all);
    $("back").hidden = state.graph === DATA.main;
    const title = state.graph === DATA.main ? "" : esc(g.title) + " ";
    const several = g.views.length > 1 || (v && v.label !== "every node");
    $("where").innerHTML = title + (v && several ? '<span class="note">(' + esc(v.label) + ")</span>" : "");
  }

  function call(n) {
    return "<b>" + esc(n.l) + "</b> = " + esc(n.op) + "(" + n.in.map((i) => esc(G().nodes[i].l)).join(", ") +
      (n.pa ? ", " + esc(n.pa) : "") + ")";
  }

  function backwardPanel(s, k) {
    const g = G();
    const n = g.nodes[s.n];
    const root = g.root.length === 1 ? label(g.root[0]) : "L";
    let h = "<h2>Step " + (k + 1) + ": " + call(n) + "</h2>";
    h += "<p>value " + arr(n.v) + sh(n.v) + "</p>";
    h += '<p>upstream gradient \u2202' + root + "/\u2202" + esc(n.l) + ' = <span class="up">' + arr(s.up) + "</span>" + sh(s.up) + "</p>";
    if (!s.parts.length) h += '<p class="note">no input of this op requires a gradient</p>';
    for (const p of s.parts) {
      const pn = g.nodes[p.p];
      h += '<div class="part" data-parent="' + p.p + '"><h3>to input ' + p.i + ": <b>" + esc(pn.l) + "</b>" +
        (p.name !== pn.l ? ' <span class="note">(' + esc(p.name) + " in the formula)</span>" : "") + "</h3>";
      h += "<p>local derivative " + (ml(p.ml) || (p.f ? esc(p.f) : "")) +
        (p.local ? " = " + arr(p.local) : " (the op's vector-Jacobian product: no number per element)") + "</p>";
      if (p.raw) {
        h += "<p>upstream \u00d7 local = " + arr(p.raw) + sh(p.raw) + "</p>";
        h += '<p>un-broadcasting: summed over axes [' + p.axes.join(", ") + "] to " + esc(pn.l) + "'s shape " +
          shapeText(pn.s) + ': <span class="prod">' + arr(p.prod) + "</span></p>";
      } else {
        h += '<p>upstream \u00d7 local = <span class="prod">' + arr(p.prod) + "</span>" + sh(p.prod) + "</p>";
      }
      if (p.paths > 1) {
        h += "<p>sum over paths: " + esc(pn.l) + " is used " + p.paths + " times; after path " + p.path +
          ", \u2202" + root + "/\u2202" + esc(pn.l) + ' so far = <span class="total">' + arr(p.total) + "</span>" +
          (p.path === p.paths ? " (complete)" : "") + "</p>";
      }
      h += "</div>";
    }
    return h;
  }

  function forwardPanel(id, k) {
    const n = G().nodes[id];
    let h = "<h2>Step " + (k + 1) + ": " + call(n) + "</h2>";
    h += '<p>value <span class="value">' + arr(n.v) + "</span>" + sh(n.v) + "</p>";
    for (const [i, p] of n.in.entries()) h += "<p>input " + i + " " + label(p) + " = " + arr(G().nodes[p].v) + "</p>";
    return h;
  }

  function tangentPanel(s, k) {
    const g = G();
    const n = g.nodes[s.n];
    const w = label(g.wrt);
    let h = "<h2>Step " + (k + 1) + ": " + call(n) + "</h2>";
    h += '<p class="note">tangents: d/d' + w + " of each node (" + w + "'s tangent is all ones)</p>";
    for (const p of s.parts) {
      h += '<div class="part"><h3>from input ' + p.i + ": <b>" + label(p.p) + "</b>, tangent " + arr(p.tan) + "</h3>";
      if (ml(p.ml) || p.local) h += "<p>local derivative " + ml(p.ml) + (p.local ? " = " + arr(p.local) : "") + "</p>";
      if (p.prod) h += "<p>local \u00d7 tangent = " + arr(p.prod) + "</p>";
      h += "</div>";
    }
    h += "<p>tangent of " + esc(n.l) + ' (the sum) = <span class="tan">' + arr(s.tan) + "</span></p>";
    return h;
  }

  // Every leaf's gradient as far as the backward pass has got (the engine's running sums).
  function leavesTable(k) {
    const g = G();
    const so = {};
    if (state.phase === "backward") {
      for (let j = 0; j <= k && j < g.backward.length; j++) for (const p of g.backward[j].parts) so[p.p] = p;
    }
    let h = "<tr><th>leaf</th><th>shape</th><th>" + (state.phase === "tangent" ? "tangent" : "gradient so far") + "</th><th></th></tr>";
    for (const id of g.order) {
      const n = g.nodes[id];
      if (n.k !== "leaf_param") continue;
      const p = so[id];
      const shown = state.phase === "backward" ? p && p.total : state.phase === "tangent" ? n.t : null;
      const partial = p && state.phase === "backward" && p.path < p.paths ? " (" + p.path + " of " + p.paths + " paths)" : "";
      h += '<tr data-id="' + id + '"><td>' + esc(n.l) + "</td><td>" + shapeText(n.s) + '</td><td class="grad">' +
        (shown ? arr(shown) : "?") + '</td><td class="note">' + partial + "</td></tr>";
    }
    $("leaves").innerHTML = h;
  }

  function detail(id) {
    const n = G().nodes[id];
    if (!n) return;
    let h = "<h3>" + esc(n.l) + ' <span class="note">' + esc(n.k) + ", " + shapeText(n.s) + " " + esc(n.dt) + "</span></h3>";
    if (n.op) h += "<p>" + call(n) + "</p>";
    h += '<p>value <span class="dvalue">' + arr(n.v) + "</span></p>";
    h += '<p>gradient <span class="dgrad">' + arr(n.g) + "</span></p>";
    if (n.t) h += "<p>tangent " + arr(n.t) + "</p>";
    $("detail").innerHTML = h;
  }

  function render() {
    const g = G();
    const st = steps();
    state.step = Math.max(0, Math.min(st.length - 1, state.step));
    const k = state.step;
    const slider = $("slider");
    slider.max = Math.max(st.length - 1, 0);
    slider.value = k;
    $("counter").textContent = st.length ? "step " + (k + 1) + " of " + st.length : "no steps";
    document.querySelectorAll("#phases button").forEach((b) => b.classList.toggle("on", b.dataset.phase === state.phase));
    showView();
    document.querySelectorAll(".cur, .src, .done, .sel").forEach((e) => e.classList.remove("cur", "src", "done", "sel"));
    let html = "";
    let current = null;
    if (!st.length) {
      html = '<p class="note">' + (state.phase === "tangent" ? esc(g.tnote || "no tangents") : "nothing to step through") + "</p>";
    } else if (state.phase === "backward") {
      for (let j = 0; j < k; j++) mark(st[j].n, "done");
      current = st[k].n;
      for (const p of st[k].parts) mark(p.p, "src");
      html = backwardPanel(st[k], k);
    } else if (state.phase === "forward") {
      for (let j = 0; j < k; j++) mark(st[j], "done");
      current = st[k];
      for (const p of g.nodes[current].in) mark(p, "src");
      html = forwardPanel(current, k);
    } else {
      for (let j = 0; j < k; j++) mark(st[j].n, "done");
      current = st[k].n;
      for (const p of st[k].parts) mark(p.p, "src");
      html = tangentPanel(st[k], k);
      if (g.tnote && k === st.length - 1) html += '<p class="note">' + esc(g.tnote) + "</p>";
    }
    if (current) {
      mark(current, "cur");
      const n = g.nodes[current];
      if (n.op) mark("o" + current.slice(1), "cur");
      const e = el(current);
      if (e && e.scrollIntoView) e.scrollIntoView({ block: "nearest", inline: "nearest" }); // big graphs
    }
    if (state.sel) mark(state.sel, "sel");
    $("step").innerHTML = html;
    leavesTable(k);
    $("scalar").hidden = !(current && g.scalar[current]);
  }

  function go(k) { state.step = k; render(); }
  function stop() { if (state.timer) { clearInterval(state.timer); state.timer = null; $("play").textContent = "\u25b6 play"; } }
  function play() {
    if (state.timer) return stop();
    if (state.step >= steps().length - 1) state.step = -1;
    $("play").textContent = "\u275a\u275a pause";
    state.timer = setInterval(() => {
      if (state.step >= steps().length - 1) return stop();
      go(state.step + 1);
    }, 900);
  }
  function setGraph(key) { stop(); state.graph = key; state.step = 0; state.sel = null; $("detail").innerHTML = ""; render(); }

  $("prev").addEventListener("click", () => { stop(); go(state.step - 1); });
  $("next").addEventListener("click", () => { stop(); go(state.step + 1); });
  $("play").addEventListener("click", play);
  $("slider").addEventListener("input", () => { stop(); go(Number($("slider").value)); });
  document.querySelectorAll("#phases button").forEach((b) => b.addEventListener("click", () => {
    stop(); state.phase = b.dataset.phase; state.step = 0; render();
  }));
  $("scalar").addEventListener("click", () => {
    const st = steps()[state.step];
    const id = state.phase === "forward" ? st : st.n;
    setGraph(G().scalar[id]);
  });
  $("back").addEventListener("click", () => setGraph(DATA.main));
  $("collapse").addEventListener("click", () => { state.view[G().key] = G().collapsed; render(); });
  $("expandall").addEventListener("click", () => { state.view[G().key] = G().all; render(); });
  $("drawing").addEventListener("click", (e) => {
    const node = e.target.closest("g.node");
    const v = currentView();
    if (!node || !v || !node.id.startsWith(v.prefix)) return;
    const id = node.id.slice(v.prefix.length);
    if (id in v.expand) {
      state.view[G().key] = v.expand[id];
      render();
      const frame = el(id); // the module's frame in the view just opened
      if (frame && frame.scrollIntoView) frame.scrollIntoView({ block: "nearest", inline: "nearest" });
      return;
    }
    const tensor = id.startsWith("o") ? "n" + id.slice(1) : id;
    if (G().nodes[tensor]) { state.sel = tensor; detail(tensor); render(); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.target && e.target.tagName === "INPUT") return; // the slider moves itself
    const moves = { ArrowRight: 1, ArrowLeft: -1 };
    if (e.key in moves) { stop(); go(state.step + moves[e.key]); e.preventDefault(); }
    else if (e.key === "Home") { stop(); go(0); }
    else if (e.key === "End") { stop(); go(steps().length - 1); }
    else if (e.key === " ") { play(); e.preventDefault(); }
  });
  render();
  window.pageReady = performance.now();
  document.body.dataset.ready = "1";
})();
