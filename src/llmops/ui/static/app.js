/* llmops page behaviour that is not charts.
 *
 * Run selection for comparison: the runs table is a plain GET form (checkboxes named "ids"), so it
 * works without JavaScript; with it, the button is enabled only when two or more runs are selected and
 * the form goes to /runs/compare?ids=a,b, the short URL people paste into chats.
 *
 * Lineage graphs: a graph wider than its box scrolls sideways; it opens scrolled to the version the
 * page is about (on a phone the whole graph does not fit).
 */
(function () {
  "use strict";

  function initCompare(form) {
    var button = form.querySelector("[data-compare-button]");
    var boxes = form.querySelectorAll("input[name=ids]");
    var all = form.querySelector("[data-select-all]");

    function selected() {
      return Array.prototype.filter.call(boxes, function (b) { return b.checked; })
        .map(function (b) { return b.value; });
    }
    function update() {
      var n = selected().length;
      button.disabled = n < 2;
      button.textContent = n ? "Compare selected (" + n + ")" : "Compare selected";
      if (all) all.checked = n > 0 && n === boxes.length;
    }
    Array.prototype.forEach.call(boxes, function (b) { b.addEventListener("change", update); });
    if (all) {
      all.addEventListener("change", function () {
        Array.prototype.forEach.call(boxes, function (b) { b.checked = all.checked; });
        update();
      });
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var ids = selected();
      if (ids.length >= 2) window.location.assign(form.action + "?ids=" + ids.map(encodeURIComponent).join(","));
    });
    update();
  }

  function centerGraph(wrap) {
    var current = wrap.querySelector(".node-current rect");
    if (!current || wrap.scrollWidth <= wrap.clientWidth) return;
    var box = current.getBoundingClientRect();
    var outer = wrap.getBoundingClientRect();
    wrap.scrollLeft += box.left + box.width / 2 - (outer.left + outer.width / 2);
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-compare-form]"), initCompare);
    Array.prototype.forEach.call(document.querySelectorAll("[data-graph-wrap]"), centerGraph);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

/* Live sections: an element with data-live-src is filled from that URL (an HTML fragment rendered by the
 * server) at once and then every data-live-seconds seconds while the page is visible. */
(function () {
  "use strict";

  function refresh(el) {
    if (document.hidden) return;
    fetch(el.getAttribute("data-live-src"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) el.innerHTML = html; })
      .catch(function () { /* keep what is shown; the next tick retries */ });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-src]"), function (el) {
      var seconds = parseFloat(el.getAttribute("data-live-seconds") || "15");
      if (!el.hasAttribute("data-live-loaded")) refresh(el);
      setInterval(function () { refresh(el); }, Math.max(2, seconds) * 1000);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
