/* llmops line charts: small, dependency-free SVG charts of metric series.
 *
 * Markup (rendered by the server):
 *   <div class="chart" data-chart data-key="loss"
 *        data-runs='[{"id": "<run id>", "label": "baseline", "color": 0}, ...]'></div>
 * Each run's series comes from GET /api/v1/runs/{id}/metrics/{key} (the session cookie authenticates
 * it). The chart draws one line per run with axes and ticks, a legend whose entries toggle their line,
 * a hover crosshair with a tooltip (step and value of every visible line), an optional log scale, and
 * redraws when its container changes width. data-state on the container is "loading", "ready" or
 * "error", so tests and people can tell an empty chart from an unfinished one.
 */
(function () {
  "use strict";

  // An XML namespace name (an identifier, never fetched): SVG elements must be created in it.
  var SVG_NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
                 "#0891b2", "#db2777", "#65a30d", "#4f46e5", "#a16207"];
  var HEIGHT = 260;
  var M = { top: 14, right: 18, bottom: 36, left: 64 };

  function el(tag, attrs, parent) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attrs) node.setAttribute(name, String(attrs[name]));
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, className, parent, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  /* Numbers people can read on an axis: 1, 2 or 5 times a power of ten. */
  function niceStep(span, count) {
    var raw = span / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  }

  function linearTicks(lo, hi, count, integer) {
    var step = niceStep(hi - lo, count);
    if (integer) step = Math.max(1, Math.round(step));
    var ticks = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      ticks.push(Number(v.toPrecision(12)));
    }
    return ticks;
  }

  /* Powers of ten; with 2x and 5x when the range is short; every integer multiple when it is shorter. */
  function logTicks(lo, hi) {
    var decades = Math.log10(hi / lo);
    var multiples = decades > 3 ? [1] : decades > 1 ? [1, 2, 5] : [1, 2, 3, 4, 5, 6, 7, 8, 9];
    var ticks = [];
    for (var e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      multiples.forEach(function (m) {
        var v = Number((m * Math.pow(10, e)).toPrecision(12));
        if (v >= lo && v <= hi) ticks.push(v);
      });
    }
    return ticks;
  }

  function fmt(v) {
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e6 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, "e");
    return String(Number(v.toPrecision(4)));
  }

  function fmtValue(v) {
    return String(Number(v.toPrecision(6)));
  }

  /* Index of the point whose step is closest to `step` (points are sorted by step). */
  function nearest(points, step) {
    var lo = 0, hi = points.length - 1;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (points[mid].step < step) lo = mid + 1; else hi = mid;
    }
    if (lo > 0 && Math.abs(points[lo - 1].step - step) <= Math.abs(points[lo].step - step)) lo -= 1;
    return lo;
  }

  /* More points than pixels: keep the extremes of each pixel column so spikes stay visible. */
  function decimate(points, sx, width) {
    if (points.length <= width * 2) return points;
    var out = [], column = null, lo = null, hi = null;
    function flush() {
      if (!lo) return;
      if (lo === hi) out.push(lo);
      else if (lo.step <= hi.step) out.push(lo, hi);
      else out.push(hi, lo);
    }
    points.forEach(function (p) {
      var c = Math.round(sx(p.step));
      if (c !== column) { flush(); column = c; lo = hi = p; return; }
      if (p.value < lo.value) lo = p;
      if (p.value > hi.value) hi = p;
    });
    flush();
    return out;
  }

  function createChart(root, series) {
    var state = { log: false };
    root.textContent = "";
    var toolbar = html("div", "chart-toolbar", root);
    var plot = html("div", "chart-plot", root);
    var svg = el("svg", { role: "img", "aria-label": "line chart of " + (root.dataset.key || "a metric") }, plot);
    var tooltip = html("div", "chart-tooltip", plot);
    tooltip.dataset.testid = "chart-tooltip";
    tooltip.hidden = true;
    var legend = html("div", "chart-legend", root);

    var logLabel = html("label", "chart-log", toolbar);
    var logBox = html("input", "", logLabel);
    logBox.type = "checkbox";
    logBox.dataset.testid = "chart-log";
    logLabel.appendChild(document.createTextNode(" log scale"));
    logBox.addEventListener("change", function () { state.log = logBox.checked; draw(); });
    function checkLog() {
      var positive = series.every(function (s) {
        return s.points.every(function (p) { return p.value > 0; });
      });
      logBox.disabled = !positive;
      logLabel.title = positive ? "" : "log scale needs values above zero";
      if (!positive) logBox.checked = state.log = false;
    }
    checkLog();

    series.forEach(function (s) {
      s.visible = true;
      var item = html("button", "legend-item", legend);
      item.type = "button";
      item.dataset.testid = "legend-item";
      item.dataset.series = s.label;
      item.setAttribute("aria-pressed", "true");
      item.title = "show or hide " + s.label;
      var swatch = html("span", "legend-swatch", item);
      swatch.style.background = s.color;
      html("span", "legend-label", item, s.label);
      item.addEventListener("click", function () {
        s.visible = !s.visible;
        item.setAttribute("aria-pressed", String(s.visible));
        draw();
      });
    });

    var hover = null; // the mouse x inside the plot, or null

    function draw() {
      var width = Math.max(240, Math.floor(plot.clientWidth || 600));
      var iw = width - M.left - M.right, ih = HEIGHT - M.top - M.bottom;
      svg.setAttribute("width", width);
      svg.setAttribute("height", HEIGHT);
      svg.setAttribute("viewBox", "0 0 " + width + " " + HEIGHT);
      while (svg.firstChild) svg.removeChild(svg.firstChild);

      var shown = series.filter(function (s) { return s.visible && s.points.length; });
      var basis = shown.length ? shown : series.filter(function (s) { return s.points.length; });
      var xs = [], ys = [];
      basis.forEach(function (s) {
        xs.push(s.points[0].step, s.points[s.points.length - 1].step);
        s.points.forEach(function (p) { ys.push(p.value); });
      });
      if (!xs.length) { xs = [0, 1]; ys = [0, 1]; }
      var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
      if (x0 === x1) { x0 -= 1; x1 += 1; }
      var y0 = ys.reduce(function (a, b) { return Math.min(a, b); }, Infinity);
      var y1 = ys.reduce(function (a, b) { return Math.max(a, b); }, -Infinity);
      var t = state.log ? Math.log10 : function (v) { return v; };
      var yticks;
      if (state.log) {
        if (y0 === y1) { y0 /= 2; y1 *= 2; }
        y0 = Math.pow(10, Math.floor(Math.log10(y0) * 4) / 4);
        y1 = Math.pow(10, Math.ceil(Math.log10(y1) * 4) / 4);
        yticks = logTicks(y0, y1);
      } else {
        if (y0 === y1) { var pad = Math.abs(y0) * 0.1 || 1; y0 -= pad; y1 += pad; }
        var step = niceStep(y1 - y0, 5);
        y0 = Math.floor(y0 / step) * step;
        y1 = Math.ceil(y1 / step) * step;
        yticks = linearTicks(y0, y1, 5, false);
      }
      function sx(step) { return M.left + (step - x0) / (x1 - x0) * iw; }
      function sy(v) { return M.top + ih - (t(v) - t(y0)) / (t(y1) - t(y0)) * ih; }

      var axes = el("g", { class: "chart-axes" }, svg);
      yticks.forEach(function (v) {
        var y = sy(v).toFixed(1);
        el("line", { x1: M.left, x2: M.left + iw, y1: y, y2: y, class: "chart-grid" }, axes);
        el("text", { x: M.left - 8, y: y, dy: "0.32em", "text-anchor": "end" }, axes).textContent = fmt(v);
      });
      linearTicks(x0, x1, Math.max(2, Math.floor(iw / 90)), true).forEach(function (v) {
        var x = sx(v).toFixed(1);
        el("line", { x1: x, x2: x, y1: M.top + ih, y2: M.top + ih + 5, class: "chart-tick" }, axes);
        el("text", { x: x, y: M.top + ih + 18, "text-anchor": "middle" }, axes).textContent = fmt(v);
      });
      el("line", { x1: M.left, x2: M.left + iw, y1: M.top + ih, y2: M.top + ih, class: "chart-axis" }, axes);
      el("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + ih, class: "chart-axis" }, axes);
      el("text", { x: M.left + iw, y: HEIGHT - 4, "text-anchor": "end", class: "chart-axis-label" }, axes)
        .textContent = "step";

      var lines = el("g", { class: "chart-lines" }, svg);
      series.forEach(function (s) {
        var pts = decimate(s.points, sx, iw);
        var d = pts.map(function (p, i) {
          return (i ? "L" : "M") + sx(p.step).toFixed(1) + " " + sy(p.value).toFixed(1);
        }).join(" ");
        if (pts.length === 1) d += " h0.01"; // a lone point shows as a dot (round line caps)
        var path = el("path", {
          d: d, stroke: s.color, fill: "none", "stroke-width": 2, "stroke-linejoin": "round",
          "stroke-linecap": "round", "data-series": s.label, "data-points": s.points.length,
          class: "chart-line"
        }, lines);
        if (!s.visible) path.setAttribute("visibility", "hidden");
      });

      var cross = el("g", { class: "chart-cross", visibility: "hidden" }, svg);
      var crossLine = el("line", { y1: M.top, y2: M.top + ih }, cross);
      var dots = shown.map(function (s) {
        return el("circle", { r: 4, fill: s.color, stroke: "#fff", "stroke-width": 1.5 }, cross);
      });
      var overlay = el("rect", {
        x: M.left, y: M.top, width: iw, height: ih, fill: "transparent", "data-testid": "chart-overlay"
      }, svg);

      function show(mx) {
        if (!shown.length) return;
        var target = x0 + (mx - M.left) / iw * (x1 - x0);
        var step = null;
        shown.forEach(function (s) {
          var p = s.points[nearest(s.points, target)];
          if (step === null || Math.abs(p.step - target) < Math.abs(step - target)) step = p.step;
        });
        var x = sx(step);
        crossLine.setAttribute("x1", x);
        crossLine.setAttribute("x2", x);
        cross.setAttribute("visibility", "visible");
        tooltip.textContent = "";
        html("div", "tooltip-step", tooltip, "step " + step);
        shown.forEach(function (s, i) {
          var p = s.points[nearest(s.points, step)];
          dots[i].setAttribute("cx", sx(p.step));
          dots[i].setAttribute("cy", sy(p.value));
          var row = html("div", "tooltip-row", tooltip);
          html("span", "legend-swatch", row).style.background = s.color;
          html("span", "tooltip-label", row, s.label);
          html("span", "tooltip-value", row, fmtValue(p.value) + (p.step === step ? "" : " @" + p.step));
        });
        tooltip.hidden = false;
        var left = x + 14;
        if (left + tooltip.offsetWidth > width) left = Math.max(0, x - 14 - tooltip.offsetWidth);
        tooltip.style.left = left + "px";
        tooltip.style.top = M.top + "px";
      }
      function hide() {
        hover = null;
        cross.setAttribute("visibility", "hidden");
        tooltip.hidden = true;
      }
      overlay.addEventListener("pointermove", function (ev) {
        hover = ev.clientX - svg.getBoundingClientRect().left;
        show(hover);
      });
      overlay.addEventListener("pointerleave", hide);
      if (hover !== null) show(hover); else hide();
      lastWidth = width;
    }

    var lastWidth = 0, pending = false;
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        if (pending || Math.floor(plot.clientWidth) === lastWidth) return;
        pending = true;
        requestAnimationFrame(function () { pending = false; draw(); });
      }).observe(plot);
    }
    draw();
    return {
      /* New points for every series (same order): a running run's chart keeps up without a reload. */
      update: function (pointsList) {
        series.forEach(function (s, i) { s.points = pointsList[i]; });
        checkLog();
        draw();
      }
    };
  }

  function fetchSeries(run, key) {
    var url = "/api/v1/runs/" + encodeURIComponent(run.id) + "/metrics/" +
      key.split("/").map(encodeURIComponent).join("/");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            throw new Error((body && body.error && body.error.message) || "HTTP " + response.status);
          }
          return body.points;
        });
      });
  }

  /* data-refresh="<seconds>" (set while a run is running) re-fetches the series on that period. */
  function load(root) {
    var runs = JSON.parse(root.dataset.runs || "[]");
    var key = root.dataset.key;
    var refresh = Number(root.dataset.refresh || 0);
    function fetchAll() {
      return Promise.all(runs.map(function (run) { return fetchSeries(run, key); }));
    }
    root.dataset.state = "loading";
    fetchAll()
      .then(function (all) {
        var chart = createChart(root, runs.map(function (run, i) {
          return { label: run.label, color: PALETTE[(run.color || 0) % PALETTE.length], points: all[i] };
        }));
        root.dataset.state = "ready";
        if (refresh > 0) {
          setInterval(function () {
            if (!document.hidden) fetchAll().then(chart.update, function () { /* keep the last good data */ });
          }, refresh * 1000);
        }
      })
      .catch(function (err) {
        root.dataset.state = "error";
        root.textContent = "";
        html("p", "chart-error", root, "Could not load " + key + ": " + err.message);
      });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
