/* cost.js — the detail page's Tokens and cost panel (includes/user_cost.html) from a user frame's
 * `extras`: its `llm` (calls and tokens per model) and `cost` (usermetrics.figures.cost_doc). The
 * words are money.js's and format.js's, the same as the server's (usermetrics/views/costs.py, humanize.py).
 */
import { byId, setValue } from "./dom.js";
import { bigNumber } from "./format.js";
import { NO_PRICE, costWords, moneyWords } from "./money.js";

// A model's counts in the order of the table's columns (usermetrics.extras.USAGE_KEYS).
const USAGE_KEYS = ["calls", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens"];

function countCell(value) {
  const td = document.createElement("td");
  td.className = "um-num";
  td.title = String(value);
  td.textContent = bigNumber(value);
  return td;
}

function modelRow(model, usage, amount, currency) {
  const tr = document.createElement("tr");
  tr.dataset.model = model;
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = model;
  tr.appendChild(th);
  USAGE_KEYS.forEach(function (key) { tr.appendChild(countCell(usage[key])); });
  const cost = document.createElement("td");
  const priced = amount !== null && amount !== undefined;
  cost.className = priced ? "um-num" : "um-num um-no-price";
  cost.textContent = priced ? moneyWords(amount, currency) : NO_PRICE;
  tr.appendChild(cost);
  return tr;
}

// Which of the panel's states to show: no companion, no calls yet, or a table of calls.
function showState(state) {
  const module = byId("um-cost-module");
  module.dataset.state = state;
  module.querySelectorAll("[data-empty]").forEach(function (p) { p.hidden = p.dataset.empty !== state; });
  byId("um-cost-table").hidden = state !== "calls";
  byId("um-tool-calls-line").hidden = state === "none";
}

/** Show `extras` (a user frame's; null for a user no companion reports) in the Tokens and cost panel. */
export function applyCost(extras) {
  if (!byId("um-cost-module")) return;
  const llm = extras ? extras.llm : null;
  if (!llm) {
    showState("none");
    return;
  }
  const models = Object.keys(llm.by_model).sort();
  showState(models.length ? "calls" : "empty");
  setValue(byId("um-tool-calls"), extras.tool_calls, String(extras.tool_calls), true);
  const cost = extras.cost || null;
  const currency = cost ? cost.currency : "";
  byId("um-cost-currency").textContent = currency ? " (" + currency + ")" : "";
  const body = byId("um-cost-rows");
  body.replaceChildren.apply(body, models.map(function (model) {
    return modelRow(model, llm.by_model[model], cost ? cost.by_model[model] : null, currency);
  }));
  document.querySelectorAll("[data-total]").forEach(function (td) {
    const value = llm[td.dataset.total];
    td.title = String(value);
    setValue(td, value, bigNumber(value), true);
  });
  const total = byId("um-cost-total");
  const words = cost && models.length ? costWords(cost) : "";
  setValue(total, words, words, true);
  total.classList.toggle("um-no-price", Boolean(cost) && !cost.complete);
}
