/* gfpcheck's HTML report: the filters and the count they leave.  Inlined into the page. */
(function () {
  "use strict";
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var findings = Array.prototype.slice.call(document.querySelectorAll(".finding"));

  function apply() {
    var wanted = selects.filter(function (s) { return s.value !== ""; });
    var shown = 0;
    findings.forEach(function (finding) {
      var keep = wanted.every(function (s) { return finding.getAttribute("data-" + s.dataset.filter) === s.value; });
      finding.hidden = !keep;
      if (keep) shown += 1;
    });
    /* A group shows how many of its findings the filters leave, and hides when none. */
    document.querySelectorAll(".subsystem, .cause").forEach(function (group) {
      var n = group.querySelectorAll(".finding:not([hidden])").length;
      group.hidden = n === 0;
      var badge = group.querySelector(":scope > h2 > .n, :scope > h3 > .n");
      if (badge) badge.textContent = String(n);
    });
    document.getElementById("count").textContent = String(shown);
    document.getElementById("none").hidden = shown !== 0;
  }

  function openAll(open) {
    findings.forEach(function (finding) { if (!finding.hidden) finding.open = open; });
  }

  selects.forEach(function (s) { s.addEventListener("change", apply); });
  document.getElementById("expand-all").addEventListener("click", function () { openAll(true); });
  document.getElementById("collapse-all").addEventListener("click", function () { openAll(false); });
  /* A link to #f3 opens that finding. */
  function follow() {
    var target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    if (target && target.classList.contains("finding")) target.open = true;
  }
  window.addEventListener("hashchange", follow);
  follow();
  apply();
})();
