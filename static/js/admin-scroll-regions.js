// A tabular inline (a deposit's copies) is wider than a phone and scrolls sideways in
// its own box. A box that scrolls gets tabindex, a role and a name, so a keyboard can
// reach and scroll it too (WCAG 2.1.1; axe: scrollable-region-focusable).
"use strict";
(function () {
  function markScrollable() {
    document.querySelectorAll(".inline-group").forEach(function (box) {
      if (box.scrollWidth <= box.clientWidth || box.hasAttribute("tabindex")) {
        return;
      }
      var heading = box.querySelector("h2");
      box.tabIndex = 0;
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", heading ? heading.textContent.trim() : "Table");
    });
  }
  document.addEventListener("DOMContentLoaded", markScrollable);
  window.addEventListener("resize", markScrollable);
})();
