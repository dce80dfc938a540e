"use strict";
// batchflux review: the report's cards (cards.js), one selected, verdicts by key, saved at once.
// Every request carries the session's token; verdicts go out as JSON, and come back from other
// tabs and reviewers through a light poll of the server's verdict list.
(function () {
  const el = BF.el;
  const dataEl = document.getElementById("jobs-data");
  const token = dataEl.getAttribute("data-token") || "";
  let version = parseInt(dataEl.getAttribute("data-version") || "0", 10);
  const jobs = JSON.parse(dataEl.textContent || "[]");
  const byKey = new Map(jobs.map(function (j) { return [j.k, j]; }));
  const PAGE = 200;
  const grid = document.getElementById("grid");
  const search = document.getElementById("search");
  const count = document.getElementById("count");
  const empty = document.getElementById("empty");
  const chips = Array.from(document.querySelectorAll("#filters .chip"));
  const pagers = [document.getElementById("pager-top"), document.getElementById("pager-bottom")];
  const help = document.getElementById("help");
  const stale = document.getElementById("stale");
  const problem = document.getElementById("problem");
  const state = { filter: "all", query: "", page: 0, sel: 0 };
  const pending = new Map(); // job key -> saves under way (the poll leaves those cards alone)
  let shown = jobs;
  let editing = null; // the job whose note is being written

  function api(path) {
    return "./api/" + path + (path.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(token);
  }

  function kind(job) {
    if (job.st === "failed" || job.st === "expired") return "failed";
    if (job.st !== "done") return "other";
    return job.rv || "unreviewed";
  }

  function matches(job, q) {
    if (state.filter !== "all" && kind(job) !== state.filter) return false;
    if (!q) return true;
    const hay = (job.id + "\n" + (job.p || "") + "\n" + (job.rid || "") + "\n" + (job.rn || "")).toLowerCase();
    return hay.includes(q);
  }

  function cardEl(job) {
    return grid.querySelector('.card[data-key="' + CSS.escape(job.k) + '"]');
  }

  function counts() {
    const c = { all: jobs.length, unreviewed: 0, approved: 0, rejected: 0, failed: 0 };
    for (const j of jobs) { const k = kind(j); if (k in c) c[k] += 1; }
    for (const span of document.querySelectorAll("[data-count]")) {
      span.textContent = String(c[span.getAttribute("data-count")] || 0);
    }
  }

  function pageButton(label, page, disabled) {
    const b = el("button", "pg", label);
    b.type = "button";
    b.disabled = disabled;
    b.addEventListener("click", function () { select(page * PAGE); });
    return b;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * PAGE;
    const frag = document.createDocumentFragment();
    for (const job of shown.slice(start, start + PAGE)) {
      const art = BF.card(job);
      art.setAttribute("aria-selected", "false");
      frag.appendChild(art);
    }
    grid.replaceChildren(frag);
    editing = null;
    empty.hidden = shown.length > 0;
    count.textContent = shown.length === jobs.length ? jobs.length + " jobs" : shown.length + " of " + jobs.length + " jobs";
    for (const p of pagers) {
      p.replaceChildren();
      if (pages <= 1) continue;
      p.appendChild(pageButton("‹ prev", state.page - 1, state.page === 0));
      p.appendChild(el("span", "pginfo", "page " + (state.page + 1) + " of " + pages));
      p.appendChild(pageButton("next ›", state.page + 1, state.page >= pages - 1));
    }
  }

  function select(i, scroll) {
    if (!shown.length) return;
    i = Math.min(Math.max(0, i), shown.length - 1);
    const page = Math.floor(i / PAGE);
    if (page !== state.page) { state.page = page; render(); }
    const old = grid.querySelector(".card.sel");
    if (old) { old.classList.remove("sel"); old.setAttribute("aria-selected", "false"); }
    state.sel = i;
    const art = cardEl(shown[i]);
    if (!art) return;
    art.classList.add("sel");
    art.setAttribute("aria-selected", "true");
    if (scroll !== false) art.scrollIntoView({ block: "nearest" });
  }

  function apply() {
    const keep = shown[state.sel];
    const q = state.query.trim().toLowerCase();
    shown = state.filter === "all" && !q ? jobs : jobs.filter(function (j) { return matches(j, q); });
    const at = keep ? shown.indexOf(keep) : -1;
    state.page = Math.floor(Math.max(0, at) / PAGE);
    render();
    select(Math.max(0, at), false);
  }

  let unreachable = false; // the problem shown is the server's silence (cleared when it answers)
  function say(text, silence) {
    problem.textContent = text;
    problem.hidden = !text;
    unreachable = !!silence;
  }

  function show(job) {
    const art = cardEl(job);
    if (art) BF.setVerdict(art, job);
    counts();
  }

  async function save(job, verdict, note) {
    if (job.st !== "done" || !job.rid) { say(job.id + " has no image to review (" + job.st + ")"); return; }
    const before = [job.rv, job.rn];
    job.rv = verdict || undefined;
    job.rn = note || undefined;
    show(job); // at once; the server's answer follows
    pending.set(job.k, (pending.get(job.k) || 0) + 1);
    try {
      const r = await fetch(api("verdict"), {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Batchflux-Token": token },
        body: JSON.stringify({ k: job.k, rid: job.rid, verdict: verdict, note: note }),
      });
      if (!r.ok) throw new Error((await r.text()) || "HTTP " + r.status);
      const body = await r.json();
      job.rv = body.verdict || undefined;
      job.rn = body.note || undefined;
      say("");
    } catch (e) {
      job.rv = before[0];
      job.rn = before[1];
      say("not saved: " + e.message);
    } finally {
      pending.set(job.k, pending.get(job.k) - 1);
      if (!pending.get(job.k)) pending.delete(job.k);
      show(job);
    }
  }

  function openNote(job) {
    const art = cardEl(job);
    if (!art) return;
    let box = art.querySelector("textarea.note");
    if (!box) {
      box = el("textarea", "note");
      box.setAttribute("rows", "2");
      box.setAttribute("placeholder", "note: Enter saves, Shift+Enter a new line, Esc leaves");
      box.setAttribute("aria-label", "note on " + job.id);
      box.value = job.rn || "";
      box.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && !ev.shiftKey) {
          ev.preventDefault();
          const text = box.value.trim();
          closeNote(box);
          save(job, job.rv || null, text);
        } else if (ev.key === "Escape") {
          ev.preventDefault();
          closeNote(box);
        }
        ev.stopPropagation();
      });
      // Leaving the box by a click: an untouched note closes; a changed one stays for n to resume.
      box.addEventListener("blur", function () {
        if (!box.isConnected) return;
        editing = null;
        if (box.value.trim() === (job.rn || "")) box.remove();
      });
      art.querySelector(".body").appendChild(box);
    }
    editing = job;
    box.focus();
  }

  function closeNote(box) {
    box.remove();
    editing = null;
  }

  const box = BF.lightbox();

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (!help.hidden) {
      if (ev.key === "Escape" || ev.key === "?") { help.hidden = true; ev.preventDefault(); }
      return;
    }
    if (box.isOpen()) {
      if (ev.key === "Escape" || ev.key === "f" || ev.key === "Enter") { box.close(); ev.preventDefault(); }
      return;
    }
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA")) {
      if (ev.key === "Escape" || (ev.key === "Enter" && t === search)) {
        ev.preventDefault(); // Escape leaves the box and keeps the search (a search box would clear it)
        t.blur();
      }
      return;
    }
    const job = shown[state.sel];
    switch (ev.key) {
      case "j": case "ArrowDown": case "ArrowRight": select(state.sel + 1); break;
      case "k": case "ArrowUp": case "ArrowLeft": select(state.sel - 1); break;
      case "a": if (job) save(job, "approved", job.rn || ""); break;
      case "r": if (job) save(job, "rejected", job.rn || ""); break;
      case "u": if (job) save(job, null, ""); break;
      case "n": if (job) openNote(job); break;
      case "f": case "Enter": box.open(job); break;
      case "/": search.focus(); break;
      case "?": help.hidden = false; break;
      default: return;
    }
    ev.preventDefault();
  });

  grid.addEventListener("click", function (ev) {
    const art = ev.target.closest ? ev.target.closest(".card") : null;
    if (!art) return;
    const job = byKey.get(art.getAttribute("data-key"));
    const i = shown.indexOf(job);
    if (i >= 0 && i !== state.sel) select(i, false);
    const a = ev.target.closest("a[data-lightbox]");
    if (a && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey && ev.button === 0) {
      ev.preventDefault();
      box.open(job);
    }
  });
  help.addEventListener("click", function () { help.hidden = true; });
  document.getElementById("keys").addEventListener("click", function () { help.hidden = false; });
  document.getElementById("reload").addEventListener("click", function (ev) {
    ev.preventDefault();
    location.reload();
  });

  for (const chip of chips) {
    chip.addEventListener("click", function () {
      state.filter = chip.getAttribute("data-filter") || "all";
      for (const c of chips) c.setAttribute("aria-pressed", String(c === chip));
      chip.blur();
      apply();
    });
  }
  let timer = null;
  function searched() {
    clearTimeout(timer);
    timer = setTimeout(function () { state.query = search.value; apply(); }, jobs.length > 2000 ? 150 : 0);
  }
  search.addEventListener("input", searched);
  search.addEventListener("search", searched);

  // Verdicts given elsewhere (another tab, another reviewer, a script) come in here.
  async function poll() {
    try {
      const r = await fetch(api("verdicts?since=" + version), { headers: { "X-Batchflux-Token": token } });
      if (unreachable) say("");
      if (r.status === 200) {
        const body = await r.json();
        version = body.version;
        stale.hidden = !body.stale;
        for (const job of jobs) {
          if (pending.has(job.k) || editing === job) continue;
          const v = body.verdicts[job.k] || [];
          const rv = v[0] || undefined, rn = v[1] || undefined;
          if (rv !== job.rv || rn !== job.rn) { job.rv = rv; job.rn = rn; show(job); }
        }
      } else if (r.status === 403) {
        say("this page's session has ended: start batchflux review again");
        return;
      }
    } catch (e) {
      say("the review server does not answer (stopped?)", true);
      setTimeout(poll, 5000);
      return;
    }
    setTimeout(poll, 1000);
  }

  counts();
  apply();
  select(0, false);
  setTimeout(poll, 1000);
})();
