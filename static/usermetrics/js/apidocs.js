/* apidocs.js — the API docs page: Swagger UI (vendored, a classic script defining the global
 * SwaggerUIBundle, loaded before this module) over the schema at data-schema-url.
 */
const node = document.getElementById("um-swagger");
if (node && window.SwaggerUIBundle) {
  window.SwaggerUIBundle({
    url: node.dataset.schemaUrl,
    domNode: node,
    // No deep links: they put a link inside each operation's button (nested controls for a screen reader).
    deepLinking: false,
    // Same-origin requests carry the staff session; no token to paste for a logged-in operator.
    withCredentials: true,
    validatorUrl: null, // never ask an outside validator (and the CSP would refuse it)
    defaultModelsExpandDepth: 0,
  });
}
