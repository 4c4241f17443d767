/* The image browser's bulk bar: "All on this page" ticks every image shown, and the bar counts the
   ticked ones (also after htmx swaps in another page of results). */
(function () {
  "use strict";
  const bar = document.getElementById("bulk-form");
  if (!bar) return;
  const boxes = () => Array.from(document.querySelectorAll('input[name="ids"][form="bulk-form"]'));
  function count() {
    const n = boxes().filter((b) => b.checked).length;
    bar.querySelector(".bulk-count").textContent = `${n} ticked`;
  }
  bar.querySelector(".select-page").addEventListener("change", (e) => {
    boxes().forEach((b) => { b.checked = e.target.checked; });
    count();
  });
  document.addEventListener("change", (e) => { if (e.target.name === "ids") count(); });
  document.body.addEventListener("htmx:afterSwap", () => { bar.querySelector(".select-page").checked = false; count(); });
})();
