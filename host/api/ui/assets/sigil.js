// Sigil's own script for the admin UI (no inline script is allowed by the page's policy).
// Copy buttons: <button data-copy="ELEMENT-ID">, copies the element's text to the clipboard.
"use strict";
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button[data-copy]");
  if (!b) return;
  ev.preventDefault();
  var el = document.getElementById(b.getAttribute("data-copy"));
  if (!el) return;
  var text = el.value !== undefined ? el.value : el.textContent;
  var done = function () { b.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () {
      el.select && el.select();
    });
  } else if (el.select) {
    el.select();
    document.execCommand("copy");
    done();
  }
});
// "Custom" expiry: the date input is only needed (and required) when "Custom" is chosen.
function syncCustom() {
  var sel = document.getElementById("expires");
  var date = document.getElementById("expires_custom");
  if (!sel || !date) return;
  var custom = sel.value === "custom";
  date.required = custom;
  date.closest(".field").hidden = !custom;
}
document.addEventListener("change", function (ev) {
  if (ev.target.id === "expires") syncCustom();
});
document.addEventListener("DOMContentLoaded", syncCustom);
document.addEventListener("htmx:afterSettle", syncCustom);
// Logo uploads: a preview of the chosen file, and the server's own checks (PNG or JPEG, at most
// 256 KiB) said before sending. <input type="file" data-preview="IMG-ID" data-check="ID">.
document.addEventListener("change", function (ev) {
  var input = ev.target;
  if (input.type !== "file" || !input.hasAttribute("data-preview")) return;
  var img = document.getElementById(input.getAttribute("data-preview"));
  var note = document.getElementById(input.getAttribute("data-check"));
  var f = input.files && input.files[0];
  if (!img || !f) return;
  var ok = (f.type === "image/png" || f.type === "image/jpeg") && f.size <= 256 * 1024;
  if (note) note.textContent = ok ? "" : "The logo must be a PNG or JPEG image of at most 256 KiB.";
  if (ok) {
    img.src = URL.createObjectURL(f);
    img.hidden = false;
    // The server's complaint was about the file this one replaces.
    var old = document.getElementById(input.id + "-error");
    if (old) old.hidden = true;
  }
});
