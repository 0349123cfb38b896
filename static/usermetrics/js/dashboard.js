/* usermetrics live pages: the websocket feed keeps the list and detail pages current.
 *
 * Plain JavaScript, no build step, no inline code (the pages run under a strict
 * Content-Security-Policy). Data from the server only ever reaches the DOM as text
 * (textContent, attribute values, URL-encoded hrefs), never as HTML.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("um-config");
  if (!configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var isList = config.page === "list";

  var DEFAULT_VIEW = { page: 1, page_size: 100, sort: "-last_activity", q: "", state: "", window: "1h" };
  // States the feed cannot serve: ended users live in the history, so that list is a page load.
  var PAGE_LOAD_STATES = ["ended"];
  // The rows' rates, flags and sparklines are fetched again this often (not carried by the feed).
  var WINDOW_REFRESH_MS = 30000;
  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var STUCK_AFTER_S = config.stuck_after; // the stuck flag's threshold, as the server words it

  // ---- words: the same as usermetrics/humanize.py ------------------------------------------

  function durationWords(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) {
      var h = Math.floor(s / 3600);
      var m = Math.floor((s % 3600) / 60);
      return m ? h + " h " + m + " min" : h + " h";
    }
    var d = Math.floor(s / 86400);
    var hours = Math.floor((s % 86400) / 3600);
    return hours ? d + " d " + hours + " h" : d + " d";
  }

  function parseTime(iso) {
    // Browsers differ on more than three fractional digits: keep milliseconds only.
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function ago(ms, nowMs) {
    var seconds = (nowMs - ms) / 1000;
    if (seconds < 1) return "just now";
    return durationWords(seconds).split(" ").slice(0, 2).join(" ") + " ago";
  }

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) s = "0" + s;
    return s;
  }

  function utcExact(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." +
      pad(d.getUTCMilliseconds(), 3) + " UTC";
  }

  function number(value) {
    // As usermetrics.humanize.number: at most two decimals, no trailing zeros.
    return String(Math.round(value * 100) / 100);
  }

  function rateWords(stats) {
    var none = function (v) { return v === null || v === undefined; };
    return {
      requests_per_min: number(stats.requests_per_min || 0),
      error_rate: none(stats.error_rate) ? "–" : number(stats.error_rate * 100) + " %",
      latency_ms: none(stats.latency_ms) ? "–" : number(stats.latency_ms) + " ms",
    };
  }

  function latency(value) {
    // Python prints floats with at least one decimal; match it so values do not flicker.
    return (Number.isInteger(value) ? value.toFixed(1) : String(value)) + " ms";
  }

  function lifecycleWords(user, nowMs, evictedAt) {
    var idle = (nowMs - parseTime(user.session.last_activity)) / 1000;
    if (user.session.is_active) {
      var words = "active with " + user.requests.active_requests + " in flight";
      if (idle >= STUCK_AFTER_S) words += ", no activity for " + durationWords(idle) + " (stuck?)";
      return words;
    }
    var text = "idle for " + durationWords(idle);
    if (evictedAt) {
      var left = (parseTime(evictedAt) - nowMs) / 1000;
      text += left > 0 ? ", evicted in about " + durationWords(left) : ", due for eviction";
    }
    return text;
  }

  // ---- the server's clock, as of the last frame ----------------------------------------------

  var lastTimestamp = parseTime(config.timestamp);
  var receivedAt = Date.now();
  function serverNow() {
    return lastTimestamp + (Date.now() - receivedAt);
  }

  // ---- small DOM helpers ------------------------------------------------------------------------

  function byId(id) {
    return document.getElementById(id);
  }

  function flash(node) {
    node.classList.remove("um-flash");
    // Re-adding on the next frame restarts the animation without forcing a layout.
    window.requestAnimationFrame(function () {
      node.classList.add("um-flash");
    });
  }

  // Set a cell's text from a raw value; flash it when the value changed since the last frame.
  function setValue(node, raw, text, animate) {
    var key = String(raw);
    var had = node.dataset.v !== undefined;
    var changed = had && node.dataset.v !== key;
    node.dataset.v = key;
    if (node.textContent !== text) node.textContent = text;
    if (changed && animate) flash(node);
  }

  function segment(userId) {
    // usermetrics.converters.user_id_to_segment, then percent-encoding, as reverse() does.
    var s = userId.replace(/~/g, "~7E").replace(/\//g, "~2F");
    if (s.charAt(0) === ".") s = "~2E" + s.slice(1);
    return encodeURIComponent(s);
  }

  function detailUrl(userId) {
    return config.detail_prefix + segment(userId) + "/";
  }

  // ---- connection state and the "updated N s ago" line -------------------------------------------

  var conn = byId("um-conn");
  var updated = byId("um-updated");
  var pauseButton = byId("um-pause");
  var paused = false;
  var pending = null;
  var connState = "connecting";
  var retryAt = 0;

  function showConn() {
    var text;
    if (connState === "reconnecting") {
      text = "reconnecting in " + Math.max(1, Math.ceil((retryAt - Date.now()) / 1000)) + " s";
    } else if (connState === "connecting") {
      text = attempt ? "reconnecting…" : "connecting…";
    } else {
      text = connState;
    }
    if (paused) text += " (paused)";
    conn.dataset.state = connState;
    if (conn.textContent !== text) conn.textContent = text;
  }

  function showUpdated() {
    var age = Math.max(0, Math.floor((Date.now() - receivedAt) / 1000));
    updated.textContent = "updated " + age + " s ago";
    updated.title = utcExact(lastTimestamp);
  }

  function setConn(state) {
    connState = state;
    showConn();
  }

  // ---- the list page ----------------------------------------------------------------------------

  var view = isList ? viewFromMeta(config.view) : null;
  var renderedViewKey = isList ? viewKey(view) : null;

  function viewFromMeta(meta) {
    return {
      page: meta.page,
      page_size: meta.requested_page_size || meta.page_size,
      sort: meta.sort,
      q: meta.q,
      state: meta.state,
      window: meta.window || DEFAULT_VIEW.window,
    };
  }

  function viewKey(v) {
    return [v.page, v.page_size, v.sort, v.q, v.state, v.window].join("\u0000");
  }

  function viewFromQuery(search) {
    var params = new URLSearchParams(search);
    return {
      page: parseInt(params.get("page") || "1", 10) || 1,
      page_size: parseInt(params.get("page_size") || String(DEFAULT_VIEW.page_size), 10) || DEFAULT_VIEW.page_size,
      sort: params.get("sort") || DEFAULT_VIEW.sort,
      q: params.get("q") || "",
      state: params.get("state") || "",
      window: params.get("window") || DEFAULT_VIEW.window,
    };
  }

  function queryOf(v) {
    // Like ViewSpec.as_params: defaults are left out, the order is fixed.
    var params = new URLSearchParams();
    ["page", "page_size", "sort", "q", "state", "window"].forEach(function (key) {
      if (String(v[key]) !== String(DEFAULT_VIEW[key])) params.set(key, String(v[key]));
    });
    var s = params.toString();
    return s ? "?" + s : "?";
  }

  // Does a frame show the view we asked for (the server may clamp the page or the page size)?
  function frameMatches(meta) {
    if (meta.sort !== view.sort || meta.q !== view.q || meta.state !== view.state) return false;
    if ((meta.window || DEFAULT_VIEW.window) !== view.window) return false;
    if ((meta.requested_page_size || meta.page_size) !== view.page_size) return false;
    if (meta.clamped) return true; // a smaller page around the first user of the one we asked for
    return meta.page === view.page || (view.page > meta.pages && meta.page === meta.pages);
  }

  var COLUMNS = [
    "created_at", "last_activity", "ref_count", "is_active", "total_requests", "active_requests",
    "avg_latency_ms", "error_count", "per_user_functions_count", "per_user_function_groups_count",
    "exit_stack_size",
  ];
  var NUMERIC = {
    ref_count: ["session", "ref_count"],
    total_requests: ["requests", "total_requests"],
    active_requests: ["requests", "active_requests"],
    error_count: ["requests", "error_count"],
    per_user_functions_count: ["memory", "per_user_functions_count"],
    per_user_function_groups_count: ["memory", "per_user_function_groups_count"],
    exit_stack_size: ["memory", "exit_stack_size"],
  };

  function buildRow(user) {
    var tr = document.createElement("tr");
    tr.dataset.userId = user.user_id;
    var th = document.createElement("th");
    th.scope = "row";
    th.className = "um-col-user";
    th.dataset.field = "user_id";
    var a = document.createElement("a");
    th.appendChild(a);
    var flags = document.createElement("span");
    flags.className = "um-row-flags";
    flags.dataset.rowFlags = "";
    th.appendChild(flags);
    tr.appendChild(th);
    // The window's rates and activity come right after the user, as on the server-rendered page.
    if (config.window_url) {
      WINDOW_FIELDS.forEach(function (field) {
        var td = document.createElement("td");
        td.dataset.field = "w_" + field;
        td.className = "um-num um-rate";
        td.textContent = "…";
        tr.appendChild(td);
      });
      var spark = document.createElement("td");
      spark.className = "um-col-spark";
      spark.dataset.field = "w_activity";
      var holder = document.createElement("span");
      holder.dataset.sparklineUser = user.user_id;
      spark.appendChild(holder);
      tr.appendChild(spark);
    }
    COLUMNS.forEach(function (field) {
      var td = document.createElement("td");
      td.dataset.field = field;
      if (NUMERIC[field] || field === "avg_latency_ms") td.className = "um-num";
      if (field === "is_active") {
        var badge = document.createElement("span");
        badge.className = "um-badge";
        td.appendChild(badge);
      }
      tr.appendChild(td);
    });
    return tr;
  }

  // ---- the rows' window: rates, flags, sparklines (fetched, not pushed) -------------------------

  var WINDOW_FIELDS = ["requests_per_min", "error_rate", "latency_ms"];
  var windowTimer = null;
  var windowIds = "";

  function drawSparkline(holder, values) {
    if (!window.usermetricsCharts || !values) return;
    window.usermetricsCharts.sparkline(holder, values);
    holder.title = "Requests per minute, last " + view.window;
  }

  function applyFlags(cell, flags) {
    var badges = flags.map(function (flag) {
      var badge = document.createElement("span");
      badge.className = "um-flag";
      badge.dataset.flag = flag.name;
      badge.title = flag.detail;
      badge.textContent = flag.label;
      return badge;
    });
    cell.replaceChildren.apply(cell, badges);
  }

  function applyWindow(doc) {
    Array.prototype.forEach.call(byId("um-rows").rows, function (tr) {
      var entry = doc.users[tr.dataset.userId];
      if (!entry) return;
      var words = rateWords(entry.stats);
      WINDOW_FIELDS.forEach(function (field) {
        var td = tr.querySelector('[data-field="w_' + field + '"]');
        if (td && td.textContent !== words[field]) td.textContent = words[field];
      });
      var flags = tr.querySelector("[data-row-flags]");
      if (flags && view.state !== "ended") applyFlags(flags, entry.flags);
      var holder = tr.querySelector("[data-sparkline-user]");
      if (holder) drawSparkline(holder, entry.sparkline);
    });
  }

  function refreshWindow() {
    window.clearTimeout(windowTimer);
    windowTimer = window.setTimeout(refreshWindow, WINDOW_REFRESH_MS);
    // Without a live feed the server is likely away: wait for the next refresh, log no failure.
    if (!config.window_url || paused || document.hidden || connState !== "live") return;
    var ids = Array.prototype.map.call(byId("um-rows").rows, function (tr) { return tr.dataset.userId; });
    windowIds = ids.join("\u0000");
    if (!ids.length) return;
    var params = new URLSearchParams();
    params.set("window", view.window);
    ids.forEach(function (id) { params.append("user_id", id); });
    fetch(config.window_url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (doc) { if (doc) applyWindow(doc); })
      .catch(function () { /* the next refresh tries again */ });
  }

  // New rows on the page (sort, paging, new users): fetch their window soon, once.
  function windowRowsChanged() {
    if (!config.window_url) return;
    var ids = Array.prototype.map.call(byId("um-rows").rows, function (tr) { return tr.dataset.userId; });
    if (ids.join("\u0000") === windowIds) return;
    window.clearTimeout(windowTimer);
    windowTimer = window.setTimeout(refreshWindow, 1000);
  }

  function setupWindow() {
    if (!config.window_url) return;
    var node = byId("um-sparklines");
    var initial = node ? JSON.parse(node.textContent) : {};
    Array.prototype.forEach.call(document.querySelectorAll("[data-sparkline-user]"), function (holder) {
      drawSparkline(holder, initial[holder.dataset.sparklineUser]);
    });
    windowIds = Array.prototype.map.call(byId("um-rows").rows, function (tr) { return tr.dataset.userId; }).join("\u0000");
    windowTimer = window.setTimeout(refreshWindow, WINDOW_REFRESH_MS);
  }

  function applyExports() {
    // The exports take the whole filtered list: the view without its paging.
    var query = queryOf(Object.assign({}, view, { page: 1, page_size: DEFAULT_VIEW.page_size }));
    ["um-export-csv", "um-export-json"].forEach(function (id) {
      var link = byId(id);
      if (link) link.href = link.pathname + (query === "?" ? "" : query);
    });
  }

  function fillTime(td, iso, nowMs, animate) {
    var ms = parseTime(iso);
    setValue(td, iso, ago(ms, nowMs), animate);
    td.dataset.time = iso;
    td.title = utcExact(ms);
  }

  function fillRow(tr, user, label, nowMs, animate) {
    var cells = {};
    Array.prototype.forEach.call(tr.children, function (cell) {
      cells[cell.dataset.field] = cell;
    });
    var link = cells.user_id.querySelector("a");
    // As usermetrics.identities.user_display: "label (user id)" for a registered user.
    var shown = label ? label + " (" + user.user_id + ")" : user.user_id;
    if (link.textContent !== shown) link.textContent = shown;
    link.href = detailUrl(user.user_id);
    fillTime(cells.created_at, user.session.created_at, nowMs, animate);
    fillTime(cells.last_activity, user.session.last_activity, nowMs, animate);
    Object.keys(NUMERIC).forEach(function (field) {
      var path = NUMERIC[field];
      var value = user[path[0]][path[1]];
      setValue(cells[field], value, String(value), animate);
    });
    setValue(cells.avg_latency_ms, user.requests.avg_latency_ms, latency(user.requests.avg_latency_ms), animate);
    cells.error_count.classList.toggle("um-has-errors", user.requests.error_count > 0);
    var state = user.session.is_active ? "active" : "idle";
    var badge = cells.is_active.querySelector(".um-badge");
    badge.dataset.state = state;
    setValue(badge, state, state, animate);
    tr.classList.toggle("um-active", user.session.is_active);
  }

  function applySummary(summary, animate) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-summary]"), function (node) {
      var key = node.dataset.summary;
      var value = summary[key];
      setValue(node, value, key === "avg_latency_ms" ? latency(value) : String(value), animate);
    });
  }

  // The banner above the page: one line per source that is not ok (same words as base.html).
  function applyBanner(sources) {
    var banner = byId("um-banner");
    var list = byId("um-banner-list");
    if (!banner || !list) return;
    var nowMs = serverNow();
    var items = [];
    sources.forEach(function (s) {
      if (s.state === "ok") return;
      var li = document.createElement("li");
      li.dataset.state = s.state;
      var name = document.createElement("strong");
      name.textContent = s.name;
      var text = " is " + s.state + (s.last_error ? ": " + s.last_error : "") + ". ";
      if (s.last_success) {
        text += "Last answered " + ago(parseTime(s.last_success), nowMs);
        text += s.users ? "; its " + s.users + " users show their last known values." : ".";
      } else {
        text += "It has not answered since the dashboard started.";
      }
      li.append(name, text);
      items.push(li);
    });
    list.replaceChildren.apply(list, items);
    banner.hidden = items.length === 0;
  }

  function applySources(sources) {
    applyBanner(sources);
    var list = byId("um-sources");
    if (!list) return;
    var items = [];
    sources.forEach(function (s) {
      var li = document.createElement("li");
      li.className = "um-source";
      li.dataset.state = s.state;
      li.title = s.last_error || s.kind + " source";
      var dot = document.createElement("span");
      dot.className = "um-dot";
      var name = document.createElement("span");
      name.className = "um-source-name";
      name.textContent = s.name;
      var state = document.createElement("span");
      state.className = "um-source-state";
      state.textContent = s.state;
      var users = document.createElement("span");
      users.className = "um-source-users";
      users.textContent = s.users + " users";
      li.append(dot, name, " ", state, " ", users);
      if (s.state !== "ok" && s.last_error) {
        var error = document.createElement("span");
        error.className = "um-source-error";
        error.textContent = s.last_error;
        li.append(error);
      }
      items.push(li);
    });
    if (!items.length) {
      var none = document.createElement("li");
      none.className = "um-source";
      none.dataset.state = "error";
      none.textContent = "none configured";
      items.push(none);
    }
    list.replaceChildren.apply(list, items);
  }

  function applyHeaders(meta) {
    var current = meta.sort.replace(/^-/, "");
    var descending = meta.sort.charAt(0) === "-";
    Array.prototype.forEach.call(document.querySelectorAll("#um-table thead th[data-field]"), function (th) {
      var field = th.dataset.field;
      var next;
      th.classList.remove("sorted", "ascending", "descending");
      if (field === current) {
        th.classList.add("sorted", descending ? "descending" : "ascending");
        next = descending ? field : "-" + field;
      } else {
        next = field === "user_id" ? field : "-" + field;
      }
      var link = th.querySelector("a");
      link.href = queryOf(Object.assign({}, view, { sort: next, page: 1 }));
    });
    Array.prototype.forEach.call(document.querySelectorAll(".um-filters a"), function (a) {
      var value = a.dataset.stateValue;
      a.href = queryOf(Object.assign({}, view, { state: value, page: 1 }));
      var selected = value === meta.state;
      a.classList.toggle("selected", selected);
      if (selected) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    });
  }

  function applyControls(meta) {
    var q = byId("um-q");
    if (document.activeElement !== q && q.value !== meta.q) q.value = meta.q;
    byId("um-state").value = meta.state;
    byId("um-page-size").value = String(view.page_size);
  }

  function applyPaginator(meta) {
    var nav = byId("um-paginator");
    var pages = meta.pages;
    var wanted = [1, 2, pages - 1, pages];
    for (var n = meta.page - 2; n <= meta.page + 2; n++) wanted.push(n);
    var numbers = wanted
      .filter(function (x, i) { return x >= 1 && x <= pages && wanted.indexOf(x) === i; })
      .sort(function (x, y) { return x - y; });
    var nodes = [];
    var previous = 0;
    if (pages > 1) {
      numbers.forEach(function (number) {
        if (number - previous > 1) {
          var gap = document.createElement("span");
          gap.className = "um-gap";
          gap.textContent = "…";
          nodes.push(gap);
        }
        var node;
        if (number === meta.page) {
          node = document.createElement("span");
          node.className = "this-page";
          node.setAttribute("aria-current", "page");
        } else {
          node = document.createElement("a");
          node.href = queryOf(Object.assign({}, view, { page: number }));
          node.dataset.page = String(number);
        }
        node.textContent = String(number);
        nodes.push(node);
        previous = number;
      });
    }
    var label = document.createElement("span");
    label.className = "um-pages";
    label.id = "um-pages";
    label.textContent = "page " + meta.page + " of " + pages;
    nodes.push(label);
    if (meta.clamped) {
      var note = document.createElement("span");
      note.className = "um-clamped";
      note.textContent = "showing " + meta.page_size + " a page to keep live frames small";
      nodes.push(note);
    }
    nav.replaceChildren.apply(nav, nodes);
  }

  function applyCount(meta, frame) {
    var count = byId("um-count");
    var total = frame.total_active_users;
    var text;
    if (!meta.matched) {
      text = "0 users";
    } else {
      var first = (meta.page - 1) * meta.page_size + 1;
      text = "Users " + first + "–" + (first + frame.users.length - 1) + " of " + meta.matched;
      if (meta.matched !== total) text += " matching (of " + total + ")";
    }
    count.textContent = text;
  }

  function applyEmpty(meta, frame) {
    var box = byId("um-empty");
    var reason = null;
    if (!frame.users.length) {
      var sources = frame.sources || [];
      if (!sources.length) reason = "No sources are configured, so there are no users to show.";
      else if (!frame.total_active_users) {
        var down = sources.every(function (s) { return s.state !== "ok"; });
        reason = down
          ? "Every source is down: there is no data to show. See the sources above for their errors."
          : "No users yet: no source reports a per-user workflow.";
      } else reason = "No user matches this search and filter.";
    }
    box.hidden = reason === null;
    byId("um-empty-reason").textContent = reason || "";
    byId("um-empty-clear").hidden = !(meta.q || meta.state);
  }

  function applyList(frame) {
    var meta = frame.view;
    if (!frameMatches(meta)) return; // a frame of the view we just left
    var key = viewKey(view);
    var sameView = key === renderedViewKey;
    renderedViewKey = key;
    var nowMs = serverNow();
    applySummary(frame.summary, true);
    applySources(frame.sources);
    // The ended users are not in the feed: their rows stay as the server rendered them.
    if (PAGE_LOAD_STATES.indexOf(meta.state) >= 0) return;
    applyHeaders(meta);
    applyControls(meta);
    applyPaginator(meta);
    applyCount(meta, frame);
    applyEmpty(meta, frame);

    var tbody = byId("um-rows");
    var existing = new Map();
    Array.prototype.forEach.call(tbody.rows, function (tr) {
      existing.set(tr.dataset.userId, tr);
    });
    var gone = new Set(frame.gone || []);
    var labels = frame.labels || {};
    var ordered = [];
    frame.users.forEach(function (user) {
      var tr = existing.get(user.user_id);
      if (tr) {
        existing.delete(user.user_id);
        tr.classList.remove("um-gone");
        delete tr.dataset.goneFrames;
        fillRow(tr, user, labels[user.user_id], nowMs, sameView);
      } else {
        tr = buildRow(user);
        fillRow(tr, user, labels[user.user_id], nowMs, false);
        if (sameView) flash(tr); // a user new to this page since the last frame
      }
      ordered.push(tr);
    });
    // Rows not in the frame: users that vanished from every source stay a few frames, marked
    // gone; users that only moved off this page (sort, filter) leave at once.
    existing.forEach(function (tr, userId) {
      var frames = parseInt(tr.dataset.goneFrames || "0", 10);
      if (sameView && (gone.has(userId) || frames > 0) && frames < 5) {
        tr.dataset.goneFrames = String(frames + 1);
        if (!tr.classList.contains("um-gone")) {
          tr.classList.add("um-gone");
          tr.title = "No source reports this user any more";
        }
        ordered.push(tr);
      } else {
        tr.remove();
      }
    });
    var cursor = tbody.firstElementChild;
    ordered.forEach(function (tr) {
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(tr, cursor); // moves only rows out of place, so flashes keep running
    });
    windowRowsChanged();
  }

  function subscribe(next) {
    if (PAGE_LOAD_STATES.indexOf(next.state) >= 0 || PAGE_LOAD_STATES.indexOf(view.state) >= 0) {
      window.location.assign(window.location.pathname + queryOf(next)); // served by the page, not the feed
      return;
    }
    view = next;
    applyExports();
    var query = queryOf(view);
    window.history.replaceState(null, "", query === "?" ? window.location.pathname : query);
    if (paused) setPaused(false);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(Object.assign({ type: "subscribe" }, view)));
    }
  }

  function setupList() {
    // Links keep working without JavaScript; with it they re-subscribe instead of reloading.
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("#um-table thead a, #um-paginator a, .um-filters a");
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      subscribe(viewFromQuery(new URL(link.href).search));
    });
    var form = byId("um-search");
    function fromForm() {
      return {
        page: 1,
        page_size: parseInt(byId("um-page-size").value, 10),
        sort: view.sort,
        q: byId("um-q").value.trim(),
        state: byId("um-state").value,
        window: view.window,
      };
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      subscribe(fromForm());
    });
    var typing = null;
    byId("um-q").addEventListener("input", function () {
      window.clearTimeout(typing);
      typing = window.setTimeout(function () { subscribe(fromForm()); }, 300);
    });
    byId("um-state").addEventListener("change", function () { subscribe(fromForm()); });
    byId("um-page-size").addEventListener("change", function () { subscribe(fromForm()); });
  }

  // ---- the detail page --------------------------------------------------------------------------

  var detailUser = null;
  var evictedAt = config.evicted_at || null;
  var charts = null;
  // The charts' history (and with it the rates and flags) is fetched again this often.
  var HISTORY_RELOAD_MS = 60000;

  // After each history fetch: the window's rates, the flags, the export links and the URL.
  function applyHistory(doc, windowName) {
    var words = rateWords(doc.stats || {});
    Array.prototype.forEach.call(document.querySelectorAll("[data-rate]"), function (node) {
      node.textContent = words[node.dataset.rate];
    });
    byId("um-rate-window").textContent = windowName;
    byId("um-rate-requests").textContent = String((doc.stats || {}).requests || 0);
    ["um-export-csv", "um-export-json"].forEach(function (id) {
      var link = byId(id);
      var url = new URL(link.href);
      url.searchParams.set("window", windowName);
      link.href = url.pathname + url.search;
    });
    var items = (doc.flags || []).map(function (flag) {
      var li = document.createElement("li");
      var badge = document.createElement("span");
      badge.className = "um-flag";
      badge.dataset.flag = flag.name;
      badge.textContent = flag.label;
      var detail = document.createElement("span");
      detail.className = "um-flag-detail";
      detail.textContent = flag.detail;
      li.append(badge, " ", detail);
      return li;
    });
    if (!items.length) {
      var none = document.createElement("li");
      none.className = "um-flag-none";
      none.textContent = doc.ended ? "An ended user has no flags." : "No flag is raised.";
      items.push(none);
    }
    var list = byId("um-flags");
    list.replaceChildren.apply(list, items);
    var here = new URL(window.location.href);
    if (here.searchParams.get("window") !== windowName) {
      here.searchParams.set("window", windowName);
      window.history.replaceState(null, "", here.pathname + here.search);
    }
  }

  function setupDetail() {
    var box = byId("um-charts");
    if (!box || !config.history_url || !window.usermetricsCharts) return;
    charts = window.usermetricsCharts.mount(box, {
      historyUrl: config.history_url,
      window: config.window,
      onLoad: applyHistory,
    });
    window.setInterval(function () {
      if (!paused && !document.hidden) charts.reload();
    }, HISTORY_RELOAD_MS);
  }

  function applyDetail(frame) {
    var user = frame.users[0];
    // An empty list means gone, unless the user was only too big for a frame (view.clamped).
    if (!user && frame.view && frame.view.clamped) return;
    var gone = !user;
    byId("um-gone").hidden = !gone;
    document.body.classList.toggle("um-user-gone", gone);
    if (gone) {
      if (config.ended) return; // the page already shows it as ended, with its last values
      byId("um-state").dataset.state = "gone";
      byId("um-state").textContent = "gone";
      return;
    }
    detailUser = user;
    evictedAt = frame.evicted_at || null;
    if (charts) charts.appendLive(user, frame.timestamp);
    var stale = frame.stale || [];
    byId("um-stale").hidden = !(frame.origins || []).some(function (name) { return stale.indexOf(name) >= 0; });
    var nowMs = serverNow();
    Array.prototype.forEach.call(document.querySelectorAll(".um-fields td[data-field]"), function (td) {
      var field = td.dataset.field;
      var section = ["created_at", "last_activity", "ref_count", "is_active"].indexOf(field) >= 0
        ? "session"
        : NUMERIC[field] ? NUMERIC[field][0] : "requests";
      var value = user[section][field];
      if (field === "created_at" || field === "last_activity") {
        var ms = parseTime(value);
        td.dataset.time = value;
        setValue(td.querySelector(".um-rel"), value, ago(ms, nowMs), true);
        td.querySelector(".um-exact").textContent = utcExact(ms);
      } else if (field === "is_active") {
        setValue(td, value, value ? "yes" : "no", true);
      } else if (field === "avg_latency_ms") {
        setValue(td, value, latency(value), true);
      } else {
        setValue(td, value, String(value), true);
      }
    });
    var state = user.session.is_active ? "active" : "idle";
    byId("um-state").dataset.state = state;
    byId("um-state").textContent = state;
    byId("um-lifecycle").textContent = lifecycleWords(user, nowMs, evictedAt);
    var origins = (frame.origins || []).map(function (name) {
      var li = document.createElement("li");
      li.textContent = name;
      return li;
    });
    var list = byId("um-origins");
    list.replaceChildren.apply(list, origins);
    applyParts(frame.parts || []);
  }

  function applyParts(parts) {
    byId("um-parts-module").hidden = !parts.length;
    var rows = parts.map(function (part) {
      var r = part.record;
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = part.source;
      tr.appendChild(th);
      var last = parseTime(r.session.last_activity);
      [
        [r.session.is_active ? "active" : "idle", false],
        [String(r.requests.total_requests), true],
        [String(r.requests.active_requests), true],
        [latency(r.requests.avg_latency_ms), true],
        [String(r.requests.error_count), true],
        [String(r.memory.exit_stack_size), true],
        [utcExact(last), false],
      ].forEach(function (cell) {
        var td = document.createElement("td");
        td.textContent = cell[0];
        if (cell[1]) td.className = "um-num";
        tr.appendChild(td);
      });
      return tr;
    });
    var body = byId("um-parts");
    body.replaceChildren.apply(body, rows);
  }

  // ---- the socket: connect, frames, reconnect with backoff and jitter ------------------------------

  var socket = null;
  var attempt = 0;
  var retryTimer = null;

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var query = isList ? queryOf(view) : "?";
    return scheme + window.location.host + config.ws + (query === "?" ? "" : query);
  }

  function apply(frame) {
    lastTimestamp = parseTime(frame.timestamp);
    receivedAt = Date.now();
    document.body.dataset.seq = String(frame.seq);
    if (isList) applyList(frame);
    else applyDetail(frame);
    showUpdated();
  }

  function onFrame(event) {
    var frame;
    try {
      frame = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (frame.type !== "snapshot") return;
    document.body.dataset.receivedSeq = String(frame.seq);
    if (connState !== "live") setConn("live");
    if (paused) {
      pending = frame; // hold the page still; the newest frame is shown on resume
      return;
    }
    apply(frame);
  }

  function connect() {
    window.clearTimeout(retryTimer);
    retryTimer = null;
    if (!navigator.onLine) {
      setConn("offline");
      return;
    }
    setConn("connecting");
    var ws = new WebSocket(socketUrl());
    socket = ws;
    ws.addEventListener("open", function () {
      attempt = 0;
      setConn("live");
    });
    ws.addEventListener("message", onFrame);
    ws.addEventListener("close", function () {
      if (socket !== ws) return;
      socket = null;
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (!navigator.onLine) {
      setConn("offline");
      return;
    }
    // Exponential backoff from 1 s to 30 s, with jitter so that a restart does not bring every
    // browser back in the same second.
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    var delay = Math.max(BACKOFF_MIN_MS, ceiling / 2 + Math.random() * (ceiling / 2));
    attempt += 1;
    retryAt = Date.now() + delay;
    setConn("reconnecting");
    retryTimer = window.setTimeout(connect, delay);
  }

  window.addEventListener("online", function () {
    if (!socket) connect();
  });
  window.addEventListener("offline", function () {
    if (!socket) {
      window.clearTimeout(retryTimer);
      setConn("offline");
    }
  });
  window.addEventListener("pagehide", function () {
    if (socket) {
      var ws = socket;
      socket = null;
      ws.close();
    }
  });

  function setPaused(value) {
    paused = value;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
    document.body.classList.toggle("um-paused", paused);
    if (!paused && pending) {
      var frame = pending;
      pending = null;
      apply(frame);
    }
    showConn();
  }

  pauseButton.hidden = false;
  pauseButton.addEventListener("click", function () {
    setPaused(!paused);
  });

  // Relative times, the countdown and the lifecycle line move every second between frames.
  function tick() {
    var nowMs = serverNow();
    if (!paused) {
      Array.prototype.forEach.call(document.querySelectorAll("[data-time]"), function (node) {
        var target = node.querySelector(".um-rel") || node;
        var text = ago(parseTime(node.dataset.time), nowMs);
        if (target.textContent !== text) target.textContent = text;
      });
      if (detailUser) byId("um-lifecycle").textContent = lifecycleWords(detailUser, nowMs, evictedAt);
    }
    showUpdated();
    showConn();
  }

  if (isList) {
    setupList();
    setupWindow();
  } else setupDetail();
  connect();
  window.setInterval(tick, 1000);
})();
