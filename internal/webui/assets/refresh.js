// Reloads the page every data-refresh seconds while it is visible, so a
// status page left open stays current. The page is complete without it.
"use strict";
(function () {
  var seconds = Number(document.body.getAttribute("data-refresh") || 0);
  if (!(seconds > 0)) {
    return;
  }
  var note = document.getElementById("refresh-note");
  if (note) {
    note.textContent = "It refreshes every " + seconds + " s while visible.";
  }
  var timer = 0;
  function arm() {
    clearTimeout(timer);
    if (!document.hidden) {
      timer = setTimeout(function () { location.reload(); }, seconds * 1000);
    }
  }
  document.addEventListener("visibilitychange", arm);
  arm();
})();
