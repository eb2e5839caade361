// Shared helpers of the Kefu pages: page config, texts in two languages,
// the JSON API with bearer tokens (refreshed when they expire), the ICE servers,
// and the signalling sockets (offers, trickled candidates: docs/signalling.md).

export const config = JSON.parse(document.getElementById("kefu-config").textContent);
let lang = config.lang;

export const $ = (id) => document.getElementById(id);

export function t(key) {
  return (config.messages[lang] || config.messages.en)[key] || key;
}

/** Switch the page's texts to another language (after log-in: the user's or tenant's locale). */
export function applyLanguage(wanted) {
  if (config.lang_fixed || !wanted) return;
  const normal = wanted.toLowerCase().startsWith("zh") ? "zh-CN" : wanted.toLowerCase().startsWith("en") ? "en" : null;
  if (!normal || normal === lang) return;
  lang = normal;
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

/** A new element: ``props`` assigned to it, then ``children`` appended (null and undefined skipped). */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** An event handler that clears the page's error, runs ``handler`` and shows what it throws. */
export function guarded(handler) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    showError("");
    try { await handler(event); } catch (error) { showError(error.message); }
  };
}

export function showError(message, id = "error") {
  const el = $(id);
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super((body && (body.detail || body.code)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.body = body;
    this.retryAfter = retryAfter;  // seconds, from a Retry-After header (503s), else null
  }
}

const STORE = "kefu.session." + location.pathname.split("/")[1];

export const session = {
  load() {
    try { return JSON.parse(sessionStorage.getItem(STORE)); } catch { return null; }
  },
  save(value) { sessionStorage.setItem(STORE, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(STORE); },
};

async function send(method, path, body, headers) {
  const response = await fetch(path, {
    method,
    headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(response.status, data, Number.isFinite(retryAfter) ? retryAfter : null);
  }
  return data;
}

/** A public call (caller page): no bearer token. */
export function publicApi(method, path, body, headers = {}) {
  return send(method, path, body, headers);
}

async function refresh() {
  const current = session.load();
  if (!current || !current.refresh_token) throw new ApiError(401, { code: "unauthorized" });
  const renewed = await send("POST", "/api/v1/auth/refresh", { refresh_token: current.refresh_token });
  session.save({ ...current, ...renewed });
  return renewed.access_token;
}

/** A call with the signed-in user's token; an expired token is refreshed once. */
export async function api(method, path, body, headers = {}) {
  const current = session.load();
  const auth = (token) => ({ ...headers, Authorization: `Bearer ${token}` });
  try {
    return await send(method, path, body, auth(current && current.access_token));
  } catch (error) {
    if (error.status !== 401 || !current) throw error;
    return await send(method, path, body, auth(await refresh()));
  }
}

export async function logIn(tenant, email, password) {
  const result = await send("POST", "/api/v1/auth/login", { tenant, email, password });
  session.save(result);
  return result;
}

export async function fetchBlob(path) {
  const current = session.load();
  const response = await fetch(path, { headers: { Authorization: `Bearer ${current.access_token}` } });
  if (!response.ok) throw new ApiError(response.status, null);
  return await response.blob();
}

/** Play an audio resource of the API (fetched with the bearer token) in ``player``. */
export async function playAudio(player, path) {
  player.src = URL.createObjectURL(await fetchBlob(path));
  player.hidden = false;
  return player.play();
}

/** A page behind the log-in form: signing in calls ``start(signedIn)``, and a session this tab
 * already holds resumes at once (one that no longer works is forgotten, back to the form). */
export function signedInPage(start) {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("", "login-error");
    try {
      const result = await logIn($("tenant").value.trim(), $("email").value.trim(), $("password").value);
      applyLanguage(result.user.locale || result.tenant.locale);
      await start(result);
    } catch (error) {
      showError(error.message || t("login_failed"), "login-error");
    }
  });
  const saved = session.load();
  if (saved) {
    applyLanguage((saved.user && saved.user.locale) || (saved.tenant && saved.tenant.locale));
    start(saved).catch((error) => { session.clear(); showError(error.message, "login-error"); });
  }
}

/** Sign out: revoke this page's refresh token (best effort), forget the session, start over. */
export async function logOut() {
  const current = session.load();
  if (current) await fetch("/api/v1/auth/logout", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: current.refresh_token }) }).catch(() => null);
  session.clear();
  location.reload();
}

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

// --- ICE servers and signalling (docs/signalling.md) ---------------------------------------

/** The ICE servers for the signed-in user's next peer connection (a fresh TURN credential). */
export async function userIceServers() {
  return (await api("GET", "/api/v1/media/ice-servers")).ice_servers;
}

