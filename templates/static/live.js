/* The live wall: follow /gallery/events and change the page in place.
   Cards arrive rendered by the server (the same markup as the page); this script only
   places them. Nothing is stored, no cookie is set, nothing is fetched from elsewhere.
   After a dropped connection it waits longer each time, with random jitter, so a server
   restart is not met by every open wall at the same instant. */
(function () {
  "use strict";
  var BACKOFF_START_MS = 1000;
  var BACKOFF_CAP_MS = 60000;

  function follow(url, since, handlers) {
    var attempt = 0;
    var source = null;
    function connect() {
      var target = url + (since ? (url.indexOf("?") < 0 ? "?" : "&") + "since=" + encodeURIComponent(since) : "");
      source = new EventSource(target);
      source.addEventListener("open", function () { attempt = 0; });
      ["approved", "removed", "paused", "reset"].forEach(function (kind) {
        source.addEventListener(kind, function (event) {
          if (event.lastEventId) since = event.lastEventId;
          var data = {};
          try { data = JSON.parse(event.data); } catch (error) { return; }
          handlers[kind](data);
        });
      });
      source.addEventListener("error", function () {
        // Our own back-off, not EventSource's fixed retry: close and come back later.
        source.close();
        attempt += 1;
        var cap = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * Math.pow(2, attempt));
        window.setTimeout(connect, cap / 2 + Math.random() * cap / 2);
      });
    }
    connect();
  }

  function fromHtml(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html;
    return holder.content.firstElementChild;
  }

  function byId(root, id) {
    var found = null;
    root.querySelectorAll("[data-id]").forEach(function (node) {
      if (node.getAttribute("data-id") === id) found = node;
    });
    return found;
  }

  // The first card still (partly) in view: it must not move when cards come or go above it.
  function anchorIn(list) {
    var cards = list.children;
    for (var i = 0; i < cards.length; i += 1) {
      if (cards[i].getBoundingClientRect().bottom > 0) return cards[i];
    }
    return null;
  }

  function keepingPlace(list, change) {
    var anchor = window.scrollY > 0 ? anchorIn(list) : null;
    var before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    if (anchor && anchor.isConnected) {
      var moved = anchor.getBoundingClientRect().top - before;
      if (moved !== 0) window.scrollBy(0, moved);
    }
  }

  // Focus must not vanish with a removed card: it moves to the next card, else the list.
  function removeCard(card, list) {
    if (card.contains(document.activeElement)) {
      var next = card.nextElementSibling || card.previousElementSibling;
      var target = next ? next.querySelector("a, summary") : null;
      if (target) target.focus();
      else if (list) { list.setAttribute("tabindex", "-1"); list.focus(); }
    }
    card.remove();
  }

  function announcer(selector) {
    var region = document.querySelector(selector);
    var count = 0;
    var timer = null;
    return function () {
      if (!region) return;
      count += 1;
      window.clearTimeout(timer);
      // A burst is one announcement, not one per card.
      timer = window.setTimeout(function () {
        region.textContent = count === 1 ? "1 new message." : count + " new messages.";
        count = 0;
      }, 1500);
    };
  }

  // Redraw from the page itself (paused, resumed, restyled, or events we missed).
  function reload(boxId, done) {
    window.fetch(window.location.href, { cache: "no-store", credentials: "omit" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById(boxId);
        var box = document.getElementById(boxId);
        if (fresh && box) done(box, document.importNode(fresh, true));
      })
      .catch(function () { /* keep what is shown; the next event tries again */ });
  }

  function wall(box) {
    var limit = Number(box.getAttribute("data-limit")) || 24;
    var announce = announcer(".gallery-announce");
    function part(selector) { return box.querySelector(selector); }
    follow(box.getAttribute("data-live"), box.getAttribute("data-since"), {
      approved: function (data) {
        var list = part(".gallery-stream");
        if (!list || !data.html || byId(box, data.id)) return;
        var card = fromHtml(data.html);
        if (!card) return;
        card.classList.add("post-new");
        keepingPlace(list, function () {
          list.prepend(card);
          list.hidden = false;
          var empty = part(".gallery-empty");
          if (empty) empty.hidden = true;
          // The page holds one page of cards however long it stays open.
          while (list.children.length > limit) removeCard(list.lastElementChild, list);
        });
        announce();
      },
      removed: function (data) {
        var card = byId(box, data.id);
        if (!card) return;
        var list = card.parentElement;
        keepingPlace(list, function () { removeCard(card, list); });
        var stream = part(".gallery-stream");
        if (stream && stream.children.length === 0) {
          stream.hidden = true;
          var empty = part(".gallery-empty");
          if (empty) empty.hidden = false;
        }
      },
      paused: function () {
        // Blank at once, without waiting for the server to answer a reload.
        box.querySelectorAll(".gallery-stream, .gallery-pinned, .gallery-empty").forEach(function (node) { node.remove(); });
        var notice = part(".gallery-paused");
        if (notice) notice.hidden = false;
      },
      reset: function () {
        reload("gallery-posts", function (old, fresh) {
          old.replaceChildren.apply(old, Array.prototype.slice.call(fresh.childNodes));
        });
      },
    });
  }

  if (!window.EventSource || !window.fetch) return;
  var wallBox = document.getElementById("gallery-posts");
  if (wallBox && wallBox.getAttribute("data-live")) wall(wallBox);
  // The event screen (screen.js) builds on the same pieces.
  window.hashtagMonitorLive = { follow: follow, fromHtml: fromHtml, byId: byId, announcer: announcer, reload: reload };
})();
