"use strict";
// batchflux job cards, shared by the report and the review page: one card per job from its JSON.
// Data never becomes markup: every value goes in through textContent or setAttribute.
const BF = (function () {
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
    setVerdict(art, job);
    return art;
  }

  // The verdict line of a card ("approved" / "rejected", with the note), replaced in place.
  function setVerdict(art, job) {
    const old = art.querySelector(".verdict");
    if (old) old.remove();
    art.classList.remove("rv-approved", "rv-rejected");
    if (!job.rv && !job.rn) return;
    const line = el("p", "verdict");
    if (job.rv) {
      art.classList.add("rv-" + job.rv);
      line.appendChild(el("span", "vbadge rv-" + job.rv, job.rv));
    }
    if (job.rn) line.appendChild(el("span", "vnote", job.rn));
    const body = art.querySelector(".body");
    body.insertBefore(line, body.querySelector(".prompt"));
  }

  // The lightbox (the page's #lightbox): a job's before and after at full size, side by side.
  // A click outside the images (or on the close button) closes it.
  function lightbox() {
    const lb = document.getElementById("lightbox");
    const before = document.getElementById("lb-before");
    const after = document.getElementById("lb-after");
    const title = document.getElementById("lb-title");
    function side(fig, label, href) {
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
    function close() {
      lb.hidden = true;
      side(before, "", null);
      side(after, "", null);
    }
    function open(job) {
      if (!job || !(job.ih || job.oh)) return;
      side(before, "before", safeHref(job.ih));
      side(after, "after", safeHref(job.oh));
      title.textContent = job.id + (job.p ? " — " + job.p : "");
      lb.hidden = false;
    }
    lb.addEventListener("click", function (ev) {
      if (ev.target.closest("figcaption a")) return;
      if (ev.target.tagName !== "IMG") close();
    });
    return { open: open, close: close, isOpen: function () { return !lb.hidden; } };
  }

  return { el: el, safeHref: safeHref, slug: slug, card: card, setVerdict: setVerdict, lightbox: lightbox };
})();
