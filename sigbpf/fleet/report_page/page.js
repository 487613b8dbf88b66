/* sigbpf fleet check report: draws the matrix from the embedded JSON (inlined by render_html.py).
 *
 * Kernels whose visible verdicts agree share one row (expandable to one row per
 * kernel), so a thousand kernels x fifty checks stay a few rows until asked.
 * The filters live in the URL fragment, so a view can be linked and a test can
 * open one:  #failing&kind=core&check=task&prefix=6.1&expand=all&cell=K:C&kernel=K
 * (K, C: indices into the JSON's "kernels" and "checks").
 */
(function () {
  "use strict";
  var R = JSON.parse(document.getElementById("report-data").textContent);
  var C = JSON.parse(document.getElementById("page-config").textContent);
  var NONE = -1, WARN = C.verdicts.indexOf("warn"), FAIL = C.verdicts.indexOf("fail");
  var UNREADABLE = C.verdicts.indexOf("unreadable");
  var PAGE = 200;  // member rows drawn per click on a large group

  var rank = {};
  C.verdicts.forEach(function (v, i) { rank[v] = i; });
  var kindRank = {};
  C.kinds.forEach(function (k, i) { kindRank[k] = i; });

  var checkIndex = new Map();
  R.checks.forEach(function (c, i) { checkIndex.set(c.key, i); });
  var columns = R.checks.map(function (c, i) { return i; }).sort(function (a, b) {
    return (kindRank[R.checks[a].kind] - kindRank[R.checks[b].kind]) || (a - b);
  });

  // Per kernel: one verdict rank per check (NONE: no answer), the cell for each check.
  var kernels = R.kernels.map(function (k, i) {
    var n = R.checks.length;
    var v = new Int8Array(n).fill(k.error !== null ? UNREADABLE : NONE);
    var cells = new Array(n);
    k.cells.forEach(function (cell) {
      var ci = checkIndex.get(cell.check);
      if (ci !== undefined) { v[ci] = rank[cell.verdict]; cells[ci] = cell; }
    });
    return { index: i, data: k, v: v, cells: cells, rank: rank[k.verdict] };
  });
  var ordered = C.order.map(function (i) { return kernels[i]; });
  var position = new Int32Array(kernels.length);
  ordered.forEach(function (k, p) { position[k.index] = p; });

  function emptyState() {
    return { failing: false, kind: "", check: "", prefix: "", expandAll: false, cell: null, kernel: null };
  }
  var state = emptyState();
  var expanded = new Map();  // group signature -> member rows shown
  var view = { cols: [], groups: [] };

  var $ = function (id) { return document.getElementById(id); };
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  function label(r) { return r === NONE ? "none" : C.verdicts[r]; }
  function glyph(r) { return r === NONE ? C.noAnswer : C.glyphs[C.verdicts[r]]; }

  // ---- the URL fragment <-> state ----
  function readHash() {
    var s = emptyState();
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("="), key = eq < 0 ? part : part.slice(0, eq);
      var val = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
      if (key === "failing") s.failing = val !== "0";
      else if (key === "kind") s.kind = val;
      else if (key === "check") s.check = val;
      else if (key === "prefix") s.prefix = val;
      else if (key === "expand") s.expandAll = val === "all" || val === "";
      else if (key === "cell") {
        var m = /^(\d+):(\d+)$/.exec(val);
        if (m) s.cell = [+m[1], +m[2]];
      } else if (key === "kernel" && /^\d+$/.test(val)) s.kernel = +val;
    });
    return s;
  }
  function writeHash() {
    var parts = [];
    if (state.failing) parts.push("failing");
    if (state.kind) parts.push("kind=" + encodeURIComponent(state.kind));
    if (state.check) parts.push("check=" + encodeURIComponent(state.check));
    if (state.prefix) parts.push("prefix=" + encodeURIComponent(state.prefix));
    if (state.expandAll) parts.push("expand=all");
    if (state.cell) parts.push("cell=" + state.cell[0] + ":" + state.cell[1]);
    else if (state.kernel !== null) parts.push("kernel=" + state.kernel);
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash) {
      try { history.replaceState(null, "", hash || location.pathname + location.search); } catch (e) { /* file: quirks */ }
    }
  }
  function syncControls() {
    $("f-failing").checked = state.failing;
    $("f-kind").value = state.kind;
    $("f-check").value = state.check;
    $("f-prefix").value = state.prefix;
    $("f-expand").textContent = state.expandAll ? "collapse all" : "expand all";
  }

  // ---- what is shown: columns, kernels, groups ----
  function computeView() {
    var needle = state.check.toLowerCase();
    var cols = columns.filter(function (ci) {
      var c = R.checks[ci];
      return (!state.kind || c.kind === state.kind) && (!needle || c.key.toLowerCase().indexOf(needle) >= 0);
    });
    var groups = new Map();
    ordered.forEach(function (k) {
      if (state.prefix && k.data.name.indexOf(state.prefix) !== 0) return;
      var worst = k.data.error !== null ? UNREADABLE : NONE, sig = k.data.error !== null ? "u" : "r";
      for (var j = 0; j < cols.length; j++) {
        var r = k.v[cols[j]];
        if (r > worst) worst = r;
        sig += String.fromCharCode(66 + r);
      }
      if (state.failing && worst < FAIL) return;
      var g = groups.get(sig);
      if (!g) { g = { sig: sig, worst: worst, members: [] }; groups.set(sig, g); }
      g.members.push(k);
    });
    var list = Array.from(groups.values());
    list.sort(function (a, b) {
      return (b.worst - a.worst) || (b.members.length - a.members.length) ||
             (position[a.members[0].index] - position[b.members[0].index]);
    });
    view = { cols: cols, groups: list };
  }

  // ---- drawing ----
  function drawHead() {
    var cols = view.cols;
    var row1 = '<tr><th class="corner" rowspan="2">kernels</th>', row2 = "<tr>";
    for (var j = 0; j < cols.length;) {
      var kind = R.checks[cols[j]].kind, span = 0;
      while (j + span < cols.length && R.checks[cols[j + span]].kind === kind) span++;
      var short = C.kindShort[kind] || kind;  // a kind too narrow for its name gets it written downwards
      row1 += '<th class="kind' + (span * 2.5 < short.length ? " narrow" : "") + '" colspan="' + span + '" title="' +
              esc(kind) + '"><div>' + esc(short) + "</div></th>";
      for (var s = 0; s < span; s++) {
        var c = R.checks[cols[j + s]];
        row2 += '<th class="col' + (s === 0 ? " first" : "") + '" data-c="' + cols[j + s] + '" title="' +
                esc(c.key + (c.detail ? " — " + c.detail : "")) + '"><div>' + esc(c.name) + "</div></th>";
      }
      j += span;
    }
    var head = $("matrix").tHead;
    head.innerHTML = row1 + "</tr>" + row2 + "</tr>";
    var top = head.rows[0].getBoundingClientRect().height;  // the column names stick below the kinds
    Array.prototype.forEach.call(head.rows[1].cells, function (th) { th.style.top = top + "px"; });
  }
  function cellsHtml(v) {
    var cols = view.cols, out = "", prevKind = null;
    for (var j = 0; j < cols.length; j++) {
      var ci = cols[j], r = v[ci], kind = R.checks[ci].kind;
      out += '<td class="cell v-' + label(r) + (kind !== prevKind ? " first" : "") + '" data-c="' + ci + '">' + glyph(r) + "</td>";
      prevKind = kind;
    }
    return out;
  }
  function kernelRow(k, member) {
    var d = k.data;
    return '<tr class="kernel' + (member ? " member" : "") + '" data-k="' + k.index + '"><th class="rowhead" title="' +
           esc(d.source + (d.error !== null ? " — " + d.error : "")) + '">' + esc(d.name) + "</th>" + cellsHtml(k.v) + "</tr>";
  }
  function namesSummary(members) {
    var shown = members.slice(0, 3).map(function (k) { return k.data.name; }).join(", ");
    return members.length > 3 ? shown + ", … (+" + (members.length - 3) + ")" : shown;
  }
  function drawBody() {
    var html = "", kernelsShown = 0;
    view.groups.forEach(function (g, gi) {
      kernelsShown += g.members.length;
      if (g.members.length === 1) { html += kernelRow(g.members[0], false); return; }
      var open = state.expandAll ? g.members.length : (expanded.get(g.sig) || 0);
      html += '<tr class="group" data-g="' + gi + '" data-kernels="' +
              g.members.map(function (k) { return k.index; }).join(" ") + '"><th class="rowhead">' +
              '<button type="button" class="toggle" aria-expanded="' + (open > 0) + '">' + (open > 0 ? "▾" : "▸") + "</button>" +
              g.members.length + " kernels<span class=\"names\">" + esc(namesSummary(g.members)) + "</span></th>" +
              cellsHtml(g.members[0].v) + "</tr>";
      for (var i = 0; i < Math.min(open, g.members.length); i++) html += kernelRow(g.members[i], true);
      if (open > 0 && open < g.members.length) {
        var next = Math.min(PAGE, g.members.length - open);
        html += '<tr class="more" data-g="' + gi + '"><td colspan="' + (view.cols.length + 1) + '">' +
                '<button type="button" class="more">show ' + next + " more of " + (g.members.length - open) + "</button></td></tr>";
      }
    });
    if (!view.groups.length) {
      html = '<tr class="empty"><td colspan="' + (view.cols.length + 1) + '">No kernel matches these filters.</td></tr>';
    }
    $("matrix").tBodies[0].innerHTML = html;
    $("shown").textContent = "showing " + kernelsShown + " of " + R.kernels.length + " kernels in " +
        view.groups.length + " rows, " + view.cols.length + " of " + R.checks.length + " checks";
  }
  function draw() {
    computeView();
    drawHead();
    drawBody();
    markSelected();
  }

  // ---- details ----
  function dl(pairs) {
    var out = "<dl>";
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined || p[1] === "") return;
      out += "<dt>" + esc(p[0]) + "</dt><dd>" + (p[2] ? p[1] : esc(p[1])) + "</dd>";
    });
    return out + "</dl>";
  }
  function badge(r) { return '<span class="badge v-' + label(r) + '">' + esc(r === NONE ? "not answered" : C.meaning[C.verdicts[r]]) + "</span>"; }
  function nativeProgBtf(d) { return d.native_prog_btf === null ? "unknown (not from BTF alone)" : d.native_prog_btf ? "yes" : "no"; }
  function also(cell) { return (cell.also || []).join(", "); }  // milder findings on the same check
  function reason(cell) {
    return cell.code + (also(cell) ? " (also " + also(cell) + ")" : "") + (cell.detail ? ": " + cell.detail : "");
  }
  function checkPairs(c) {
    return [["check", c.key], ["kind", c.kind], ["name", c.name], ["used by", c.detail]];
  }
  function showCell(ki, ci) {
    var k = kernels[ki], c = R.checks[ci];
    if (!k || !c) return;
    var cell = k.cells[ci], r = k.v[ci], d = k.data;
    var html = "<h2>" + esc(d.name) + " × " + esc(c.key) + "</h2>" + dl([["verdict", badge(r), true]]);
    if (d.error !== null) html += dl([["could not read", d.error]]);
    else if (cell) html += dl([["code", cell.code], ["also", also(cell)], ["detail", cell.detail],
                               ["value", cell.value === null ? null : String(cell.value)]]);
    else html += '<p class="hint">This kernel has no answer for this check.</p>';
    html += "<h3>check</h3>" + dl(checkPairs(c));
    html += "<h3>kernel</h3>" + dl([["name", d.name], ["source", d.source], ["digest", d.digest],
                                    ["native PROG_BTF", nativeProgBtf(d)], ["verdict", badge(k.rank), true]]);
    $("details").innerHTML = html;
    state.cell = [ki, ci]; state.kernel = null;
  }
  function showKernel(ki) {
    var k = kernels[ki];
    if (!k) return;
    var d = k.data;
    var html = "<h2>" + esc(d.name) + "</h2>" + dl([["verdict", badge(k.rank), true], ["source", d.source],
        ["digest", d.digest], ["native PROG_BTF", nativeProgBtf(d)], ["could not read", d.error]]);
    if (d.error === null) {
      var items = "";
      columns.forEach(function (ci) {
        if (k.v[ci] === rank.ok) return;
        var cell = k.cells[ci];
        items += "<li>" + badge(k.v[ci]) + " <b>" + esc(R.checks[ci].key) + "</b>" +
                 (cell ? " " + esc(reason(cell)) : "") + "</li>";
      });
      html += "<h3>answers that are not ok</h3>" + (items ? "<ul>" + items + "</ul>" : '<p class="hint">none: every check is ok.</p>');
    }
    $("details").innerHTML = html;
    state.kernel = ki; state.cell = null;
  }
  function showGroupCell(g, ci) {
    var c = R.checks[ci], r = g.members[0].v[ci];
    var reasons = new Map();
    g.members.forEach(function (k) {
      var cell = k.cells[ci];
      var key = k.data.error !== null ? "could not read: " + k.data.error
              : cell ? reason(cell) : "not answered";
      if (!reasons.has(key)) reasons.set(key, []);
      reasons.get(key).push(k.data.name);
    });
    var items = "";
    reasons.forEach(function (names, text) {
      items += "<li>" + esc(text) + ' <span class="names">(' + names.length + ": " +
               esc(names.slice(0, 12).join(", ") + (names.length > 12 ? ", …" : "")) + ")</span></li>";
    });
    $("details").innerHTML = "<h2>" + g.members.length + " kernels × " + esc(c.key) + "</h2>" +
        dl([["verdict", badge(r), true]]) + "<h3>reasons</h3><ul>" + items + "</ul><h3>check</h3>" + dl(checkPairs(c));
    state.cell = null; state.kernel = null;
  }
  function markSelected() {
    var old = document.querySelectorAll("td.cell.selected");
    for (var i = 0; i < old.length; i++) old[i].classList.remove("selected");
    if (!state.cell) return;
    var td = document.querySelector('tr.kernel[data-k="' + state.cell[0] + '"] td[data-c="' + state.cell[1] + '"]');
    if (td) td.classList.add("selected");
  }

  // ---- events ----
  $("matrix").tBodies[0].addEventListener("click", function (ev) {
    var t = ev.target, tr = t.closest("tr");
    if (!tr) return;
    if (t.closest("button.toggle")) {
      var g = view.groups[+tr.dataset.g];
      expanded.set(g.sig, expanded.get(g.sig) ? 0 : Math.min(PAGE, g.members.length));
      drawBody(); markSelected(); return;
    }
    if (t.closest("button.more")) {
      var gm = view.groups[+tr.dataset.g];
      expanded.set(gm.sig, (expanded.get(gm.sig) || 0) + PAGE);
      drawBody(); markSelected(); return;
    }
    var td = t.closest("td.cell");
    if (td && tr.classList.contains("kernel")) showCell(+tr.dataset.k, +td.dataset.c);
    else if (td && tr.classList.contains("group")) showGroupCell(view.groups[+tr.dataset.g], +td.dataset.c);
    else if (t.closest("th.rowhead") && tr.classList.contains("kernel")) showKernel(+tr.dataset.k);
    else return;
    markSelected(); writeHash();
  });
  function onFilter() {
    state.failing = $("f-failing").checked;
    state.kind = $("f-kind").value;
    state.check = $("f-check").value.trim();
    state.prefix = $("f-prefix").value.trim();
    draw(); writeHash();
  }
  ["f-failing", "f-kind"].forEach(function (id) { $(id).addEventListener("change", onFilter); });
  ["f-check", "f-prefix"].forEach(function (id) { $(id).addEventListener("input", onFilter); });
  $("f-expand").addEventListener("click", function () {
    state.expandAll = !state.expandAll;
    if (!state.expandAll) expanded.clear();
    syncControls(); drawBody(); markSelected(); writeHash();
  });
  $("f-reset").addEventListener("click", function () {
    state = emptyState();
    expanded.clear(); syncControls(); draw(); writeHash();
    $("details").innerHTML = '<p class="hint">Click a cell for its details, a kernel\'s name for all its answers.</p>';
  });
  function reveal(ki) {  // open the group that holds kernel ki far enough to show its row
    view.groups.forEach(function (g) {
      var at = g.members.findIndex(function (k) { return k.index === ki; });
      if (at >= 0 && g.members.length > 1 && (expanded.get(g.sig) || 0) <= at) {
        expanded.set(g.sig, Math.min(g.members.length, (Math.floor(at / PAGE) + 1) * PAGE));
      }
    });
  }
  function fromHash() {
    state = readHash();
    syncControls(); computeView();
    if (state.cell) reveal(state.cell[0]);
    else if (state.kernel !== null) reveal(state.kernel);
    drawHead(); drawBody();
    if (state.cell) showCell(state.cell[0], state.cell[1]);
    else if (state.kernel !== null) showKernel(state.kernel);
    markSelected();
  }
  window.addEventListener("hashchange", fromHash);

  // ---- once: the kind filter's options, the legend ----
  var kindsPresent = C.kinds.filter(function (k) { return R.checks.some(function (c) { return c.kind === k; }); });
  $("f-kind").insertAdjacentHTML("beforeend", kindsPresent.map(function (k) {
    return '<option value="' + esc(k) + '">' + esc(k) + "</option>";
  }).join(""));
  $("legend").innerHTML = "legend:" + C.verdicts.map(function (v, i) {
    return '<span class="chip v-' + v + '">' + esc(glyph(i)) + "</span>" + esc(C.meaning[v]);
  }).join("") + '<span class="chip v-none">' + esc(C.noAnswer) + "</span>not answered";
  fromHash();
  document.body.setAttribute("data-ready", "1");
})();
