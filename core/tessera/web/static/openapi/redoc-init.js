// Starts Redoc on /schema (a static file: the pages allow no inline script). The OpenAPI
// document's URL comes from the page (data-spec-url on #redoc).
(function () {
  "use strict";
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-spec-url"), {}, root);
})();
