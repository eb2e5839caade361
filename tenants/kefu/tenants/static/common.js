// Shared helpers of the Kefu pages: page config, texts in two languages,
// the JSON API with bearer tokens (refreshed when they expire), and sockets.

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

export function showError(message, id = "error") {
  const el = $(id);
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.code)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
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
  if (!response.ok) throw new ApiError(response.status, data);
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
export async function api(method, path, body) {
  const current = session.load();
  const auth = (token) => ({ Authorization: `Bearer ${token}` });
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

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}
