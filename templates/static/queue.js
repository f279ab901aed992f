// The moderation queue's keyboard and in-place decisions.
// Every form also works without this script (post, redirect, message);
// with it, decisions are sent with fetch and the page stays where it is.
"use strict";

(function () {
  const live = document.getElementById("live");
  const help = document.getElementById("help");
  const bulkForm = document.getElementById("bulk-form");
  const selectedCount = document.getElementById("selected-count");
  const selectAll = document.getElementById("select-all");
  let current = -1;

  function cards() {
    return Array.from(document.querySelectorAll("article.card:not(.decided):not(.elsewhere)"));
  }

  function announce(message, isError) {
    if (!live) return;
    const line = document.createElement("p");
    line.className = isError ? "notice notice-error" : "notice";
    line.textContent = message;
    live.replaceChildren(line);
  }

  // The current card is remembered as an element: cards decided elsewhere leave the
  // navigation without moving the moderator's place.
  let currentCardEl = null;

  function syncCurrent() {
    const index = currentCardEl ? cards().indexOf(currentCardEl) : -1;
    if (index >= 0) current = index;
  }

  function focusCard(index, afterDecision) {
    const list = cards();
    if (list.length === 0) {
      current = -1;
      // After a decision the announcement says what was done; it is never overwritten.
      announce((afterDecision ? afterDecision + " " : "") + "No more posts on this page.", false);
      return;
    }
    current = Math.max(0, Math.min(index, list.length - 1));
    currentCardEl = list[current];
    list.forEach((card, i) => card.classList.toggle("current", i === current));
    list[current].focus();
    list[current].scrollIntoView({ block: "nearest" });
  }

  function currentCard() {
    // The card with focus is the one a key acts on, even one decided elsewhere meanwhile
    // (the server then refuses the stale decision and says why).
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("article.card") : null;
    if (focused) return focused;
    syncCurrent();
    const list = cards();
    if (current < 0 || current >= list.length) focusCard(0);
    return cards()[current] || null;
  }

  function updateSelected() {
    if (selectedCount) {
      selectedCount.textContent = String(document.querySelectorAll("input.select:checked").length);
    }
  }

  function markDecided(card, status) {
    card.classList.add("decided");
    card.classList.remove("current");
    const label = card.querySelector(".status");
    if (label) label.textContent = status;
    card.querySelectorAll("form.decide, .select-box").forEach((el) => el.remove());
  }

  async function send(form, action) {
    const data = new FormData(form);
    data.set("action", action);
    let response;
    try {
      // Not form.action: the buttons are named "action", which shadows the property.
      response = await fetch(form.getAttribute("action"), {
        method: "POST",
        body: data,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (error) {
      return { ok: false, message: "The server did not answer; nothing was changed. Try again." };
    }
    if (response.status === 401 || response.status === 303) {
      return { ok: false, message: "Your session has ended: log in again. Nothing was changed.", login: true };
    }
    try {
      const body = await response.json();
      if (typeof body.message === "string") return body;
      return { ok: false, message: body.detail || "The decision was refused." };
    } catch (error) {
      return { ok: false, message: "Unexpected answer from the server (" + response.status + ")." };
    }
  }

  function updateCounts(counts) {
    if (!counts) return;
    document.querySelectorAll(".tabs .count[data-tab]").forEach((span) => {
      const value = counts[span.dataset.tab];
      if (typeof value === "number") span.textContent = value.toLocaleString("en-GB");
    });
  }

  // The last decision stays on screen with its Undo button, whatever is announced next.
  function offerUndo(undo, csrfToken) {
    let form = document.querySelector("form.last-decision");
    if (!undo) {
      if (form) form.remove();
      return;
    }
    if (!form) {
      form = document.createElement("form");
      form.method = "post";
      form.action = "/queue/undo";
      form.className = "last-decision";
      if (live) live.after(form);
      else document.body.prepend(form);
    }
    const field = (name, value) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      return input;
    };
    const text = document.createElement("p");
    text.textContent = "Your last decision: " + undo.label + ". ";
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "undo";
    button.textContent = "Undo";
    text.append(button);
    form.replaceChildren(
      field("csrf_token", csrfToken),
      field("event_id", String(undo.event_id)),
      field("return_to", window.location.pathname + window.location.search),
      text,
    );
  }

  async function decideCard(card, action) {
    const form = card.querySelector("form.decide");
    if (!form) return;
    const message = form.querySelector(".card-message");
    const result = await send(form, action);
    if (message) message.textContent = result.ok ? "" : result.message;
    announce(result.message, !result.ok);
    if (result.ok) {
      const index = cards().indexOf(card);
      updateCounts(result.counts);
      offerUndo(result.undo, new FormData(form).get("csrf_token"));
      if (result.version) card.dataset.version = String(result.version);
      markDecided(card, result.status);
      updateSelected();
      focusCard(index, result.message);
    } else {
      card.classList.add(result.stale ? "stale" : "refused");
    }
  }

  function startReject(card) {
    const reason = card.querySelector("select.reason");
    if (reason) reason.focus();
  }

  function bindCards(root) {
  root.querySelectorAll("form.decide").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const action = event.submitter ? event.submitter.value : "approve";
      decideCard(form.closest("article.card"), action);
    });
    form.querySelectorAll("select.reason, input.note").forEach((field) => {
      field.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          decideCard(form.closest("article.card"), "reject");
        } else if (event.key === "Escape") {
          event.preventDefault();
          form.closest("article.card").focus();
        }
      });
    });
  });

  // The words read in an image, offered as the start of its alt text: they fill the alt
  // field for the moderator to check and edit; nothing is saved until the decision.
  document.querySelectorAll("button.use-alt").forEach((button) => {
    button.addEventListener("click", () => {
      const target = document.getElementById(button.dataset.altTarget);
      const source = document.getElementById(button.dataset.altSource);
      if (!target || !source) return;
      target.value = source.textContent;
      target.focus();
    });
  });

  // Alt text: Escape goes back to the card, so "a" approves with what was written.
  root.querySelectorAll(".media-list textarea").forEach((area) => {
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        const card = area.closest("article.card");
        if (card) card.focus();
      }
    });
  });
  }
  bindCards(document);

  if (bulkForm) {
    bulkForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const action = event.submitter ? event.submitter.value : "approve";
      const result = await send(bulkForm, action);
      announce(result.message, !result.ok);
      (result.decided || []).forEach((postId) => {
        const card = document.getElementById("post-" + postId);
        if (card) markDecided(card, action === "approve" ? "approved" : "rejected");
      });
      Object.keys(result.refused || {}).forEach((postId) => {
        const card = document.getElementById("post-" + postId);
        const message = card && card.querySelector(".card-message");
        if (message) message.textContent = result.refused[postId];
        if (card) card.classList.add("stale");
      });
      updateSelected();
    });
  }

  if (selectAll) {
    selectAll.hidden = false;
    selectAll.addEventListener("click", () => {
      document.querySelectorAll("article.card:not(.decided) input.select").forEach((box) => {
        box.checked = true;
      });
      updateSelected();
    });
  }
  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches("input.select")) updateSelected();
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, dialog[open]")) return;
    const reasonKey = /^[1-9]$/.test(event.key);
    const card = ["a", "r", "x", "m", "t"].includes(event.key) || reasonKey ? currentCard() : null;
    if (reasonKey) {
      // A number picks that reject reason and moves to Reject: Enter then rejects.
      const select = card && card.querySelector("select.reason");
      const option = select && select.options[Number(event.key)];
      if (option) {
        select.value = option.value;
        const reject = card.querySelector("button.reject");
        if (reject) reject.focus();
        event.preventDefault();
      }
      return;
    }
    syncCurrent();
    switch (event.key) {
      case "j":
        focusCard(current + 1);
        break;
      case "k":
        focusCard(current - 1);
        break;
      case "a":
        if (card) decideCard(card, "approve");
        break;
      case "r":
        if (card) startReject(card);
        break;
      case "x": {
        const box = card && card.querySelector("input.select");
        if (box) {
          box.checked = !box.checked;
          updateSelected();
        }
        break;
      }
      case "m": {
        // Reveal hidden media: a form post, so the reveal is on the record.
        const reveal = card && card.querySelector("form.reveal-form");
        if (reveal) reveal.requestSubmit();
        break;
      }
      case "t": {
        const alt = card && card.querySelector(".media-list textarea");
        if (alt) alt.focus();
        break;
      }
      case "n": {
        const next = document.querySelector("a[rel=next]");
        if (next) window.location.assign(next.href);
        break;
      }
      case "?":
        if (help && typeof help.showModal === "function") help.showModal();
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  document.addEventListener("focusin", (event) => {
    const card = event.target.closest && event.target.closest("article.card");
    if (card) {
      const index = cards().indexOf(card);
      if (index >= 0) {
        current = index;
        currentCardEl = card;
        cards().forEach((c, i) => c.classList.toggle("current", i === current));
      }
    }
  });

  // --- Live: what others did, what arrived, asked for every few seconds ---------------
  // Cards change in place and arrivals are appended at the end, so nothing the moderator
  // looks at moves and nothing typed (alt text, a reason) is thrown away.
  const liveSection = document.querySelector("section.cards[data-live]");
  const liveNotes = document.getElementById("queue-live");
  const POLL_MS = 4000;
  const POLL_CAP_MS = 60000;

  function liveNote(message, link) {
    if (!liveNotes) return;
    const line = document.createElement("p");
    line.className = "notice";
    line.textContent = message + (link ? " " : "");
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.textContent = link.text;
      line.append(anchor);
    }
    liveNotes.replaceChildren(line);
  }

  // Keep the card in view where it is when something above it grows or shrinks.
  function keepPlace(change) {
    const anchor = currentCardEl && currentCardEl.isConnected ? currentCardEl
      : Array.from(document.querySelectorAll("article.card")).find((c) => c.getBoundingClientRect().bottom > 0);
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    if (anchor && window.scrollY > 0) {
      const moved = anchor.getBoundingClientRect().top - before;
      if (moved !== 0) window.scrollBy(0, moved);
    }
  }

  function cardNote(card, kind, message) {
    let note = card.querySelector(".live-" + kind);
    if (!note) {
      note = document.createElement("p");
      note.className = "live-note live-" + kind;
      note.setAttribute("role", "note");
      const head = card.querySelector(".card-head");
      if (head) head.after(note);
      else card.prepend(note);
    }
    note.textContent = message;
  }

  function cardName(card) {
    const title = card.querySelector(".card-title");
    return title ? title.textContent.trim().replace(/\s+/g, " ") : "A post";
  }

  function changedElsewhere(card, change, tab) {
    card.dataset.version = String(change.version);
    card.classList.add("changed-elsewhere");
    const message = "Changed while you were looking (" + change.note + "): it is now " + change.status + "."
      + (change.status === tab || (tab === "flagged" && change.status === "pending")
        ? " Open its details to see the new version before deciding." : "");
    cardNote(card, "change", message);
    if (change.status !== tab && !(tab === "flagged" && change.status === "pending")) {
      // No longer this tab's to decide: out of j/k and bulk selection; what was typed stays.
      card.classList.add("elsewhere");
      card.classList.remove("current");
      card.querySelectorAll(".select-box input").forEach((el) => { el.checked = false; el.disabled = true; });
      updateSelected();
    }
    liveNote(cardName(card) + ": " + change.note + ".");
  }

  if (liveSection) {
    const tab = new URLSearchParams(liveSection.dataset.live.split("?")[1] || "").get("tab") || "pending";
    let tail = liveSection.dataset.tail || "";
    let delay = POLL_MS;
    let takedowns = null;
    let requested = null;
    let timer = null;

    const schedule = (ms) => {
      window.clearTimeout(timer);
      timer = window.setTimeout(poll, ms);
    };

    const apply = (body) => {
      keepPlace(() => {
        updateCounts(body.counts);
        (body.changed || []).forEach((change) => {
          const card = document.getElementById("post-" + change.post_id);
          if (!card) return;
          if (card.classList.contains("decided") && !card.classList.contains("changed-elsewhere")) {
            card.dataset.version = String(change.version); // our own decision, already shown
            return;
          }
          changedElsewhere(card, change, tab);
        });
        (body.gone || []).forEach((postId) => {
          const card = document.getElementById("post-" + postId);
          if (card) {
            cardNote(card, "change", "This post is no longer stored (erased or purged).");
            card.classList.add("elsewhere");
          }
        });
        const now = new Set(body.requested || []);
        if (requested !== null) {
          now.forEach((postId) => {
            const card = document.getElementById("post-" + postId);
            if (!requested.has(postId) && card) cardNote(card, "takedown", "A takedown request arrived for this post: see Takedown requests.");
          });
        }
        requested = now;
        if (body.arrivals) {
          const holder = document.createElement("template");
          holder.innerHTML = body.arrivals;
          const fresh = Array.from(holder.content.querySelectorAll("article.card"))
            .filter((card) => !document.getElementById(card.id));
          const empty = liveSection.querySelector(".empty");
          if (fresh.length && empty) empty.remove();
          fresh.forEach((card) => {
            liveSection.append(card);
            bindCards(card);
          });
          if (fresh.length) liveNote(fresh.length === 1 ? "1 new post added at the end of the list." : fresh.length + " new posts added at the end of the list.");
        }
      });
      if (body.tail) tail = body.tail;
      const count = body.counts && body.counts.takedowns;
      if (typeof count === "number") {
        // The navigation's count, on every staff page, follows too.
        document.querySelectorAll('.staff-nav a[href="/queue?tab=takedowns"]').forEach((link) => {
          const badge = link.querySelector(".count");
          if (badge) badge.textContent = count.toLocaleString("en-GB");
          link.classList.toggle("nav-urgent", count > 0);
        });
        if (takedowns !== null && count > takedowns) {
          liveNote("A takedown request arrived.", { href: "/queue?tab=takedowns", text: "Review takedown requests" });
        }
        takedowns = count;
      }
    };

    const poll = async () => {
      if (document.hidden) return; // visibilitychange polls again when the tab is shown
      const shown = Array.from(document.querySelectorAll("article.card"))
        .map((card) => card.dataset.postId + ":" + card.dataset.version).join(",");
      const url = liveSection.dataset.live + "&shown=" + encodeURIComponent(shown)
        + (tail ? "&tail=" + encodeURIComponent(tail) : "");
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.status === 401 || response.status === 403) {
          liveNote("The queue stopped updating: your session has ended. Log in again.");
          return;
        }
        if (!response.ok) throw new Error(String(response.status));
        apply(await response.json());
        delay = POLL_MS;
        schedule(POLL_MS);
      } catch (error) {
        // Back off with jitter; decisions still work and say if the server is away.
        delay = Math.min(delay * 2, POLL_CAP_MS);
        schedule(delay / 2 + Math.random() * delay / 2);
      }
    };

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) schedule(0);
    });
    schedule(POLL_MS);
  }
})();
