/* imggate-report.html behaviour: sorting and filtering of findings tables.
   Progressive enhancement only: without this script every row is shown.
   The URL fragment can preset the view: #sev=Critical,High&q=openssl&sort=cvss:desc */
(function () {
  "use strict";

  function readFragment() {
    var out = {};
    var text = window.location.hash.replace(/^#/, "");
    if (text.indexOf("=") < 0) { return out; }
    text.split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) {
        try { out[part.slice(0, i)] = decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignore */ }
      }
    });
    return out;
  }

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    if (numeric) {
      var n = parseFloat(raw);
      return isNaN(n) ? -Infinity : n;
    }
    return raw.trim().toLowerCase();
  }

  function setup(box, preset) {
    var table = box.querySelector("table");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
    var filters = box.querySelector(".filters");
    var boxes = Array.prototype.slice.call(filters.querySelectorAll("input[type=checkbox]"));
    var search = filters.querySelector("input[type=search]");
    var shown = filters.querySelector(".shown");
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

    function apply() {
      var allowed = {};
      boxes.forEach(function (b) { if (b.checked) { allowed[b.value] = true; } });
      var q = search.value.trim().toLowerCase();
      var visible = 0;
      rows.forEach(function (row, i) {
        var ok = allowed[row.getAttribute("data-sev")] === true && (q === "" || texts[i].indexOf(q) >= 0);
        row.hidden = !ok;
        if (ok) { visible += 1; }
      });
      shown.textContent = "showing " + visible + " of " + rows.length;
      box.setAttribute("data-visible", String(visible));
    }

    function sortBy(th, direction) {
      var index = headers.indexOf(th);
      var numeric = th.getAttribute("data-type") === "number";
      var sign = direction === "ascending" ? 1 : -1;
      var order = rows.map(function (row, i) { return { row: row, i: i, v: cellValue(row, index, numeric) }; });
      order.sort(function (a, b) {
        if (a.v < b.v) { return -sign; }
        if (a.v > b.v) { return sign; }
        return a.i - b.i;  /* stable: ties keep the report's order (worst first) */
      });
      var frag = document.createDocumentFragment();
      order.forEach(function (o) { frag.appendChild(o.row); });
      body.appendChild(frag);
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", direction);
      box.setAttribute("data-sorted", th.getAttribute("data-key") + ":" + direction);
    }

    headers.forEach(function (th) {
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.title = "Sort by " + th.textContent.trim();
      function toggle() {
        var numeric = th.getAttribute("data-type") === "number";
        var current = th.getAttribute("aria-sort");
        var next = current ? (current === "ascending" ? "descending" : "ascending")
                           : (numeric ? "descending" : "ascending");
        sortBy(th, next);
      }
      th.addEventListener("click", toggle);
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); }
      });
    });
    boxes.forEach(function (b) { b.addEventListener("change", apply); });
    search.addEventListener("input", apply);

    if (preset.sev) {
      var wanted = {};
      preset.sev.split(",").forEach(function (s) { wanted[s.trim().toLowerCase()] = true; });
      boxes.forEach(function (b) { b.checked = wanted[b.value.toLowerCase()] === true; });
    }
    if (preset.q) { search.value = preset.q; }
    if (preset.sort) {
      var spec = preset.sort.split(":");
      var th = headers.filter(function (h) { return h.getAttribute("data-key") === spec[0]; })[0];
      if (th) { sortBy(th, spec[1] === "asc" ? "ascending" : "descending"); }
    }
    filters.hidden = false;
    apply();
  }

  var preset = readFragment();
  Array.prototype.forEach.call(document.querySelectorAll("[data-findings]"), function (box) {
    setup(box, preset);
  });
  document.body.setAttribute("data-js", "ready");
})();
