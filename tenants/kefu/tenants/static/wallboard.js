// The wallboard (docs/wallboard.md): big tiles for the whole contact center (or the
// supervisor's queues and teams), the agents-by-state bar, a row per queue and per team,
// and a clock.  Everything arrives on /ws/wallboard: the snapshot at once, then again
// within a second of each call or agent change; waits tick here between snapshots.  The
// socket reconnects after a drop (a token that expired meanwhile is refreshed first).
// ``?queue_id=`` / ``?team_id=`` in the page's URL narrow the board to one queue or team.
// Ids: #wb-clock, #wb-status[data-state=live|reconnecting|stopped], #wb-scope[data-all],
// #total-waiting, #total-longest, #total-sl[data-level=green|amber|red|none], #total-answered,
// #total-abandoned, #agents-bar .segment[data-state], #agents-legend [data-state] .count,
// #queues-board tr[data-queue-id] and #teams-board tr[data-team-id] (.waiting, .longest,
// .sl[data-level], .answered, .abandoned, .mini span[data-state]).
import { $, api, logOut, session, showError, signedInPage, socketUrl, t } from "./common.js";

const PERMISSION = "reports.read";
const STATES = ["available", "not_ready", "ringing", "on_call", "wrap_up", "offline"];
const MAX_BACKOFF_MS = 10_000;
let board = null;
let socket = null;
let backoff = 500;
let stopped = false;

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function wait(since) {
  if (!since) return "0:00";
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const mm = hours ? String(minutes % 60).padStart(2, "0") : String(minutes);
  return `${hours ? `${hours}:` : ""}${mm}:${String(seconds % 60).padStart(2, "0")}`;
}

function level(percent) {
  if (percent === null || percent === undefined) return "none";
  if (percent >= board.service_level_target_percent) return "green";
  if (percent >= board.service_level_target_percent - board.amber_points) return "amber";
  return "red";
}

function slText(percent) {
  return percent === null || percent === undefined ? "—" : `${percent}%`;
}

function cell(content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content); else td.textContent = content ?? "";
  return td;
}

function mini(agents) {
  const span = document.createElement("span");
  span.className = "mini";
  for (const state of STATES) {
    if (!agents[state] && state !== "available") continue;
    const item = document.createElement("span");
    item.dataset.state = state;
    item.title = t(`state_${state}`);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    item.append(swatch, String(agents[state] || 0));
    span.append(item);
  }
  return span;
}

function row(item, idName) {
  const tr = document.createElement("tr");
  tr.dataset[idName] = item.id;
  const longest = cell(wait(item.oldest_since), "longest");
  longest.dataset.since = item.oldest_since || "";
  const sl = cell(slText(item.service_level), "sl");
  sl.dataset.level = level(item.service_level);
  tr.append(cell(item.name), cell(String(item.waiting), "waiting"), longest, sl, cell(String(item.answered), "answered"),
    cell(String(item.abandoned), "abandoned"), cell(mini(item.agents), "agents"));
  return tr;
}

function render() {
  const totals = board.totals;
  $("wb-scope").dataset.all = String(board.scope.all);
  $("wb-scope").textContent = t(board.scope.all && !board.scope.queue_id && !board.scope.team_id ? "wb_totals" : "wb_totals_scoped");
  $("total-waiting").textContent = String(totals.waiting);
  $("total-callbacks").textContent = totals.callbacks ? fill(t("wb_callbacks"), { count: totals.callbacks }) : "";
  $("total-longest").dataset.since = totals.oldest_since || "";
  $("total-longest").textContent = wait(totals.oldest_since);
  $("total-sl").textContent = slText(totals.service_level);
  $("total-sl").dataset.level = level(totals.service_level);
  $("total-sl-target").textContent = totals.target_s
    ? fill(t("wb_sl_target"), { percent: board.service_level_target_percent, seconds: totals.target_s })
    : fill(t("wb_sl_target_mixed"), { percent: board.service_level_target_percent });
  $("total-answered").textContent = String(totals.answered);
  $("total-abandoned").textContent = String(totals.abandoned);

  const bar = STATES.filter((state) => totals.agents[state]).map((state) => {
    const segment = document.createElement("div");
    segment.className = "segment";
    segment.dataset.state = state;
    segment.style.flexGrow = String(totals.agents[state]);
    segment.title = `${t(`state_${state}`)}: ${totals.agents[state]}`;
    return segment;
  });
  $("agents-bar").replaceChildren(...bar);
  for (const state of STATES) {
    $("agents-legend").querySelector(`[data-state="${state}"] .count`).textContent = String(totals.agents[state] || 0);
  }
  $("queues-board").querySelector("tbody").replaceChildren(...board.queues.map((q) => row(q, "queueId")));
  $("teams-board").querySelector("tbody").replaceChildren(...board.teams.map((team) => row(team, "teamId")));
  $("queues-section").hidden = board.queues.length === 0;
  $("teams-section").hidden = board.teams.length === 0;
  $("wb-empty").hidden = board.scope.all || board.queues.length > 0 || board.teams.length > 0;
}

function tick() {
  const now = new Date();
  $("wb-clock").textContent = now.toLocaleTimeString(document.documentElement.lang, { hour12: false });
  for (const el of document.querySelectorAll("#wallboard [data-since]")) el.textContent = wait(el.dataset.since);
}

function setStatus(state) {
  $("wb-status").dataset.state = state;
  $("wb-status").textContent = t(state === "live" ? "wb_live" : "wb_reconnecting");
}

function connect() {
  const current = session.load();
  if (!current || stopped) return;
  const params = new URLSearchParams({ access_token: current.access_token });
  const page = new URLSearchParams(location.search);
  for (const name of ["queue_id", "team_id"]) if (page.get(name)) params.set(name, page.get(name));
  socket = new WebSocket(socketUrl(`/ws/wallboard?${params}`));
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "snapshot") {
      board = frame;
      backoff = 500;
      setStatus("live");
      showError("");
      render();
    } else if (frame.type === "error") {
      showError(frame.code);
    }
  });
  socket.addEventListener("close", async (event) => {
    if (stopped) return;
    if ([4403, 4404].includes(event.code)) {  // refused for good (no permission, foreign id, tenant suspended)
      $("wb-status").dataset.state = "stopped";
      showError(event.reason || String(event.code));
      return;
    }
    setStatus("reconnecting");
    const delay = backoff;
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    setTimeout(async () => {
      if (event.code === 4401) await api("GET", "/api/v1/me").catch(() => null);  // refreshes an expired token
      connect();
    }, delay);
  });
}

async function start() {
  const me = await api("GET", "/api/v1/me");
  if (!me.permissions.includes(PERMISSION)) {
    session.clear();
    throw new Error(t("wb_not_allowed"));
  }
  $("login-form").hidden = true;
  $("wallboard").hidden = false;
  document.body.classList.add("wallboard-on");
  tick();
  setInterval(tick, 1000);
  connect();
}

$("logout-button").addEventListener("click", async () => {
  stopped = true;
  if (socket) socket.close();
  await logOut();
});

$("fullscreen-button").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen(); else document.documentElement.requestFullscreen().catch(() => null);
});

// The browser tests drop the socket through this to watch the page reconnect.
window.kefuWallboard = { get socket() { return socket; } };

signedInPage(start);
