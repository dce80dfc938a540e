"use strict";
// batchflux report: job cards from the embedded JSON, a page at a time.
// Data never becomes markup: every value goes in through textContent or setAttribute.
(function () {
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

  // Only links the report itself made: "./" or "../" relative paths (percent-encoded) or http(s) URLs.
  function safeHref(href) {
    return typeof href === "string" && /^(\.\.?\/|https?:\/\/)/.test(href) ? href : null;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function slug(status) {
    return "st-" + String(status).replace(/[^a-z0-9]+/gi, "-");
  }

  function seconds(v) {
    if (v === undefined || v === null) return null;
    if (v < 60) return v.toFixed(v < 10 ? 1 : 0) + " s";
    const m = Math.floor(v / 60), s = Math.round(v % 60);
    return m + ":" + String(s).padStart(2, "0") + " min";
  }

  function side(label, thumb, full, remote, placeholder, job) {
    const fig = el("figure", "side");
    const href = safeHref(full) || safeHref(remote);
    const src = safeHref(thumb);
    let inner;
    if (src) {
      inner = el("img");
      inner.setAttribute("loading", "lazy");
      inner.setAttribute("decoding", "async");
      inner.setAttribute("src", src);
      inner.setAttribute("alt", label + " of " + job.id);
    } else {
      inner = el("div", "ph", placeholder);
    }
    if (href) {
      const a = el("a", "thumb");
      a.setAttribute("href", href);
      a.setAttribute("target", "_blank");
      a.setAttribute("rel", "noopener noreferrer");
      a.setAttribute("title", remote && !full ? "remote input: " + remote : "open full size");
      if (full && src) a.setAttribute("data-lightbox", label + " · " + job.id);
      a.appendChild(inner);
      fig.appendChild(a);
    } else {
      fig.appendChild(inner);
    }
    fig.appendChild(el("figcaption", null, label));
    return fig;
  }

  function outputPlaceholder(job) {
    if (job.om) return "output file missing";
    if (job.st === "done") return "no preview";
    if (job.st === "failed") return "no output: failed";
    if (job.st === "expired") return "no output: expired";
    if (job.st === "not downloaded") return "result known, not downloaded yet";
    return "no output yet";
  }

  function card(job) {
    const art = el("article", "card " + slug(job.st));
    art.setAttribute("data-status", job.st);
    art.setAttribute("data-key", job.k);
    const pair = el("div", "pair");
    const inPh = job.iu ? "remote input (not loaded)" : (job.ih ? "no preview" : "no input image");
    pair.appendChild(side("before", job.it, job.ih, job.iu, inPh, job));
    pair.appendChild(side("after", job.ot, job.oh, null, outputPlaceholder(job), job));
    art.appendChild(pair);

    const body = el("div", "body");
    const top = el("div", "meta");
    top.appendChild(el("span", "badge " + slug(job.st), job.st));
    top.appendChild(el("code", "jid", job.id));
    if (job.sh) top.appendChild(el("span", "shard", job.sh));
    body.appendChild(top);
    body.appendChild(el("p", "prompt", job.p || "(no prompt)"));

    const facts = [];
    if (job.inf !== undefined) facts.push("inference " + seconds(job.inf));
    if (job.sub !== undefined && job.cmp !== undefined) facts.push("turnaround " + seconds(job.cmp - job.sub));
    if (job.att > 1) facts.push(job.att + " submits");
    if (facts.length) body.appendChild(el("p", "facts", facts.join(" · ")));
    if (job.dup) body.appendChild(el("p", "warnline", job.dup + " possible duplicate charge" + (job.dup > 1 ? "s" : "")));

    if (job.st === "failed" || job.st === "expired" || job.err) {
      const box = el("div", "error");
      const head = [job.cause || job.st];
      if (job.http) head.push("HTTP " + job.http);
      box.appendChild(el("strong", null, head.join(" · ")));
      if (job.err) box.appendChild(el("span", null, " " + job.err));
      body.appendChild(box);
    }

    const det = el("details");
    det.appendChild(el("summary", null, "parameters"));
    const dl = el("dl");
    const rows = (job.pa || []).slice();
    if (job.m) rows.unshift(["model", job.m]);
    if (job.rid) rows.push(["request id", job.rid]);
    if (job.iu) rows.push(["input URL", job.iu]);
    for (const kv of rows) {
      dl.appendChild(el("dt", null, kv[0]));
      dl.appendChild(el("dd", null, kv[1]));
    }
    det.appendChild(dl);
    body.appendChild(det);
    art.appendChild(body);
    return art;
  }

  function matches(job, status, q) {
    if (status && job.st !== status) return false;
    if (!q) return true;
    if (job._hay === undefined) job._hay = (job.id + "\n" + (job.p || "") + "\n" + (job.rid || "")).toLowerCase();
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
  const lb = document.getElementById("lightbox");
  const lbBefore = document.getElementById("lb-before");
  const lbAfter = document.getElementById("lb-after");
  const lbTitle = document.getElementById("lb-title");
  function lbSide(fig, label, href) {
    const img = fig.querySelector("img");
    const cap = fig.querySelector("figcaption");
    cap.replaceChildren();
    fig.hidden = !href;
    if (!href) { img.removeAttribute("src"); return; }
    img.setAttribute("src", href);
    img.setAttribute("alt", label);
    const a = el("a", null, label + " · open file");
    a.setAttribute("href", href);
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noopener noreferrer");
    cap.appendChild(a);
  }
  function closeLightbox() {
    lb.hidden = true;
    lbSide(lbBefore, "", null);
    lbSide(lbAfter, "", null);
  }
  grid.addEventListener("click", function (ev) {
    const a = ev.target.closest ? ev.target.closest("a[data-lightbox]") : null;
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    const job = byKey.get(a.closest(".card").getAttribute("data-key"));
    if (!job) return;
    ev.preventDefault();
    lbSide(lbBefore, "before", safeHref(job.ih));
    lbSide(lbAfter, "after", safeHref(job.oh));
    lbTitle.textContent = job.id + (job.p ? " — " + job.p : "");
    lb.hidden = false;
  });
  lb.addEventListener("click", function (ev) {
    if (ev.target.closest("figcaption a")) return;
    if (ev.target.tagName !== "IMG") closeLightbox();
  });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && !lb.hidden) closeLightbox(); });

  if (search.value) state.query = search.value;
  apply();
})();
