// A mailing's progress (/marketing/mailings/{id}) while it is being sent: the recipients per
// state are read again every two seconds from GET /api/marketing/mailings/{id}/progress until
// the mailing is no longer sending. Without JavaScript, reloading the page shows the same.
(function () {
  "use strict";
  var box = document.querySelector("[data-mailing-progress]");
  if (!box || box.getAttribute("data-status") !== "sending") {
    return;
  }
  var bar = box.querySelector("[data-progress-bar]");
  function poll() {
    fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        var total = 0;
        var done = 0;
        ["queued", "sending", "sent", "failed", "late", "skipped"].forEach(function (state) {
          var cell = box.querySelector('[data-progress="' + state + '"]');
          if (cell) {
            cell.textContent = data[state];
          }
          total += data[state];
          if (state !== "queued" && state !== "sending") {
            done += data[state];
          }
        });
        if (bar) {
          bar.max = total || 1;
          bar.value = done;
        }
        if (data.status === "sending") {
          setTimeout(poll, 2000);
        } else {
          window.location.reload();
        }
      });
  }
  setTimeout(poll, 2000);
})();
