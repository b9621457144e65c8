// normspec's HTML report: filters by backend, norm and status. A filter can come from the
// URL's hash (index.html#status=failed&backend=numpy), so a link carries a view, and
// `chromium --dump-dom` of such a URL shows which rows it hides.
"use strict";
(function () {
  const names = ["backend", "norm", "status"];
  const selects = {};
  names.forEach((name) => { selects[name] = document.getElementById("filter-" + name); });

  function matches(element, wanted) {
    const backends = (element.dataset.backends || "").split(" ");
    if (wanted.backend && element.dataset.backends !== undefined && !backends.includes(wanted.backend)) return false;
    if (wanted.norm && element.dataset.norm !== undefined && element.dataset.norm !== wanted.norm) return false;
    if (wanted.status && element.dataset.status !== undefined && element.dataset.status !== wanted.status) return false;
    return true;
  }

  function apply() {
    const wanted = {};
    names.forEach((name) => { wanted[name] = selects[name].value; });
    let shown = 0;
    document.querySelectorAll("tr.cell").forEach((row) => {
      row.hidden = !matches(row, wanted);
      if (!row.hidden) shown += 1;
    });
    document.getElementById("shown").textContent = String(shown);
    document.querySelectorAll(".grid").forEach((grid) => {
      grid.hidden = Boolean(wanted.norm) && grid.dataset.norm !== wanted.norm;
      grid.querySelectorAll("th[data-backends], td[data-backends]").forEach((cell) => {
        cell.hidden = Boolean(wanted.backend) && !cell.dataset.backends.split(" ").includes(wanted.backend);
      });
      grid.querySelectorAll("td[data-status]").forEach((cell) => {
        cell.classList.toggle("faded", Boolean(wanted.status) && cell.dataset.status !== wanted.status);
      });
    });
    document.querySelectorAll("#precision tbody tr, #bench tbody tr").forEach((row) => {
      row.hidden = !matches(row, { backend: wanted.backend, norm: wanted.norm, status: "" });
    });
    const hash = names.filter((n) => wanted[n]).map((n) => n + "=" + encodeURIComponent(wanted[n])).join("&");
    const current = location.hash.slice(1);
    const isView = names.some((n) => new URLSearchParams(current).has(n));
    if (hash ? hash !== current : isView) {
      history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    }
  }

  function fromHash() {
    const wanted = new URLSearchParams(location.hash.slice(1));
    if (!names.some((n) => wanted.has(n))) return false; // a link to a cell, not a view
    names.forEach((name) => {
      const value = wanted.get(name) || "";
      const select = selects[name];
      select.value = Array.from(select.options).some((o) => o.value === value) ? value : "";
    });
    return true;
  }

  names.forEach((name) => selects[name].addEventListener("change", apply));
  document.getElementById("filter-reset").addEventListener("click", () => {
    names.forEach((name) => { selects[name].value = ""; });
    apply();
  });
  window.addEventListener("hashchange", () => { if (fromHash()) apply(); });
  // a link to a cell opens its details
  document.querySelectorAll(".grid a").forEach((link) => link.addEventListener("click", () => {
    const row = document.getElementById(link.getAttribute("href").slice(1));
    if (row) { row.hidden = false; row.querySelector("details").open = true; }
  }));
  fromHash();
  apply();
  document.body.dataset.ready = "yes";
})();
