// Live progress for a running job or rotation (progressive enhancement:
// without this script the page refreshes itself through <noscript>).
// It listens to /events for the credential, lists each step and target
// as it happens, and reloads the page when the rotation finishes.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var list = document.getElementById("live-events");
  var cred = live.getAttribute("data-credential");
  var reload = function () { window.location.reload(); };
  // A rotation can finish before the stream connects: look again now and then.
  var fallback = window.setTimeout(reload, 5000);
  var es = new EventSource("/events?credential=" + encodeURIComponent(cred));
  es.addEventListener("progress", function (msg) {
    var ev = JSON.parse(msg.data);
    var li = document.createElement("li");
    li.className = "s-" + ev.status;
    li.textContent = ev.step + (ev.target ? " · " + ev.target : "") + ": " + ev.status + (ev.detail ? " — " + ev.detail : "");
    list.appendChild(li);
    window.clearTimeout(fallback);
    fallback = window.setTimeout(reload, 5000);
    if (ev.step === "finish" && (ev.status === "done" || ev.status === "failed")) {
      es.close();
      window.setTimeout(reload, 400);
    }
    if (ev.status === "failed" && ev.step !== "publish") {
      es.close();
      window.setTimeout(reload, 400);
    }
  });
})();
