/* dom.js — small DOM helpers shared by the pages: look-ups, the change flash, cells set from values.
 *
 * Data from the server only ever reaches the DOM as text (textContent, attribute values,
 * URL-encoded hrefs), never as HTML.
 */

export function byId(id) {
  return document.getElementById(id);
}

export function flash(node) {
  node.classList.remove("um-flash");
  // Re-adding on the next frame restarts the animation without forcing a layout.
  window.requestAnimationFrame(function () {
    node.classList.add("um-flash");
  });
}

// Set a cell's text from a raw value; flash it when the value changed since the last frame.
export function setValue(node, raw, text, animate) {
  const key = String(raw);
  const had = node.dataset.v !== undefined;
  const changed = had && node.dataset.v !== key;
  node.dataset.v = key;
  if (node.textContent !== text) node.textContent = text;
  if (changed && animate) flash(node);
}

