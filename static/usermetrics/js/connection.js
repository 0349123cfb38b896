/* connection.js — the live feed: the websocket, reconnects with exponential backoff and jitter,
 * pause/resume, the connection indicator, "updated N s ago", the header's alert count and the
 * server's clock.
 */
import { byId } from "./dom.js";
import { parseTime, localExact } from "./format.js";

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const CLOSE_SESSION_ENDED = 4401; // consumers.CLOSE_ACCESS_LOST

/**
 * The feed of one page (`config` is the page's um-config). Returns
 * {serverNow(), paused(), live(), setPaused(value), send(message), start(page)}; `start` connects
 * and ticks every second, with `page` = {query(), apply(frame), tick(nowMs)}: the socket URL's
 * query ("?" for none), what a frame changes, and what moves between frames.
 */
export function createFeed(config) {
  let page = null;

  // ---- the server's clock, as of the last frame ----------------------------------------------

  let lastTimestamp = parseTime(config.timestamp);
  let receivedAt = Date.now();
  function serverNow() {
    return lastTimestamp + (Date.now() - receivedAt);
  }

  // ---- connection state and the "updated N s ago" line -------------------------------------------

  const conn = byId("um-conn");
  const updated = byId("um-updated");
  const pauseButton = byId("um-pause");
  let paused = false;
  let pending = null;
  let connState = "connecting";
  let retryAt = 0;

  let socket = null;
  let attempt = 0;
  let retryTimer = null;

  function showConn() {
    let text;
    if (connState === "reconnecting") {
      text = "reconnecting in " + Math.max(1, Math.ceil((retryAt - Date.now()) / 1000)) + " s";
    } else if (connState === "connecting") {
      text = attempt ? "reconnecting…" : "connecting…";
    } else if (connState === "ended") {
      text = "session ended: reload to log in";
    } else {
      text = connState;
    }
    if (paused) text += " (paused)";
    conn.dataset.state = connState;
    if (conn.textContent !== text) conn.textContent = text;
  }

  function showUpdated() {
    const age = Math.max(0, Math.floor((Date.now() - receivedAt) / 1000));
    updated.textContent = "updated " + age + " s ago";
    updated.title = localExact(lastTimestamp);
  }

  // The "no producer is publishing" banner: its words come from the server (usermetrics.humanize).
  function showProducer(producer) {
    const banner = byId("um-producer");
    if (!banner) return;
    const absent = producer !== null && producer.state !== "ok";
    banner.hidden = !absent;
    banner.dataset.state = absent ? producer.state : "ok";
    if (absent) byId("um-producer-words").textContent = producer.words;
  }

  // The header's alert count (usermetrics.firing): words and severity come worded in every frame.
  function showAlerts(alerts) {
    const link = byId("um-alerts");
    if (!link || !alerts) return;
    link.hidden = !alerts.known;
    link.dataset.firing = String(alerts.firing);
    link.dataset.silenced = String(alerts.silenced);
    link.dataset.severity = alerts.severity;
    if (link.textContent !== alerts.words) link.textContent = alerts.words;
  }

  function setConn(state) {
    connState = state;
    showConn();
  }

  // ---- the socket: connect, frames, reconnect with backoff and jitter ------------------------------

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const query = page.query();
    return scheme + window.location.host + config.ws + (query === "?" ? "" : query);
  }

  function apply(frame) {
    lastTimestamp = parseTime(frame.timestamp);
    receivedAt = Date.now();
    document.body.dataset.seq = String(frame.seq);
    showAlerts(frame.alerts);
    page.apply(frame);
    showUpdated();
  }

  function onFrame(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return; // not JSON: no frame of ours
    }
    if (frame.type === "status") {
      showProducer(frame.producer);
      return;
    }
    if (frame.type !== "snapshot") return;
    showProducer(null); // a frame means a producer publishes
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
    const ws = new WebSocket(socketUrl());
    socket = ws;
    ws.addEventListener("open", function () {
      attempt = 0;
      setConn("live");
    });
    ws.addEventListener("message", onFrame);
    ws.addEventListener("close", function (event) {
      if (socket !== ws) return;
      socket = null;
      // 4401: the server closed the feed because the session ended (logout, staff or the account
      // gone). Reconnecting would only be refused: say so and stay closed.
      if (event.code === CLOSE_SESSION_ENDED) {
        setConn("ended");
        return;
      }
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
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    const delay = Math.max(BACKOFF_MIN_MS, ceiling / 2 + Math.random() * (ceiling / 2));
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
  // Leaving the page closes its socket: a page with an open one is kept out of the back/forward
  // cache, and the server would go on sending to a page no one sees. A pending reconnect goes too.
  window.addEventListener("pagehide", function () {
    window.clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close(); // its close event finds socket !== ws: no reconnect from there
    }
  });
  // Shown again from that cache, the page is the one it left, with no socket and nothing that
  // would open one: connect now, from the shortest backoff (the page was away, the server was not
  // failing). The first frame of a new socket is a full snapshot, so nothing missed is lost.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || socket) return;
    attempt = 0;
    connect();
  });

  // ---- pause / resume ---------------------------------------------------------------------------

  function setPaused(value) {
    paused = value;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
    document.body.classList.toggle("um-paused", paused);
    if (!paused && pending) {
      const frame = pending;
      pending = null;
      apply(frame);
    }
    showConn();
  }

  pauseButton.hidden = false;
  pauseButton.addEventListener("click", function () {
    setPaused(!paused);
  });

  // The countdown and "updated N s ago" move every second; the page moves its own times (unpaused).
  function tick() {
    const nowMs = serverNow();
    if (!paused) page.tick(nowMs);
    showUpdated();
    showConn();
  }

  return {
    serverNow: serverNow,
    paused: function () { return paused; },
    live: function () { return connState === "live"; },
    setPaused: setPaused,
    send: function (message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    },
    start: function (handlers) {
      page = handlers;
      connect();
      window.setInterval(tick, 1000);
    },
  };
}
