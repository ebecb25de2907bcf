// replyflow inbox: live updates by server-sent events, template previews. No build step.
(function () {
  "use strict";
  var pending = null;

  // a part where the agent is typing is not replaced (their text would be lost)
  function typingIn(el) {
    return !!el.dataset.keepTyping && Array.prototype.some.call(
      el.querySelectorAll("textarea, input:not([type=hidden])"),
      function (f) { return f === document.activeElement || (f.tagName === "TEXTAREA" && f.value); });
  }

  function refresh() {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      if (typingIn(el)) return;
      fetch(el.dataset.refresh, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (html) {
        // asked again: the agent may have started typing while the fetch was on its way
        if (html !== null && html !== el.innerHTML && !typingIn(el)) { el.innerHTML = html; wirePreviews(el); }
      });
    });
  }

  function listen() {
    var url = document.body.dataset.events;
    if (!url || !window.EventSource) return;
    var live = document.getElementById("live");
    var offline = null;
    // The page's URL carries the cursor it was rendered at, a reconnection the last event's id: the
    // server compares them with the database and says "change" when anything moved, so opening
    // (and re-opening after each short stream) refreshes nothing by itself.
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      clearTimeout(offline);
      if (live) live.classList.add("on");
    });
    source.addEventListener("error", function () {
      // a stream that ended is asked for again after the server's retry delay: "off" only when
      // that does not come back (or the browser gave up)
      clearTimeout(offline);
      offline = setTimeout(function () { if (live) live.classList.remove("on"); },
                           source.readyState === EventSource.CLOSED ? 0 : 5000);
    });
    source.addEventListener("change", function () {
      clearTimeout(pending);
      pending = setTimeout(refresh, 100);
    });
    source.addEventListener("signed-out", function () {
      // signed out (here or elsewhere), expired or deactivated: to the sign-in page, then back here
      source.close();
      var signin = document.body.dataset.signin || "/inbox/login";
      window.location.assign(signin + "?next=" + encodeURIComponent(location.pathname + location.search));
    });
  }

  function wirePreviews(root) {
    root.querySelectorAll("form.template").forEach(function (form) {
      var pre = form.querySelector(".preview");
      if (!pre) return;
      var update = function () {
        var params = new URLSearchParams(new FormData(form));
        params.delete("csrf_token");
        fetch(pre.dataset.preview + "?" + params.toString(), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (data) { pre.textContent = data.text; pre.classList.toggle("bad", !data.ok); });
      };
      form.addEventListener("input", update);
      update();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    listen();
    wirePreviews(document);
    var history = document.querySelector(".history");
    if (history) history.scrollTop = history.scrollHeight;
  });
})();
