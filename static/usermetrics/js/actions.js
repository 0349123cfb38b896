/* actions.js — the user page's Actions panel: a confirmation before an action's form is sent.
 *
 * Each action (evict, hold, release) is a plain POST form with Django's CSRF token, complete
 * without JavaScript; this module asks first, in the panel's <dialog>, and sends the form only
 * when confirmed. A sent form's button is disabled so that one click sends one command.
 */

// The question, with the hold's duration and the reason as the operator typed them (as text).
function describe(form) {
  const parts = [form.dataset.confirm];
  const seconds = form.querySelector("select[name=seconds]");
  if (seconds) parts.push("For " + seconds.options[seconds.selectedIndex].textContent + ".");
  const reason = form.querySelector("input[name=reason]");
  if (reason && reason.value.trim()) parts.push("Reason: " + reason.value.trim());
  return parts.join(" ");
}

function send(form) {
  Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (button) {
    button.disabled = true;
  });
  form.submit(); // submit() sends without another submit event
}

// Started by main.js on every page: it does something only where the panel is (a user's page).
export function startActions() {
  const dialog = document.getElementById("um-action-dialog");
  const question = document.getElementById("um-action-question");
  if (!dialog || !question || typeof dialog.showModal !== "function") return;
  let pending = null;
  Array.prototype.forEach.call(document.querySelectorAll("form.um-action-form[data-confirm]"), function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      pending = form;
      question.textContent = describe(form);
      dialog.returnValue = "";
      dialog.showModal();
    });
  });
  dialog.addEventListener("close", function () {
    const form = pending;
    pending = null;
    if (form && dialog.returnValue === "ok") send(form);
  });
}
