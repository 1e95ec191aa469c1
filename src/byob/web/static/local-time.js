// Progressive enhancement: a UTC time (<time datetime="…" data-local-time>) also in the
// viewer's own time zone. Without this script the page shows the UTC text alone.
(function () {
  "use strict";
  var two = function (n) { return (n < 10 ? "0" : "") + n; };
  document.querySelectorAll("time[data-local-time]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) return;
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    var text = when.getFullYear() + "-" + two(when.getMonth() + 1) + "-" + two(when.getDate()) +
      " " + two(when.getHours()) + ":" + two(when.getMinutes()) + " your time" +
      (zone ? " (" + zone + ")" : "");
    var local = document.createElement("span");
    local.className = "local-time";
    local.textContent = " · " + text;
    el.insertAdjacentElement("afterend", local);
  });
})();
