/* The annotator's work page: keyboard, timing, idempotency keys and the image prefetch.

   Every action (answer, skip, undo) is an htmx POST whose response is the next item's fragment for
   #annotate-item. Before it is shown, its images are fetched and decoded:

   - on htmx:beforeSwap we read the <img> sources out of the response, load each with `new Image()` and
     `decode()`, cancel htmx's swap (shouldSwap = false) and do it ourselves with htmx.swap() once they are
     decoded (or failed, or 5 s passed: a broken image must not block the page, it is what `b` reports).
     The decoded images sit in the browser's memory cache under the same URLs (they are served with
     `Cache-Control: private, max-age=86400`), so the swapped-in <img> elements paint at once: no blank flash.
   - the first item's images are announced with <link rel=preload> in the page's head, so they load in
     parallel with the scripts.

   Time spent (`seconds`) runs from the moment the item's images have loaded to the answer. The client key
   is drawn once per displayed lease and kept in sessionStorage: a retried POST (a lost response, a double
   press, a reload) carries the same key and the server stores one verdict. */
(function () {
  "use strict";

  var CONTAINER_ID = "annotate-item";
  var PRELOAD_TIMEOUT_MS = 5000;
  var OPTION_KEYS = ["1", "2", "3", "4", "5"];

  var busy = false;            // a request is in flight or its swap waits for images: keys are ignored
  var swapPending = false;
  var shownAt = null;          // performance.now() when the current item's images had loaded
  var shownLease = null;       // the lease shownAt belongs to: a re-render of the same item keeps its clock
  var undoTimer = null;
  var memoryKeys = {};         // fallback when sessionStorage is unavailable

  function container() { return document.getElementById(CONTAINER_ID); }
  function frame() { var box = container(); return box && box.querySelector("[data-annotate-fragment]"); }

  function randomKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);  // works on plain http too, unlike crypto.randomUUID
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function clientKey(lease) {
    var name = "annotate-key-" + lease;
    try {
      var stored = window.sessionStorage.getItem(name);
      if (!stored) { stored = randomKey(); window.sessionStorage.setItem(name, stored); }
      return stored;
    } catch (e) {
      memoryKeys[name] = memoryKeys[name] || randomKey();
      return memoryKeys[name];
    }
  }

  function showMessage(text, level) {
    var message = document.getElementById("annotate-message");
    if (!message) return;
    message.textContent = text;
    message.className = "annotate-message message-" + (level || "info");
  }

  // --- A new item on screen: time it once its images have loaded, and run the undo countdown. -------------

  function forgetOtherKeys(lease) {
    // Once another item is on screen the old one's POST can no longer be retried: drop its key.
    try {
      for (var i = window.sessionStorage.length - 1; i >= 0; i -= 1) {
        var name = window.sessionStorage.key(i);
        if (name && name.indexOf("annotate-key-") === 0 && name !== "annotate-key-" + lease) {
          window.sessionStorage.removeItem(name);
        }
      }
    } catch (e) { /* storage unavailable: nothing kept */ }
  }

  function itemShown() {
    var current = frame();
    startUndoCountdown();
    if (!current) { shownAt = null; shownLease = null; return; }
    var lease = current.dataset.lease || null;
    if (lease && lease === shownLease && shownAt !== null) {
      current.setAttribute("data-ready", "");  // the same item again (an error message): its clock runs on
      return;
    }
    shownAt = null;
    shownLease = lease;
    if (lease) forgetOtherKeys(lease);
    var images = Array.prototype.slice.call(current.querySelectorAll(".annotate-images img"));
    var waiting = images.filter(function (img) { return !img.complete; });
    var ready = function () {
      if (current !== frame()) return;
      shownAt = performance.now();
      current.setAttribute("data-ready", "");
    };
    if (!waiting.length) { ready(); } else {
      var left = waiting.length;
      waiting.forEach(function (img) {
        var done = function () { left -= 1; if (left === 0) ready(); };
        img.addEventListener("load", done, { once: true });
        img.addEventListener("error", done, { once: true });  // a broken image still lets the item be judged
      });
    }
  }

  function startUndoCountdown() {
    if (undoTimer) { clearInterval(undoTimer); undoTimer = null; }
    var button = document.getElementById("undo-button");
    if (!button) return;
    var left = parseInt(button.getAttribute("data-undo-left") || "0", 10);
    var countdown = button.querySelector("[data-undo-countdown]");
    var until = performance.now() + left * 1000;
    var tick = function () {
      var seconds = Math.ceil((until - performance.now()) / 1000);
      if (seconds <= 0) {
        button.disabled = true;
        if (countdown) countdown.textContent = "";
        clearInterval(undoTimer);
        undoTimer = null;
        return;
      }
      button.disabled = false;
      if (countdown) countdown.textContent = seconds + " s";
    };
    if (left > 0) { tick(); undoTimer = setInterval(tick, 250); } else { button.disabled = true; }
  }

  // --- Requests: add time and key, one at a time. ------------------------------------------------------------

  function ours(event) {
    var target = event.detail && event.detail.target;
    return !!(target && target.id === CONTAINER_ID);
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (!ours(event)) return;
    if (busy) { event.preventDefault(); return; }  // a double press while the first is under way
    busy = true;
  });

  document.addEventListener("htmx:configRequest", function (event) {
    if (!ours(event) || !/\/answer\/$/.test(event.detail.path)) return;
    var current = frame();
    if (!current || !current.dataset.lease) return;
    var seconds = shownAt === null ? 0 : (performance.now() - shownAt) / 1000;
    event.detail.parameters.seconds = seconds.toFixed(3);
    event.detail.parameters.client_key = clientKey(current.dataset.lease);
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (ours(event) && !swapPending) busy = false;
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (!ours(event)) return;
    busy = false;
    showMessage("The server could not be reached. Press the key again to retry: a repeated answer is stored once.",
                "error");
  });

  document.addEventListener("htmx:responseError", function (event) {
    if (!ours(event)) return;
    busy = false;
    var status = event.detail.xhr.status;
    showMessage(status === 404 ? "This queue is no longer open to you. Go back to your queues."
                               : "The server answered with an error (" + status + "). Try again.", "error");
  });

  // --- Swap only once the new item's images are decoded. ----------------------------------------------------

  function imageSources(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.map.call(template.content.querySelectorAll("img[src]"), function (img) {
      return img.getAttribute("src");
    });
  }

  function preload(sources) {
    var loads = sources.map(function (src) {
      var image = new Image();
      image.src = src;
      return image.decode().catch(function () {});  // a failed image is swapped in as it is
    });
    var timeout = new Promise(function (resolve) { setTimeout(resolve, PRELOAD_TIMEOUT_MS); });
    return Promise.race([Promise.all(loads), timeout]);
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!ours(event)) return;
    var detail = event.detail;
    var status = detail.xhr.status;
    // 400 (bad input), 409 (already answered, nothing to undo) and 410 (lease expired) carry the item to show
    // next with a message saying what happened.
    if (status === 400 || status === 409 || status === 410) { detail.shouldSwap = true; detail.isError = false; }
    if (!detail.shouldSwap) return;
    var html = detail.serverResponse;
    if (html.indexOf("data-annotate-fragment") === -1) {
      // Not our fragment: the session ended and the request was redirected to the login page.
      detail.shouldSwap = false;
      busy = false;
      showMessage("Your session has ended. Reload the page to log in again.", "error");
      return;
    }
    detail.shouldSwap = false;
    swapPending = true;
    preload(imageSources(html)).then(function () {
      htmx.swap(detail.target, html, { swapStyle: "innerHTML" });
      swapPending = false;
      busy = false;
      itemShown();
    });
  });

  // --- Keyboard. --------------------------------------------------------------------------------------------

  function typing(element) {
    if (!element) return false;
    var tag = element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
  }

  function openSkip(broken) {
    var panel = document.getElementById("skip-panel");
    if (!panel) return;
    panel.open = true;
    var checkbox = panel.querySelector("input[name=broken]");
    if (checkbox) checkbox.checked = !!broken;
    var reason = panel.querySelector("input[name=reason]");
    if (reason) reason.focus();
  }

  function closeSkip() {
    var panel = document.getElementById("skip-panel");
    if (!panel) return;
    panel.open = false;
    var reason = panel.querySelector("input[name=reason]");
    if (reason) { reason.value = ""; reason.blur(); }
  }

  document.addEventListener("keydown", function (event) {
    if (!container()) return;
    if (event.key === "Escape" && event.target && event.target.closest && event.target.closest("#skip-panel")) {
      event.preventDefault();
      closeSkip();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.shiftKey || event.repeat) return;
    if (typing(event.target)) return;
    var key = event.key.toLowerCase();
    if (busy) {
      if (OPTION_KEYS.indexOf(key) !== -1 || "sbu".indexOf(key) !== -1) event.preventDefault();
      return;
    }
    var current = frame();
    if (!current) return;
    if (key === "s" || key === "b") {
      if (!document.getElementById("skip-panel")) return;
      event.preventDefault();  // or the letter lands in the reason field that gets the focus
      openSkip(key === "b");
      return;
    }
    if (OPTION_KEYS.indexOf(key) !== -1 && !current.hasAttribute("data-ready")) return;  // images still loading
    var button = current.querySelector('button[data-key="' + key + '"]');
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();
  });

  // Clicks on the "Skip" / "Broken images" labels of the panel open it in that mode.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("#skip-panel summary [data-key]");
    if (opener) {
      event.preventDefault();
      openSkip(opener.getAttribute("data-key") === "b");
      return;
    }
    if (event.target.closest && event.target.closest("[data-skip-cancel]")) closeSkip();
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", itemShown);
  } else {
    itemShown();
  }
})();
