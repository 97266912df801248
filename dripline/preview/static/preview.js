// dripline preview: refresh when a campaign or template changes (server-sent events),
// and submit the subscriber switcher on change. Everything works without this file,
// except the automatic refresh.
(function () {
  "use strict";
  var shown = document.documentElement.getAttribute("data-version");
  var status = document.getElementById("live-status");

  function refreshIfNewer(event) {
    if (event.data && event.data !== shown) {
      if (status) status.textContent = "Change saved: refreshing";
      window.location.reload();
    }
  }

  if (window.EventSource) {
    var source = new EventSource("/events");
    source.addEventListener("hello", function (event) {
      if (status) status.textContent = "Live: pages refresh when you save";
      refreshIfNewer(event);
    });
    source.addEventListener("reload", refreshIfNewer);
    source.onerror = function () {
      if (status) status.textContent = "Preview server stopped: reconnecting";
    };
  }

  document.documentElement.classList.add("js");
  var selects = document.querySelectorAll("select[data-autosubmit]");
  for (var i = 0; i < selects.length; i++) {
    selects[i].addEventListener("change", function (event) {
      event.target.form.submit();
    });
  }
})();
