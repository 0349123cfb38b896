/* money.js — what tokens cost, in words: amounts, a window's tokens and cost, a cost document (no DOM).
 *
 * As format.js, each rule mirrors the server's (usermetrics/humanize.py), so a cost rendered by the
 * server and the same cost rendered here read alike.
 */
import { NO_VALUE, bigNumber, number } from "./format.js";

// As usermetrics.humanize.NO_PRICE: what a model with no price costs on the pages (never a made-up cost).
export const NO_PRICE = "no price";

// As usermetrics.humanize: the currency symbols written before an amount (any other code after it).
const SYMBOLS = { USD: "$", EUR: "\u20ac", GBP: "\u00a3", JPY: "\u00a5" };

// As usermetrics.humanize.money_words: "$12.35", "$0.0031" (two significant digits below a cent), "1,234 CHF".
export function moneyWords(amount, currency) {
  const a = Math.abs(amount);
  let text;
  if (a >= 100) text = Math.round(a).toLocaleString("en-US");
  else if (a >= 0.01 || a === 0) text = a.toFixed(2);
  else text = a.toFixed(Math.min(9, 1 - Math.floor(Math.log10(a))));
  const sign = amount < 0 ? "-" : "";
  const symbol = SYMBOLS[currency];
  return symbol ? sign + symbol + text : sign + text + " " + currency;
}

// As usermetrics.humanize.spend_words: a window's tokens and cost (NO_VALUE without a companion);
// "no price" when none of the tokens had a price, "≥" when some had none.
export function spendWords(doc, currency) {
  if (doc === null || doc === undefined) return { tokens: NO_VALUE, tokens_title: "", cost: NO_VALUE, cost_title: "" };
  const n = function (v) { return Number(v).toLocaleString("en-US"); };
  const tokensTitle = n(doc.total_tokens) + " tokens: " + n(doc.prompt_tokens) + " prompt, "
    + n(doc.completion_tokens) + " completion; " + n(doc.llm_calls) + " LLM calls";
  let cost = moneyWords(doc.cost, currency);
  let costTitle = tokensTitle;
  if (doc.pricing === "unpriced") {
    cost = NO_PRICE;
    costTitle = "No price for the models used: " + n(doc.total_tokens) + " tokens unpriced";
  } else if (doc.pricing === "partly") {
    cost = "\u2265 " + cost;
    costTitle = tokensTitle + "; +" + n(doc.unpriced_tokens) + " tokens unpriced (models without a price)";
  }
  return { tokens: tokensWords(doc.total_tokens), tokens_title: tokensTitle, cost: cost, cost_title: costTitle };
}

// As usermetrics.humanize.tokens_words: a token count that fits a narrow cell ("950", "4.5k", "218k", "1.5M").
export function tokensWords(count) {
  if (count < 1000) return String(count);
  if (count < 1000000) {
    const k = count / 1000;
    return k < 10 ? number(Math.round(k * 10) / 10) + "k" : Math.round(k).toLocaleString("en-US") + "k";
  }
  return bigNumber(count);
}

// As usermetrics.humanize.cost_words: a cost document's total ("$1.23", "$1.23 + 2 unpriced models"),
// or "no price" when no model with calls has one.
export function costWords(cost) {
  const unpriced = cost.unpriced.length;
  if (unpriced && unpriced === Object.keys(cost.by_model).length) return NO_PRICE;
  const words = moneyWords(cost.total, cost.currency);
  return unpriced ? words + " + " + unpriced + " unpriced model" + (unpriced === 1 ? "" : "s") : words;
}
