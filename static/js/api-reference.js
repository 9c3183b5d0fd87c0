/* The staff API reference: Swagger UI over /api/v1/openapi.json. Unsafe calls made with the
   staff session carry its CSRF token (read from /auth/me, refreshed by a login made here);
   calls made with a pasted token need none. No inline script: the page's CSP allows only files. */
(function () {
  "use strict";
  var csrfToken = null;
  var body = document.body;

  function remember(text) {
    try {
      var answer = JSON.parse(text);
      if (answer && typeof answer.csrf_token === "string") csrfToken = answer.csrf_token;
    } catch (e) { /* not JSON */ }
  }

  fetch(body.dataset.me, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) { return response.ok ? response.text() : ""; })
    .then(remember)
    .catch(function () {});

  window.addEventListener("DOMContentLoaded", function () {
    window.ui = window.SwaggerUIBundle({
      url: body.dataset.openapi,
      dom_id: "#swagger-ui",
      deepLinking: true,
      tryItOutEnabled: false,
      requestInterceptor: function (request) {
        var safe = /^(GET|HEAD|OPTIONS)$/i.test(request.method || "GET");
        if (!safe && csrfToken && !request.headers.Authorization) request.headers["X-CSRFToken"] = csrfToken;
        return request;
      },
      responseInterceptor: function (response) {
        if (response && typeof response.text === "string") remember(response.text);
        return response;
      }
    });
  });
})();