/** The ICE servers for a caller's next peer connection, through the widget key. */
export async function widgetIceServers(widgetKey) {
  return (await publicApi("GET", `/api/v1/widget/${encodeURIComponent(widgetKey)}/ice-servers`)).ice_servers;
}

/** A refusal on a signalling socket ({"type":"error","code","detail"}), or the socket closing under a request. */
export class SignallingError extends Error {
  constructor(code, detail, closeCode = null) {
    super(detail ? `${detail} (${code})` : code);
    this.code = code;
    this.closeCode = closeCode;
  }
}

// What says the call is over (or was never ours), over HTTP or on a socket.
const CALL_GONE_CODES = ["call_not_found", "call_ended", "call_not_connected", "call_not_ringing", "consult_not_ringing"];

export function callIsGone(error) {
  return error.status === 404 || error.status === 409 || CALL_GONE_CODES.includes(error.code) || error.closeCode === 4404;
}

/** The ice_candidate message for one trickled candidate (RTCIceCandidate.toJSON()), or null: gathering is complete. */
export function candidateMessage(callId, candidate) {
  return { type: "ice_candidate", call_id: callId, ...(candidate || { candidate: null }) };
}

/** One offer's candidates: held until the page may send them (its offer went out on a socket,
 *  or its HTTP answer is back: the leg exists only then), then sent as they come. */
export class CandidateOutbox {
  constructor() {
    this.held = [];
    this.sendOne = null;
  }

  add(candidate) {
    if (this.sendOne) this.sendOne(candidate);
    else this.held.push(candidate);
  }

  open(sendOne) {
    this.sendOne = sendOne;
    for (const candidate of this.held.splice(0)) sendOne(candidate);
  }
}

const REQUEST_TIMEOUT_MS = 30_000;
// After a rate_limited error the socket sends nothing for this long (the server dropped a message unread).
const SLOW_DOWN_MS = 1_000;
let requests = 0;

/** The agent or caller socket: pushes go to onMessage; offers are requests answered by the
 *  `answer` (or `error`) with the same request_id.  Messages sent before it opens wait for it. */
export class SignallingSocket {
  constructor(path, { onMessage = (message) => {}, onOpen = () => {}, onClose = (event) => {} } = {}) {
    this.pending = new Map();
    this.queue = [];
    this.quietUntil = 0;
    this.timer = null;
    this.ws = new WebSocket(socketUrl(path));
    this.ws.addEventListener("open", () => { this._flush(); onOpen(); });
    this.ws.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (!this._settle(message)) onMessage(message);
    });
    this.ws.addEventListener("close", (event) => {
      clearTimeout(this.timer);
      this.queue = [];
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new SignallingError("socket_closed", event.reason, event.code));
      }
      this.pending.clear();
      onClose(event);
    });
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get closed() {
    return this.ws.readyState === WebSocket.CLOSING || this.ws.readyState === WebSocket.CLOSED;
  }

  send(message) {
    if (this.closed) return;
    this.queue.push(JSON.stringify(message));
    this._flush();
  }

  /** Send an offer for the call; resolves with the answer's SDP, rejects with a SignallingError. */
  offer(callId, sdp) {
    return this.request({ type: "offer", call_id: callId, sdp }).then((answer) => answer.sdp);
  }

  request(message) {
    if (this.closed) return Promise.reject(new SignallingError("socket_closed", "the socket is closed"));
    const requestId = `r${++requests}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new SignallingError("timeout", "no answer from the server"));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(requestId, { resolve, reject, timer });
      this.send({ ...message, request_id: requestId });
    });
  }

  close() {
    this.ws.close();
  }

  /** An answer or error for a request of ours, or an error of no request: handled here. */
  _settle(message) {
    if (message.type !== "answer" && message.type !== "error") return false;
    if (message.type === "error" && message.code === "rate_limited") this.quietUntil = Date.now() + SLOW_DOWN_MS;
    const request = message.request_id != null ? this.pending.get(message.request_id) : null;
    if (!request) {
      if (message.type === "error") console.warn("signalling:", message.code, message.detail);
      return true;
    }
    this.pending.delete(message.request_id);
    clearTimeout(request.timer);
    if (message.type === "answer") request.resolve(message);
    else request.reject(new SignallingError(message.code, message.detail));
    return true;
  }

  _flush() {
    if (!this.open || this.timer) return;
    const wait = this.quietUntil - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = null; this._flush(); }, wait);
      return;
    }
    for (const data of this.queue.splice(0)) this.ws.send(data);
  }
}
