// Starts Swagger UI on /schema/swagger (a static file: the pages allow no inline script).
// The OpenAPI document's URL comes from the page (data-spec-url on #swagger-ui). Writes made
// with the session cookie need the CSRF token, which /api/auth/me tells the signed-in user.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var csrf = null;
  fetch("/api/auth/me", { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (me) { csrf = me && me.csrf_token; })
    .catch(function () {});
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    requestInterceptor: function (request) {
      if (csrf && request.method && request.method.toUpperCase() !== "GET") {
        request.headers["X-CSRF-Token"] = csrf;
      }
      return request;
    }
  });
})();
