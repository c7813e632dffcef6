// Arrow keys on the search results page (/app/search): Down / Up move the focus between the
// search box and the result links, in page order. Without this script the results are plain
// links that Tab reaches in the same order.
(function () {
  "use strict";
  function stops() {
    var box = document.querySelector("[data-results-box]");
    var links = Array.prototype.slice.call(document.querySelectorAll("a[data-result]"));
    return box ? [box].concat(links) : links;
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var list = stops();
    var at = list.indexOf(document.activeElement);
    if (at === -1) return;
    var next = event.key === "ArrowDown" ? at + 1 : at - 1;
    if (next < 0 || next >= list.length) return;
    event.preventDefault();
    list[next].focus();
  });
})();
