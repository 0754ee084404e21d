// Sortable leaderboard table. Reads cell text and data-sort values only: it
// never builds HTML from data, so escaped team names stay text.
(function () {
  "use strict";
  var table = document.getElementById("board");
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;

  function key(row, col, numeric) {
    var cell = row.cells[col];
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    if (!numeric) { return raw.toLowerCase(); }
    var x = parseFloat(raw);
    return isNaN(x) ? -Infinity : x;
  }

  function sortBy(col, descending) {
    var numeric = heads[col].getAttribute("data-type") === "num";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var ka = key(a, col, numeric), kb = key(b, col, numeric);
      var order = ka < kb ? -1 : (ka > kb ? 1 : 0);
      return descending ? -order : order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    heads[col].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    var toggle = function () {
      sortBy(col, th.getAttribute("aria-sort") === "ascending");
    };
    th.addEventListener("click", toggle);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { toggle(); } });
  });

  // "#sort=3" or "#sort=3-desc" sorts on load (shareable views; used by the tests).
  var m = /^#sort=(\d+)(-desc)?$/.exec(window.location.hash);
  if (m && +m[1] < heads.length) { sortBy(+m[1], !!m[2]); }
  table.setAttribute("data-sortable", "ready");
})();
