// Shared by every page.
(function () {
  "use strict";
  // Forms answer 400 with their errors (and store nothing); htmx leaves 4xx responses unswapped unless told.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
