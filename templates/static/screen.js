/* The event screen: the live pieces of live.js, laid out as a slideshow or a mosaic.
   Under the kill switch nothing of any post stays on screen; when the server cannot be
   reached the screen keeps what it shows and says nothing (live.js retries quietly). */
(function () {
  "use strict";
  var SLIDE_MS = 10000;
  var live = window.hashtagMonitorLive;
  var box = document.getElementById("screen-posts");
  if (!live || !box || !box.getAttribute("data-live")) return;
  var follow = live.follow, fromHtml = live.fromHtml, byId = live.byId;
  var announcer = live.announcer, reload = live.reload;

  var limit = Number(box.getAttribute("data-limit")) || 24;
  var slideshow = box.getAttribute("data-mode") === "slideshow";
  var announce = announcer(".screen-announce");
  var pauseButton = document.querySelector(".screen-pause");
  var held = false;
  var current = -1;
  var timer = null;
  function list() { return box.querySelector(".screen-list"); }
  function waiting(show) {
    var note = box.querySelector(".screen-waiting");
    if (note) note.hidden = !show;
  }
  function show(index) {
    var items = list() ? list().children : [];
    if (!items.length) { current = -1; return; }
    current = ((index % items.length) + items.length) % items.length;
    for (var i = 0; i < items.length; i += 1) items[i].classList.toggle("is-current", i === current);
  }
  function rotate() {
    window.clearTimeout(timer);
    if (!slideshow) return;
    timer = window.setTimeout(function () {
      if (!held) show(current + 1);
      rotate();
    }, SLIDE_MS);
  }
  var fullscreen = document.querySelector(".screen-fullscreen");
  if (fullscreen && document.fullscreenEnabled) {
    fullscreen.hidden = false;
    fullscreen.addEventListener("click", function () {
      document.documentElement.requestFullscreen().catch(function () { /* the browser said no */ });
    });
    document.addEventListener("fullscreenchange", function () {
      fullscreen.hidden = Boolean(document.fullscreenElement);
    });
  }
  if (slideshow) {
    show(0);
    rotate();
    if (pauseButton) {
      pauseButton.hidden = false;
      pauseButton.addEventListener("click", function () {
        held = !held;
        pauseButton.setAttribute("aria-pressed", held ? "true" : "false");
        pauseButton.textContent = held ? "Play the slideshow" : "Pause the slideshow";
      });
    }
  }
  follow(box.getAttribute("data-live"), box.getAttribute("data-since"), {
    approved: function (data) {
      var items = list();
      if (!items || !data.html || byId(box, data.id)) return;
      var card = fromHtml(data.html);
      if (!card) return;
      items.prepend(card);
      items.hidden = false;
      waiting(false);
      while (items.children.length > limit) items.lastElementChild.remove();
      // The newest message is shown next, for a full slide.
      if (slideshow) { show(0); rotate(); }
      announce();
    },
    removed: function (data) {
      var card = byId(box, data.id);
      if (!card) return;
      var wasCurrent = card.classList.contains("is-current");
      card.remove();
      if (!list() || list().children.length === 0) waiting(true);
      else if (slideshow && wasCurrent) show(current);
    },
    paused: function () {
      // The kill switch: nothing of any post stays on screen.
      if (list()) list().replaceChildren();
      if (list()) list().hidden = true;
      waiting(true);
    },
    reset: function () {
      reload("screen-posts", function (old, fresh) {
        old.replaceChildren.apply(old, Array.prototype.slice.call(fresh.childNodes));
        waiting(!list() || list().children.length === 0 || list().hidden);
        if (slideshow) { show(0); rotate(); }
      });
    },
  });
})();
