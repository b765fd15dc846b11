// Opinion pages: filters apply as soon as a choice changes, the print button prints the
// briefing. Kept in a file (no inline handlers) so a strict Content-Security-Policy holds.
"use strict";

document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});
document.querySelectorAll("[data-print]").forEach((button) => {
  button.addEventListener("click", () => window.print());
});
