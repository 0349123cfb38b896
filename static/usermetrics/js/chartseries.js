/* chartseries.js — what each page charts: the history charts' series and how a live frame feeds them.
 *
 * The detail page's (USER_CHARTS, with a user's tokens and cost: userCharts) and the list page's
 * overview (OVERVIEW_CHARTS, spendCharts), and the live sample each reads from a frame
 * (userSample, summarySample). charts.js draws them; no DOM here.
 */

// What a page charts: [key in the history JSON, title, unit, colour variable, what a live point
// adds: "requests" or "errors" (per minute of the bucket), "latency" (the bucket's mean),
// "gauge" (the live value, in the order the sampler's gauges come), or "history" (nothing: the
// frames do not carry it, the next reload brings it); and "optional" for a chart drawn only when
// its series has a value (the tokens of users a NAT companion reports)].
export const USER_CHARTS = [
  ["requests_per_min", "Requests / min", "req/min", "--link-fg", "requests"],
  ["errors_per_min", "Errors / min", "err/min", "--error-fg", "errors"],
  ["latency_ms", "Latency (window mean)", "ms", "--secondary", "latency"],
  ["in_flight", "In-flight references", "refs", "--accent", "gauge"],
  ["exit_stack", "Exit stack size", "resources", "--body-quiet-color", "gauge"],
];
// The tokens and cost charts (history.token_series): per minute, and in `currency` per hour.
export function spendCharts(currency) {
  return [
    ["cost_per_hour", "Cost / hour", (currency || "USD") + "/h", "--link-fg", "history", "optional"],
    ["tokens_per_min", "Tokens / min", "tokens/min", "--secondary", "history", "optional"],
  ];
}

// A user's charts: USER_CHARTS, then its tokens and cost where a NAT companion reports it.
export function userCharts(currency) {
  return USER_CHARTS.concat(spendCharts(currency));
}

// The list page's overview: everyone, from /api/overview/history and the frames' summary.
export const OVERVIEW_CHARTS = [
  ["users", "Users", "users", "--body-quiet-color", "gauge"],
  ["active", "Active", "users", "--accent", "gauge"],
  ["in_flight", "In flight", "requests", "--secondary", "gauge"],
  ["requests_per_min", "Requests / min", "req/min", "--link-fg", "requests"],
  ["errors_per_min", "Errors / min", "err/min", "--error-fg", "errors"],
];

// A user's live sample: its counters, and its gauges in USER_CHARTS' order.
export function userSample(usage) {
  const r = usage.requests;
  return {
    count: r.total_requests,
    errors: r.error_count,
    latency: r.avg_latency_ms * r.total_requests,
    gauges: [usage.session.ref_count, usage.memory.exit_stack_size],
    resets: true, // a counter going backwards is a new life, counted from zero
  };
}

// Everyone's live sample from a list frame's summary, gauges in OVERVIEW_CHARTS' order. The
// totals drop when users leave (they take their counters with them): a drop adds nothing.
export function summarySample(summary) {
  return {
    count: summary.requests,
    errors: summary.errors,
    latency: summary.avg_latency_ms * summary.requests,
    gauges: [summary.users, summary.active, summary.in_flight],
    resets: false,
  };
}
