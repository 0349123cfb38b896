/* chartbase.js — what the charts and sparklines share: the theme's colours (the admin's CSS
 * variables, followed when the theme changes), a small element helper and the JSON fetch.
 */

export function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

export function theme() {
  return {
    fg: cssVar("--body-fg", "#333"),
    quiet: cssVar("--body-quiet-color", "#666"),
    grid: cssVar("--hairline-color", "#e8e8e8"),
    border: cssVar("--border-color", "#ccc"),
  };
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Re-run `callback` whenever the admin theme or the system colour scheme changes.
export function onThemeChange(callback) {
  const observer = new MutationObserver(callback);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (media && media.addEventListener) media.addEventListener("change", callback);
  return function () {
    observer.disconnect();
    if (media && media.removeEventListener) media.removeEventListener("change", callback);
  };
}

export function fetchJson(url) {
  return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
    if (r.ok) return r.json();
    // The API's errors say why in "detail" (a 503: the database cannot be reached); say that.
    const failed = new Error("HTTP " + r.status + " for " + url);
    return r.json().then(
      function (body) { throw body && typeof body.detail === "string" ? new Error(body.detail) : failed; },
      function () { throw failed; }
    );
  });
}
