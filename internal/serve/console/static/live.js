// Live progress for a running job or rotation (progressive enhancement:
// without this script the page refreshes itself through <noscript>).
// It listens to /events for the credential and the job or rotation the
// page shows, lists each step and target as it happens, and reloads the
// page when the server says it is over (the "end" event), so the final
// outcome comes from the store, not from the stream.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var list = document.getElementById("live-events");
  var cred = live.getAttribute("data-credential");
  var follow = live.getAttribute("data-follow") || "";
  var reload = function () { window.location.reload(); };
  var note = document.getElementById("live-note");
  var state = document.querySelector("#job-state strong");
  if (note) { note.textContent = "Following live progress…"; }
  var es = new EventSource("/events?credential=" + encodeURIComponent(cred) + (follow ? "&" + follow : ""));
  es.addEventListener("progress", function (msg) {
    var ev = JSON.parse(msg.data);
    if (note) { note.textContent = "Live progress (each step and target as it runs):"; }
    if (state && state.textContent !== "running") { state.textContent = "running"; state.className = "j-running"; }
    var li = document.createElement("li");
    li.className = "s-" + ev.status;
    li.textContent = ev.step + (ev.target ? " · " + ev.target : "") + ": " + ev.status + (ev.detail ? " — " + ev.detail : "");
    list.appendChild(li);
  });
  es.addEventListener("end", function () {
    es.close();
    live.setAttribute("data-ended", "true");
    window.setTimeout(reload, 300);
  });
  // The stream drops (a restart, a proxy): the page reads the state again.
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) { window.setTimeout(reload, 2000); }
  };
})();
