/* The export form's live preview: on every change, GET /api/v1/exports/preview/ with the selection and
   show how many instructions and images it matches, and a few records. Text only (textContent): nothing
   a model wrote is ever parsed as HTML. */
(function () {
  "use strict";
  const form = document.getElementById("export-form");
  const box = document.getElementById("export-preview");
  if (!form || !box) return;
  const $ = (sel) => box.querySelector(sel);
  let timer = null;
  let serial = 0;

  function query() {
    const params = new URLSearchParams();
    const data = new FormData(form);
    ["domains", "types", "statuses"].forEach((k) => data.getAll(k).forEach((v) => params.append(k, v)));
    ["models", "date_from", "date_to"].forEach((k) => { const v = data.get(k); if (v) params.set(k, v); });
    return params.toString();
  }
  function show(body) {
    $(".preview-error").hidden = true;
    $(".preview-instructions").textContent = String(body.instructions);
    $(".preview-images").textContent = String(body.images);
    const list = $(".preview-sample");
    list.textContent = "";
    body.sample.forEach((r) => {
      const li = document.createElement("li");
      const head = document.createElement("span");
      head.className = "muted small";
      head.textContent = `${r.domain} · image ${r.image_id} · ${r.type} · instruction ${r.instruction_id}`;
      const q = document.createElement("div");
      q.textContent = `Q: ${r.question}`;
      li.append(head, q);
      if (r.options && r.options.length) {
        const o = document.createElement("div");
        o.className = "small";
        o.textContent = r.options.map((t, i) => `${String.fromCharCode(65 + i)}. ${t}`).join("  ");
        li.append(o);
      }
      const a = document.createElement("div");
      a.textContent = `A: ${r.answer}`;
      li.append(a);
      list.append(li);
    });
    $(".preview-empty").hidden = body.instructions > 0;
    box.dataset.instructions = String(body.instructions);
    box.dataset.images = String(body.images);
  }
  function fail(text) {
    const p = $(".preview-error");
    p.hidden = false;
    p.textContent = text;
  }
  function refresh() {
    const mine = ++serial;
    fetch(`${box.dataset.url}?${query()}`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => ({ ok: r.ok, status: r.status, body })))
      .then(({ ok, status, body }) => {
        if (mine !== serial) return; // an older answer arriving late
        if (ok) show(body);
        else {
          const fields = Object.entries(body.errors || {}).map(([k, v]) => `${k}: ${v.join(" ")}`).join("; ");
          fail(`Cannot count this selection (${status}): ${fields || body.detail}`);
        }
      })
      .catch(() => { if (mine === serial) fail("Could not count the selection just now; change a field to try again."); });
  }
  function later() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  form.addEventListener("change", later);
  form.addEventListener("input", later);
  refresh();
})();
