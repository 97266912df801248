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

  // The step page's spam score: SpamAssassin takes a second or more, so the page shows
  // without it, and the score is asked for once its section scrolls into view (a page
  // reloaded on every save does not start SpamAssassin unless someone is looking).
  function loadSpamScore(slot) {
    slot.innerHTML = "<p class=\"muted\">Scoring with SpamAssassin…</p>";
    fetch(slot.getAttribute("data-spam-src"), { credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var result = page.getElementById("spam-result");
        slot.innerHTML = "";
        if (result) {
          slot.appendChild(document.importNode(result, true));
        } else {
          slot.textContent = "No spam score: the email does not render.";
        }
      })
      .catch(function () { slot.textContent = "No spam score: the preview server did not answer."; });
  }
  var slots = document.querySelectorAll("[data-spam-src]");
  if (slots.length && window.IntersectionObserver) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) {
          observer.unobserve(entry.target);
          loadSpamScore(entry.target);
        }
      });
    });
    for (var j = 0; j < slots.length; j++) observer.observe(slots[j]);
  } else {
    for (var k = 0; k < slots.length; k++) loadSpamScore(slots[k]);
  }

  document.documentElement.classList.add("js");
  var selects = document.querySelectorAll("select[data-autosubmit]");
  for (var i = 0; i < selects.length; i++) {
    selects[i].addEventListener("change", function (event) {
      event.target.form.submit();
    });
  }
})();
