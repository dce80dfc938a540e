"use strict";
// batchflux report: job cards (cards.js) from the embedded JSON, a page at a time.
(function () {
  const el = BF.el, card = BF.card;
  const dataEl = document.getElementById("jobs-data");
  const jobs = JSON.parse(dataEl.textContent || "[]");
  const pageSize = Math.max(1, parseInt(dataEl.getAttribute("data-page-size") || "200", 10));
  const grid = document.getElementById("grid");
  const search = document.getElementById("search");
  const count = document.getElementById("count");
  const empty = document.getElementById("empty");
  const chips = Array.from(document.querySelectorAll("#chips .chip"));
  const pagers = [document.getElementById("pager-top"), document.getElementById("pager-bottom")];
  const state = { status: "", query: "", page: 0 };
  let shown = jobs;

  function matches(job, status, q) {
    if (status && job.st !== status) return false;
    if (!q) return true;
    if (job._hay === undefined) job._hay = (job.id + "\n" + (job.p || "") + "\n" + (job.rid || "") + "\n" + (job.rn || "")).toLowerCase();
    return job._hay.includes(q);
  }

  function pageButton(label, page, disabled) {
    const b = el("button", "pg", label);
    b.type = "button";
    b.disabled = disabled;
    b.addEventListener("click", function () { state.page = page; render(true); });
    return b;
  }

  function renderPagers(pages) {
    for (const p of pagers) {
      p.replaceChildren();
      if (pages <= 1) continue;
      p.appendChild(pageButton("‹ prev", state.page - 1, state.page === 0));
      p.appendChild(el("span", "pginfo", "page " + (state.page + 1) + " of " + pages));
      p.appendChild(pageButton("next ›", state.page + 1, state.page >= pages - 1));
    }
  }

  function render(scroll) {
    const pages = Math.max(1, Math.ceil(shown.length / pageSize));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * pageSize;
    const slice = shown.slice(start, start + pageSize);
    const frag = document.createDocumentFragment();
    for (const job of slice) frag.appendChild(card(job));
    grid.replaceChildren(frag);
    empty.hidden = shown.length > 0;
    count.textContent = shown.length === jobs.length
      ? jobs.length + " jobs"
      : shown.length + " of " + jobs.length + " jobs";
    if (shown.length > pageSize) {
      count.textContent += " · showing " + (start + 1) + "–" + (start + slice.length);
    }
    renderPagers(pages);
    if (scroll) grid.scrollIntoView({ block: "start" });
  }

  function apply() {
    const q = state.query.trim().toLowerCase();
    shown = state.status || q ? jobs.filter(function (j) { return matches(j, state.status, q); }) : jobs;
    state.page = 0;
    render(false);
  }

  for (const chip of chips) {
    chip.addEventListener("click", function () {
      const value = chip.getAttribute("data-status") || "";
      state.status = state.status === value ? "" : value;
      for (const c of chips) {
        c.setAttribute("aria-pressed", String((c.getAttribute("data-status") || "") === state.status));
      }
      apply();
    });
  }

  // Small reports filter on every keystroke; large ones wait for a pause in typing.
  let timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    if (jobs.length <= 2000) { state.query = search.value; apply(); return; }
    timer = setTimeout(function () { state.query = search.value; apply(); }, 150);
  });

  // Lightbox: a click on a thumbnail shows the job's before and after at full size, side by side.
  // Esc, the close button or a click outside the images closes it.
  const byKey = new Map(jobs.map(function (j) { return [j.k, j]; }));
  const box = BF.lightbox();
  grid.addEventListener("click", function (ev) {
    const a = ev.target.closest ? ev.target.closest("a[data-lightbox]") : null;
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    const job = byKey.get(a.closest(".card").getAttribute("data-key"));
    if (!job) return;
    ev.preventDefault();
    box.open(job);
  });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && box.isOpen()) box.close(); });

  if (search.value) state.query = search.value;
  apply();
})();
