/* Review page behaviour: keyboard shortcuts, zoom and pan, the lease heartbeat, autosaved drafts
   (localStorage, per item and version), hallucination marks that follow the text as it is edited, the
   answer widgets per type (Judgement Yes/No, Multiple-Choice rows and letters, growing Long VQA), the
   compact mode, undo of the last decision, and the prefetched next image.
   The read-only view (an image you do not hold) answers no shortcut but help, zoom and moving around.
   The server renders every piece of HTML; this file never builds markup from model text (it only
   sets textContent and form values), so nothing a model wrote can run here. */
(function () {
  "use strict";
  const root = document.getElementById("review-root");
  if (!root) return;
  const overlay = document.getElementById("shortcuts");
  const statusLine = document.getElementById("review-status");
  const DRAFT_PREFIX = "mmi-review:";
  const lastSelection = new WeakMap(); // article -> {field, start, end}
  let panel = null;
  let current = null;
  let heartbeat = null;
  let prefetched = null; // {id, html}
  let prefetchedId = null; // leased ahead, from the moment the claim answers (released on leaving)
  let prefetching = false;
  let queueEmpty = false;
  let zoom = { scale: 1, x: 0, y: 0 };
  let lastDecided = null; // the article of the last accept/reject (u undoes it while the lease holds)
  const statusBefore = {}; // item element id → its status before the save in flight
  let startedDone = false; // every item was decided when the page opened (a reopened image)
  const previousValue = new WeakMap(); // field -> its value before the current edit (marks follow it)
  const COMPACT_KEY = "mmi-review-compact";

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }
  function say(message) { statusLine.textContent = message; }
  function readonly() { return panel && panel.dataset.readonly === "true"; }
  function items() { return Array.from(panel.querySelectorAll("article.item")); }
  function undecided() { return panel.querySelectorAll('article.item[data-status="draft"]').length; }
  function api(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
  }

  // --- moving between items ------------------------------------------------------------------
  function setCurrent(article, focus) {
    if (!article) return;
    items().forEach((a) => a.classList.toggle("current", a === article));
    current = article;
    refold();
    if (focus) { article.focus({ preventScroll: true }); article.scrollIntoView({ block: "nearest" }); }
  }
  function move(delta) {
    const list = items();
    if (!list.length) return;
    const at = list.indexOf(current);
    const next = at < 0 ? list[0] : list[Math.max(0, Math.min(list.length - 1, at + delta))];
    setCurrent(next, true);
  }
  function nextUndecidedAfter(article) {
    const list = items();
    const at = list.indexOf(article);
    const rest = list.slice(at + 1).concat(list.slice(0, at + 1));
    return rest.find((a) => a.dataset.status === "draft") || article;
  }

  // --- drafts (autosave in this browser) --------------------------------------------------------
  function draftKey(a) { return `${DRAFT_PREFIX}${a.dataset.kind}:${a.dataset.id}:v${a.dataset.version}`; }
  function formOf(a) { return a.querySelector("form.item-form"); }
  function stateOf(a) {
    const form = formOf(a);
    const state = { options: [], marks: [] };
    ["text", "type", "question", "answer", "reason"].forEach((name) => {
      const el = form.elements.namedItem(name);
      if (el && !(el instanceof RadioNodeList)) state[name] = el.value;
    });
    form.querySelectorAll('input[name="options"]').forEach((el) => state.options.push(el.value));
    a.querySelectorAll(".new-mark").forEach((chip) => state.marks.push({
      category: chip.dataset.category, field: chip.dataset.field,
      start: chip.dataset.start, end: chip.dataset.end, label: chip.dataset.label,
    }));
    return state;
  }
  function saveDraft(a) {
    try { localStorage.setItem(draftKey(a), JSON.stringify(stateOf(a))); } catch (e) { /* storage full */ }
    a.classList.add("dirty");
  }
  function clearDrafts(a) {
    const prefix = `${DRAFT_PREFIX}${a.dataset.kind}:${a.dataset.id}:`;
    Object.keys(localStorage).filter((k) => k.startsWith(prefix)).forEach((k) => localStorage.removeItem(k));
    a.classList.remove("dirty");
  }
  function restoreDraft(a) {
    let state = null;
    try { state = JSON.parse(localStorage.getItem(draftKey(a)) || "null"); } catch (e) { state = null; }
    if (!state || !formOf(a)) return;
    const form = formOf(a);
    ["text", "type", "question", "answer", "reason"].forEach((name) => {
      const el = form.elements.namedItem(name);
      if (el && state[name] !== undefined && !(el instanceof RadioNodeList)) el.value = state[name];
    });
    const block = a.querySelector(".options");
    while (block && form.querySelectorAll('input[name="options"]').length < (state.options || []).length) {
      if (!addOption(block)) break;
    }
    form.querySelectorAll('input[name="options"]').forEach((el, i) => { el.value = state.options[i] || ""; });
    a.querySelectorAll(".new-mark").forEach((chip) => chip.remove());
    (state.marks || []).forEach((m) => addMarkChip(a, m.category, m.field, m.start, m.end, m.label));
    toggleOptions(a);
    syncWidgets(a);
    a.classList.add("dirty");
    const flash = a.querySelector(".flash");
    if (!flash) return;
    // A refused save's reason (the server's words) and a failure with its Retry stay: the note about the
    // restored edits goes beside them, never over them.
    const note = document.createElement("p");
    note.className = "muted restored";
    note.textContent = "Restored your unsaved edits from this browser.";
    flash.querySelectorAll(".restored").forEach((n) => n.remove());
    if (flash.querySelector(".error")) flash.appendChild(note);
    else { flash.textContent = ""; flash.appendChild(note); }
  }

  // --- hallucination marks ------------------------------------------------------------------------
  function categoryButtons(a) { return Array.from(a.querySelectorAll(".mark-btn")); }
  function addMarkChip(a, category, field, start, end, label) {
    const holder = a.querySelector(".new-marks");
    if (!holder) return;
    const chip = document.createElement("span");
    chip.className = "mark new-mark";
    Object.assign(chip.dataset, { category, field, start: start ?? "", end: end ?? "", label: label || "" });
    const btn = categoryButtons(a).find((b) => b.dataset.category === category);
    const name = btn ? btn.textContent.replace(/^\d+\s*/, "") : category;
    chip.textContent = `⚑ ${name}${label ? `: “${label}”` : ""} (unsaved) `;
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "link remove-mark"; remove.textContent = "×";
    remove.setAttribute("aria-label", "Remove this mark");
    remove.addEventListener("click", () => { chip.remove(); saveDraft(a); });
    chip.appendChild(remove);
    [["mark_category", category], ["mark_field", field], ["mark_start", start ?? ""], ["mark_end", end ?? ""]].forEach(([n, v]) => {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = n; input.value = v;
      chip.appendChild(input);
    });
    holder.appendChild(chip);
  }
  // When a field is edited, the marks on it follow: a mark before the edit stays, one after it moves by
  // the change in length, one the edit touched is looked for again by its text (nearest occurrence) and
  // dropped, with a word, when its text is gone. A remembered selection in that field is forgotten: it
  // named characters that are not there any more (the select-all-and-retype bug).
  function followEdit(a, el) {
    const before = previousValue.has(el) ? previousValue.get(el) : el.defaultValue;
    const after = el.value;
    previousValue.set(el, after);
    const remembered = lastSelection.get(a);
    if (remembered && remembered.el === el) lastSelection.delete(a);
    if (before === after || !el.dataset.field) return;
    let head = 0;
    while (head < before.length && head < after.length && before[head] === after[head]) head++;
    let tail = 0;
    while (tail < before.length - head && tail < after.length - head
           && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
    const editEnd = before.length - tail; // the edit replaced before[head, editEnd)
    const delta = after.length - before.length;
    a.querySelectorAll(`.new-mark[data-field="${el.dataset.field}"]`).forEach((chip) => {
      if (chip.dataset.start === "") return; // a mark on the whole field has no span to move
      const start = Number(chip.dataset.start), end = Number(chip.dataset.end);
      let ns = start, ne = end;
      if (end <= head) { /* entirely before the edit */ }
      else if (start >= editEnd) { ns = start + delta; ne = end + delta; }
      else {
        const label = chip.dataset.label;
        let best = -1;
        for (let at = after.indexOf(label); label && at !== -1; at = after.indexOf(label, at + 1)) {
          if (best === -1 || Math.abs(at - start) < Math.abs(best - start)) best = at;
        }
        if (best === -1) {
          chip.remove();
          say(`A mark was removed: its text “${label}” is no longer in the ${el.dataset.field}.`);
          return;
        }
        ns = best; ne = best + label.length;
      }
      setChipSpan(chip, ns, ne);
    });
  }
  function setChipSpan(chip, start, end) {
    chip.dataset.start = String(start);
    chip.dataset.end = String(end);
    chip.querySelector('input[name="mark_start"]').value = String(start);
    chip.querySelector('input[name="mark_end"]').value = String(end);
  }
  function markHallucination(a, index, fieldEl) {
    const btn = categoryButtons(a)[index];
    if (!btn || readonly()) return;
    let sel = null;
    if (fieldEl && fieldEl.dataset.field && fieldEl.selectionStart !== fieldEl.selectionEnd) {
      sel = { field: fieldEl.dataset.field, start: fieldEl.selectionStart, end: fieldEl.selectionEnd, el: fieldEl };
    } else {
      sel = lastSelection.get(a) || null;
    }
    const defaultField = a.dataset.kind === "caption" ? "text" : "answer";
    const field = sel ? sel.field : defaultField;
    let start = "", end = "", label = "";
    if (sel && sel.field !== "options") {
      // Checked against the text as it is now: a span past its end is no span.
      if (sel.end <= sel.el.value.length && sel.start < sel.end) {
        start = sel.start; end = sel.end; label = sel.el.value.slice(sel.start, sel.end);
      }
    }
    // Collapse the used selection so that the next mark does not take the same span again.
    if (sel && sel.el && sel.el.setSelectionRange) sel.el.setSelectionRange(sel.end, sel.end);
    addMarkChip(a, btn.dataset.category, field, start, end, label);
    lastSelection.delete(a);
    saveDraft(a);
    say(`Marked a ${btn.textContent.replace(/^\d+\s*/, "")} hallucination; it is saved with your next save or decision.`);
  }

  // --- saving ---------------------------------------------------------------------------------------
  function submit(a, action) {
    if (!a || readonly()) return;
    const form = formOf(a);
    if (!form || form.querySelector("fieldset").disabled) return;
    if (action === "reject" && !form.elements.namedItem("reason").value.trim()) {
      form.elements.namedItem("reason").focus();
      say("Type why you reject it, then press Enter.");
      return;
    }
    form.elements.namedItem("action").value = action;
    form.requestSubmit();
  }
  function typeOf(a) {
    const select = a && a.querySelector('select[name="type"]');
    return select ? select.value : (a && a.dataset.kind === "caption" ? "caption" : "");
  }
  function answerOf(a) { return formOf(a) && formOf(a).querySelector('[name="answer"]'); }
  // The answer widgets follow the type: options for Multiple-Choice, Yes/No for Judgement, a growing
  // textarea for Long VQA (the one `answer` field is swapped between <input> and <textarea>).
  function toggleOptions(a) {
    const type = typeOf(a);
    const block = a.querySelector(".options");
    if (block) block.hidden = type !== "multiple_choice";
    const yn = a.querySelector(".yn");
    if (yn) yn.hidden = type !== "judgement";
    const label = a.querySelector(".answer-field");
    if (label) label.hidden = type === "judgement";
    const answer = answerOf(a);
    if (!answer) return;
    const wantArea = type === "long_vqa";
    if (wantArea !== (answer.tagName === "TEXTAREA")) {
      const next = document.createElement(wantArea ? "textarea" : "input");
      if (wantArea) { next.rows = 3; next.className = "autogrow long-answer"; } else { next.type = "text"; next.autocomplete = "off"; }
      next.name = "answer"; next.dataset.field = "answer"; next.value = answer.value;
      answer.replaceWith(next);
      grow(next);
    }
    syncWidgets(a);
  }
  function syncWidgets(a) {
    const answer = answerOf(a);
    const value = answer ? answer.value.trim() : "";
    a.querySelectorAll(".yn-btn").forEach((b) => {
      const on = b.dataset.value.toLowerCase() === value.toLowerCase();
      b.classList.toggle("picked", on); b.setAttribute("aria-pressed", String(on));
    });
    a.querySelectorAll(".option-pick").forEach((b) => {
      const on = b.dataset.letter === value.toUpperCase();
      b.classList.toggle("picked", on); b.setAttribute("aria-pressed", String(on));
    });
  }
  function setAnswer(a, value) {
    const answer = answerOf(a);
    if (!answer || readonly() || answer.disabled) return;
    answer.value = value;
    answer.dispatchEvent(new Event("input", { bubbles: true })); // the rule check and the draft
    answer.dispatchEvent(new Event("change", { bubbles: true }));
    syncWidgets(a);
    say(`Answer: ${value}. Press a to accept.`);
  }
  function addOption(block) {
    const rows = block.querySelectorAll(".option");
    const max = parseInt(block.dataset.max, 10) || 6;
    if (!rows.length || rows.length >= max) { say(`A Multiple-Choice question has at most ${max} options.`); return null; }
    const row = rows[rows.length - 1].cloneNode(true);
    const letter = String.fromCharCode(65 + rows.length);
    const input = row.querySelector("input");
    input.value = ""; input.placeholder = input.placeholder.replace(/^option [A-Z]/, `option ${letter}`);
    input.setAttribute("aria-label", `Option ${letter}`);
    const pick = row.querySelector(".option-pick, .option-label");
    pick.textContent = letter;
    if (pick.dataset.letter) {
      pick.dataset.letter = letter; pick.title = `The answer is ${letter} (Shift+${letter})`;
      pick.classList.remove("picked"); pick.setAttribute("aria-pressed", "false");
    }
    rows[rows.length - 1].after(row);
    return input;
  }
  function grow(el) {
    // Chromium sizes these by their content (field-sizing in review.css); elsewhere, rows follow lines.
    if (!el || el.tagName !== "TEXTAREA" || CSS.supports("field-sizing", "content")) return;
    el.rows = Math.max(el.classList.contains("long-answer") ? 3 : 2, Math.min(20, el.value.split("\n").length + 1));
  }

  // --- compact mode: the current item open, decided ones folded to one line ---------------------------
  function compact() { return root.classList.contains("compact"); }
  function refold() {
    if (!panel) return;
    items().forEach((a) => {
      const decided = a.dataset.status !== "draft";
      const busy = a.classList.contains("dirty") || a.querySelector(".conflict, .flash .error");
      a.classList.toggle("folded", compact() && decided && a !== current && !busy);
    });
  }
  function setCompact(on) {
    root.classList.toggle("compact", on);
    try { localStorage.setItem(COMPACT_KEY, on ? "1" : "0"); } catch (e) { /* private mode */ }
    const box = panel && panel.querySelector(".compact-mode");
    if (box) box.checked = on;
    refold();
  }

  // --- next image, prefetched --------------------------------------------------------------------------
  function maybePrefetch() {
    if (prefetched || prefetching || queueEmpty || readonly() || undecided() > 1) return;
    prefetching = true;
    const domains = JSON.parse(root.dataset.domains || "[]");
    api("/api/v1/review/images/next/", { domains })
      .then((r) => {
        if (r.status === 204) queueEmpty = true; // any other failure: try again after the next save
        return r.status === 200 ? r.json() : null;
      })
      .then((image) => {
        if (!image) return null;
        prefetchedId = image.id;
        new Image().src = image.file; // warm the browser cache
        return fetch(`/review/image/${image.id}/panel/`, { credentials: "same-origin" })
          .then((r) => r.text())
          .then((html) => { prefetched = { id: image.id, html }; root.dataset.prefetched = String(image.id); });
      })
      .catch(() => {})
      .finally(() => { prefetching = false; });
  }
  function showPrefetched() {
    const next = prefetched;
    prefetched = null;
    prefetchedId = null;
    delete root.dataset.prefetched;
    root.innerHTML = next.html;
    htmx.process(root);
    history.pushState({}, "", `/review/image/${next.id}/`);
    document.title = `Review image ${next.id} · MMInstruct Studio`;
    init();
    say(`Image ${next.id} is yours now.`);
  }
  function goNext(finished) {
    if (prefetched) {
      if (!finished) api(panel.dataset.releaseUrl);
      showPrefetched();
      return;
    }
    const form = panel.querySelector(".next-form");
    if (form) form.submit();
    else window.location.href = "/review/";
  }
  window.addEventListener("pagehide", () => {
    if (!prefetchedId) return;
    const data = new FormData();
    data.append("csrfmiddlewaretoken", csrfToken());
    navigator.sendBeacon(`/api/v1/review/images/${prefetchedId}/release/`, data);
  });

  // --- lease heartbeat -------------------------------------------------------------------------------
  function startHeartbeat() {
    clearInterval(heartbeat);
    if (readonly()) return;
    const seconds = Math.max(1, parseInt(panel.dataset.heartbeat, 10) || 60);
    heartbeat = setInterval(() => {
      api(panel.dataset.renewUrl).then((r) => {
        if (r.status === 409) r.json().then((body) => say(`Lease lost: ${body.detail}`));
        else if (r.status >= 500) say(`Could not renew your lease (the server answered ${r.status}); trying again in ${seconds} s. Your edits are kept in this browser.`);
      }).catch(() => say("Offline: your edits are kept in this browser and will be saved when you retry."));
    }, seconds * 1000);
  }

  // --- zoom and pan -----------------------------------------------------------------------------------
  function applyZoom() {
    const img = panel.querySelector("img.zoomable");
    if (img) img.style.transform = `translate(${zoom.x}px, ${zoom.y}px) scale(${zoom.scale})`;
  }
  function zoomBy(factor) { zoom.scale = Math.min(12, Math.max(1, zoom.scale * factor)); if (zoom.scale === 1) { zoom.x = 0; zoom.y = 0; } applyZoom(); }
  function setupViewer() {
    zoom = { scale: 1, x: 0, y: 0 };
    const viewer = panel.querySelector(".viewer");
    if (!viewer) return;
    viewer.addEventListener("wheel", (e) => { e.preventDefault(); zoomBy(e.deltaY < 0 ? 1.2 : 1 / 1.2); }, { passive: false });
    let drag = null;
    viewer.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - zoom.x, y: e.clientY - zoom.y }; viewer.setPointerCapture(e.pointerId); });
    viewer.addEventListener("pointermove", (e) => { if (drag && zoom.scale > 1) { zoom.x = e.clientX - drag.x; zoom.y = e.clientY - drag.y; applyZoom(); } });
    viewer.addEventListener("pointerup", () => { drag = null; });
    panel.querySelector(".zoom-in")?.addEventListener("click", () => zoomBy(1.5));
    panel.querySelector(".zoom-out")?.addEventListener("click", () => zoomBy(1 / 1.5));
    panel.querySelector(".zoom-reset")?.addEventListener("click", () => { zoom = { scale: 1, x: 0, y: 0 }; applyZoom(); });
  }

  // --- wiring ---------------------------------------------------------------------------------------------
  function updateCount() {
    const n = undecided();
    panel.dataset.undecided = String(n);
    const el = panel.querySelector(".undecided-count");
    if (el) el.textContent = String(n);
  }
  function init() {
    panel = document.getElementById("review-panel");
    if (!panel) return;
    items().forEach(restoreDraft);
    startedDone = !readonly() && undecided() === 0 && items().length > 0;
    lastDecided = null;
    let on = true;
    try { on = localStorage.getItem(COMPACT_KEY) !== "0"; } catch (e) { /* private mode */ }
    setCompact(on);
    panel.querySelectorAll("textarea.autogrow").forEach(grow);
    setupViewer();
    startHeartbeat();
    const first = items().find((a) => a.dataset.status === "draft") || items()[0];
    setCurrent(first, true);
    maybePrefetch();
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (button) {
      const a = button.closest("article.item");
      const action = button.dataset.action;
      if (action === "fix") { e.preventDefault(); fix(a); return; }
      if (action === "reject" && !formOf(a).elements.namedItem("reason").value.trim()) { e.preventDefault(); submit(a, "reject"); return; }
      formOf(a).elements.namedItem("action").value = action;
      return;
    }
    const yn = e.target.closest(".yn-btn");
    if (yn) { const a = yn.closest("article.item"); setCurrent(a, false); setAnswer(a, yn.dataset.value); return; }
    const pick = e.target.closest(".option-pick");
    if (pick) { const a = pick.closest("article.item"); setCurrent(a, false); setAnswer(a, pick.dataset.letter); return; }
    const add = e.target.closest(".add-option");
    if (add) {
      const input = addOption(add.closest(".options"));
      if (input) { input.focus(); const a = input.closest("article.item"); if (a) saveDraft(a); }
      return;
    }
    if (e.target.closest(".release")) { release(); return; }
    const folded = e.target.closest("article.item.folded");
    if (folded && !e.target.closest("a, button")) { setCurrent(folded, true); return; }
    const markBtn = e.target.closest(".mark-btn");
    if (markBtn) { const a = markBtn.closest("article.item"); markHallucination(a, categoryButtons(a).indexOf(markBtn), null); }
  });
  document.addEventListener("focusin", (e) => { const a = e.target.closest && e.target.closest("article.item"); if (a && a !== current) setCurrent(a, false); });
  document.addEventListener("focusin", (e) => {
    const el = e.target;
    if (el.dataset && el.dataset.field && !previousValue.has(el)) previousValue.set(el, el.value);
  });
  document.addEventListener("input", (e) => {
    const a = e.target.closest && e.target.closest("article.item");
    if (e.target.classList && e.target.classList.contains("autogrow")) grow(e.target);
    if (a && e.target.form && e.target.form.classList.contains("item-form")) {
      followEdit(a, e.target);
      if (e.target.name === "answer") syncWidgets(a);
      saveDraft(a);
    }
  });
  document.addEventListener("change", (e) => {
    if (e.target.classList && e.target.classList.contains("compact-mode")) { setCompact(e.target.checked); return; }
    const a = e.target.closest && e.target.closest("article.item");
    if (a && e.target.name === "type") { toggleOptions(a); saveDraft(a); }
  });
  ["select", "keyup", "mouseup"].forEach((type) => document.addEventListener(type, (e) => {
    const el = e.target;
    const a = el.closest && el.closest("article.item");
    if (a && el.dataset && el.dataset.field && el.selectionStart !== undefined && el.selectionStart !== el.selectionEnd) {
      lastSelection.set(a, { field: el.dataset.field, start: el.selectionStart, end: el.selectionEnd, el });
    }
  }));

  document.body.addEventListener("htmx:beforeSwap", (e) => {
    // Conflicts, broken rules, lost leases and "engine absent" carry a body to show, not an error page.
    // A 503 in plain text is a failure message (the database was busy): shown with a Retry, below.
    const xhr = e.detail.xhr;
    const plain = (xhr.getResponseHeader("Content-Type") || "").startsWith("text/plain");
    if ([202, 400, 409].includes(xhr.status) || (xhr.status === 503 && !plain)) { e.detail.shouldSwap = true; e.detail.isError = false; }
    // What the item was before this save: only a decision of a draft can be undone (back to draft).
    const t = e.detail.target;
    if (t && t.id && t.id.startsWith("item-")) statusBefore[t.id] = t.dataset.status;
  });
  document.body.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail.target;
    const swapped = target && target.id && target.id.startsWith("item-") ? document.getElementById(target.id) : null;
    const added = e.detail.elt && e.detail.elt.closest && e.detail.elt.closest(".add-instruction");
    if (added && e.detail.xhr.status === 200) {
      // The new, accepted instruction came back in .add-result: move it into its type group.
      const article = panel.querySelector(".add-result article.item");
      const group = article && panel.querySelector(`.type-group[data-type="${article.querySelector('select[name="type"]').value}"]`);
      if (group) { group.querySelector(".none")?.remove(); group.appendChild(article); setCurrent(article, true); }
      panel.querySelector(".add-instruction form").reset();
      say("Instruction added and accepted.");
      return;
    }
    if (!swapped) return;
    const status = e.detail.xhr.status;
    if (status === 200) {
      clearDrafts(swapped);
      updateCount();
      const decided = swapped.dataset.status !== "draft";
      // An edit or a change of decision on an item decided before (a reopened image) is not undone to
      // draft: that would send the image back to the queue.
      const undoable = decided && statusBefore[swapped.id] === "draft";
      lastDecided = undoable ? swapped.id : null;
      setCurrent(decided ? nextUndecidedAfter(swapped) : swapped, true);
      const reopened = startedDone && undecided() === 0
        ? " The reopened image stays yours: change more, or press Release and leave when you are done." : "";
      say(`Saved ${swapped.dataset.kind} ${swapped.dataset.id} (v${swapped.dataset.version}, ${swapped.dataset.status}).${undoable ? " u undoes it." : ""}${reopened}`);
      maybePrefetch();
    } else if (status === 409) {
      setCurrent(swapped, true);
      const reason = swapped.querySelector(".flash .error");
      if (swapped.querySelector(".conflict")) say("Conflict: this item changed meanwhile. Press m to keep yours or t to keep theirs.");
      else say(`Not saved: ${reason ? reason.textContent : "refused by the server"} Your edits are kept in this browser.`);
      restoreDraft(swapped);
    } else if (status === 400) {
      restoreDraft(swapped);
      setCurrent(swapped, true);
      const reason = swapped.querySelector(".flash .error");
      say(`Not saved: ${reason ? reason.textContent : "see the message on the item."}`);
    }
    swapped.querySelectorAll("textarea.autogrow").forEach(grow);
    refold();
  });
  // htmx settles a swapped item by putting its new attributes back after a short delay: the classes this
  // script sets (current, folded) are set again once that is done.
  document.body.addEventListener("htmx:afterSettle", () => {
    if (!panel) return;
    if (current && current.isConnected) current.classList.add("current");
    refold();
  });
  // --- failures: a visible message with a Retry, never silence ------------------------------------------
  function failureText(xhr) {
    if (!xhr || !xhr.status) return "Not saved: the connection dropped.";
    const plain = (xhr.getResponseHeader("Content-Type") || "").startsWith("text/plain");
    if (plain && xhr.responseText && xhr.responseText.length < 500) return xhr.responseText;
    if (xhr.status === 429) {
      const wait = xhr.getResponseHeader("Retry-After");
      return `Refused: too many requests just now${wait ? `; try again in ${wait} s` : ""}.`;
    }
    if (xhr.status === 403) return "Refused: your role does not allow this.";
    return `Not saved: the server failed (HTTP ${xhr.status}).`;
  }
  function showFailure(elt, xhr) {
    if (!elt || !elt.closest) return;
    const text = failureText(xhr);
    if (elt.classList.contains("validated")) {
      // The live rule check is no action: say it could not run; the next keystroke tries again.
      const rules = elt.querySelector(".rules");
      if (rules) rules.textContent = "Could not check the rules just now.";
      return;
    }
    const article = elt.closest("article.item");
    const box = (article && article.querySelector(".flash")) || (elt.closest(".add-instruction") && panel.querySelector(".add-result"));
    const retry = () => (elt.tagName === "FORM" ? elt.requestSubmit() : htmx.trigger(elt, "click"));
    if (box) {
      box.textContent = "";
      const p = document.createElement("p");
      p.className = "error failure";
      p.setAttribute("role", "alert");
      p.textContent = `${text} Your edits are kept in this browser. `;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary small retry";
      button.textContent = "Retry";
      button.addEventListener("click", () => { p.remove(); say("Retrying…"); retry(); });
      p.appendChild(button);
      box.appendChild(p);
      if (article) setCurrent(article, false);
    }
    say(`${text} Press Retry to send it again.`);
  }
  document.body.addEventListener("htmx:responseError", (e) => showFailure(e.detail.elt, e.detail.xhr));
  document.body.addEventListener("htmx:sendError", (e) => showFailure(e.detail.elt, null));
  document.body.addEventListener("imageDone", () => {
    if (startedDone) {
      // A reopened image whose item was sent back to draft and decided again: it is reviewed again;
      // stay on it.
      say("Saved; this image is reviewed again. Reopen it to change more, or go back to the queue for the next image.");
      fetch(`/review/image/${panel.dataset.imageId}/panel/`, { credentials: "same-origin" })
        .then((r) => r.text())
        .then((html) => { root.innerHTML = html; htmx.process(root); init(); });
      return;
    }
    say("Image done.");
    goNext(true);
  });
  function release() {
    if (readonly()) { window.location.href = "/review/"; return; }
    clearInterval(heartbeat);
    api(panel.dataset.releaseUrl)
      .then((r) => {
        if (r.ok) { window.location.href = "/review/"; return; }
        return r.json().then((body) => say(`Not released: ${body.detail || `HTTP ${r.status}`}`));
      })
      .catch(() => say("Not released: the connection dropped. Try again."));
  }
  function undo() {
    const a = lastDecided && document.getElementById(lastDecided);
    if (!a || a.dataset.status === "draft") { say("Nothing to undo: u undoes your last accept or reject of a draft on this image."); return; }
    setCurrent(a, true);
    submit(a, "undo");
  }

  function fix(a) {
    if (!a || readonly()) return;
    if (typeOf(a) === "judgement") { say("A Judgement answer is Yes or No: press y or n (the question: click it to edit)."); return; }
    const field = a.querySelector('[data-field="answer"]') || a.querySelector('[data-field="text"]');
    if (field) { field.focus(); const end = field.value.length; field.setSelectionRange?.(end, end); }
  }
  function toggleOverlay(show) { overlay.hidden = !show; if (show) overlay.querySelector(".card").focus?.(); }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const inField = t.matches && t.matches("input, textarea, select");
    const a = (t.closest && t.closest("article.item")) || current;
    if (!overlay.hidden) {
      if (e.key === "Escape" || e.key === "?") { e.preventDefault(); toggleOverlay(false); }
      return;
    }
    if (readonly()) {
      // Nothing here may change anything: only help, zoom, full resolution and moving between items.
      if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
      const safe = { "?": () => toggleOverlay(true), j: () => move(1), k: () => move(-1), ArrowDown: () => move(1),
        ArrowUp: () => move(-1), z: () => zoomBy(1.5), x: () => zoomBy(1 / 1.5),
        0: () => { zoom = { scale: 1, x: 0, y: 0 }; applyZoom(); },
        o: () => window.open(panel.querySelector("a.full-res").href, "_blank", "noopener"), c: () => setCompact(!compact()) };
      if (safe[e.key]) { e.preventDefault(); safe[e.key](); }
      return;
    }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") { e.preventDefault(); submit(a, "save"); return; }
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); submit(a, "accept"); return; }
    if (inField) {
      if (e.key === "Escape") { t.blur(); if (a) setCurrent(a, true); return; }
      if (e.altKey && /^[1-6]$/.test(e.key)) { e.preventDefault(); markHallucination(a, Number(e.key) - 1, t); return; }
      if (e.key === "Enter" && t.tagName === "TEXTAREA" && t.name === "answer" && !e.shiftKey) {
        // A Long VQA answer takes new lines with Shift+Enter; Enter alone does what it does in a line.
        return;
      }
      if (e.key === "Enter" && t.tagName === "INPUT") {
        e.preventDefault();
        if (t.classList.contains("reason")) submit(a, "reject");
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const conflict = a && a.querySelector(".conflict");
    const type = typeOf(a);
    if (type === "judgement" && (e.key === "y" || e.key === "n")) { e.preventDefault(); setAnswer(a, e.key === "y" ? "Yes" : "No"); return; }
    if (type === "multiple_choice" && /^[A-F]$/.test(e.key)) {
      const pick = a.querySelector(`.option-pick[data-letter="${e.key}"]`);
      if (pick && !pick.closest(".option").querySelector("input").value.trim()) { say(`Option ${e.key} is empty: type it first.`); }
      else if (pick) setAnswer(a, e.key);
      e.preventDefault();
      return;
    }
    switch (e.key) {
      case "?": toggleOverlay(true); break;
      case "j": case "ArrowDown": move(1); break;
      case "k": case "ArrowUp": move(-1); break;
      case "a": submit(a, "accept"); break;
      case "e": case "f": fix(a); break;
      case "r": a?.querySelector("input.reason")?.focus(); say("Type why you reject it, then press Enter."); break;
      case "1": case "2": case "3": case "4": case "5": case "6": markHallucination(a, Number(e.key) - 1, null); break;
      case "n": case "N": goNext(false); break;
      case "u": undo(); break;
      case "c": setCompact(!compact()); break;
      case "p": window.location.href = panel.dataset.previousUrl; break;
      case "h": if (a) window.open(a.dataset.historyUrl, "_blank", "noopener"); break;
      case "i": { const d = panel.querySelector(".add-instruction"); if (d) { d.open = true; d.querySelector("select").focus(); } break; }
      case "z": zoomBy(1.5); break;
      case "x": zoomBy(1 / 1.5); break;
      case "0": zoom = { scale: 1, x: 0, y: 0 }; applyZoom(); break;
      case "o": window.open(panel.querySelector("a.full-res").href, "_blank", "noopener"); break;
      case "m": if (conflict) conflict.querySelector("button.use-mine").click(); break;
      case "t": if (conflict) conflict.querySelector("button.use-theirs").click(); break;
      default: return;
    }
    e.preventDefault();
  });

  init();
  // htmx wires its hx-post forms on DOMContentLoaded; this listener runs after its own, so from here on
  // every form and shortcut works (browser tests wait for this marker, as a fast annotator cannot).
  const markReady = () => { root.dataset.ready = "true"; };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", markReady);
  else setTimeout(markReady, 0);
})();
