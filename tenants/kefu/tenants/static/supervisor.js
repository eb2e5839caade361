// The supervisor console: the agents of the supervisor's teams (state, time in state,
// current call; Force ready / Force not ready / Force logout), the supervisor's queues
// (waiting, longest wait, today's service level, agents by state) and the connected
// calls they may join, with one-click Monitor / Whisper / Barge / Take over / Leave /
// Pause-Resume recording.  A tenant admin sees the whole tenant (docs/supervision.md).
// The console is re-read (GET /api/v1/supervision/console) whenever /ws/events reports
// an agent or call state change; times tick locally.  Joining a call makes one softphone
// leg (POST /api/v1/supervision/calls/{id}, a non-trickle offer with fresh ICE servers
// from /api/v1/media/ice-servers); switching mode is one PUT on the same leg.
// Rows: #agents-table tr[data-agent-id] (.state[data-state], .since, .force-ready-button,
// .force-not-ready-button, .force-logout-button; the not-ready reason is #force-reason),
// #queues-table tr[data-queue-id] (.waiting, .longest, .service-level, .available, .busy),
// #calls-table tr[data-call-id] (.supervision[data-mode]: monitor | whisper | barge |
// taken_over | "", and .monitor-button, .whisper-button, .barge-button, .takeover-button,
// .leave-button, .recording-button).
import { Softphone } from "/static/webrtc/softphone.js";
import { $, api, applyLanguage, logIn, session, showError, socketUrl, t, userIceServers } from "./common.js";

const SUPERVISE = "acd.agents.supervise";
const MODES = ["monitor", "whisper", "barge"];
const BUSY = ["ringing", "on_call", "wrap_up"];
let view = { agents: [], queues: [], calls: [], scope: { all: true } };
let reasonCodes = [];
const recordingPaused = {};     // call id -> bool, folded from the call's events
let mine = null;                // { call_id, mode, phone } of the call this supervisor is on
let socket = null;
let closing = false;
let refreshing = null;
let again = false;

// --- the console -----------------------------------------------------------------------------

function clock(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const mm = hours ? String(minutes % 60).padStart(2, "0") : String(minutes);
  return `${hours ? `${hours}:` : ""}${mm}:${String(seconds % 60).padStart(2, "0")}`;
}

function button(className, label, enabled, onClick, pressed) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = t(label);
  b.disabled = !enabled;
  if (pressed !== undefined) b.setAttribute("aria-pressed", String(pressed));
  b.addEventListener("click", onClick);
  return b;
}

function cell(content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content); else td.textContent = content ?? "";
  return td;
}

function ticking(since, className) {
  const span = document.createElement("span");
  span.className = `ticking ${className}`;
  span.dataset.since = since;
  span.textContent = clock(since);
  return span;
}

function reasonWords(code) {
  const tenantCode = reasonCodes.find((r) => r.code === code && r.label);
  if (tenantCode) return tenantCode.label;
  const key = `reason_${code}`;
  return t(key) === key ? code : t(key);
}

function stateWords(agent) {
  const word = t(`state_${agent.state}`);
  return agent.state === "not_ready" && agent.reason && agent.reason !== "not_ready" ? `${word} (${reasonWords(agent.reason)})` : word;
}

function renderAgents() {
  const rows = view.agents.map((agent) => {
    const tr = document.createElement("tr");
    tr.dataset.agentId = agent.id;
    const state = document.createElement("span");
    state.className = "state";
    state.dataset.state = agent.state;
    state.textContent = stateWords(agent);
    const actions = document.createElement("span");
    actions.className = "actions";
    const loggedIn = agent.state !== "offline";
    actions.append(
      button("force-ready-button", "force_ready", loggedIn && agent.status !== "available", () => force(agent.id, "available")),
      button("force-not-ready-button", "force_not_ready", loggedIn, () => force(agent.id, "not_ready")),
      button("force-logout-button", "force_logout", loggedIn && agent.system_state !== "on_call", () => force(agent.id, "offline")),
    );
    const call = agent.current_call ? agent.current_call.caller_name || "" : "";
    tr.append(cell(agent.display_name), cell(agent.team || ""), cell(state), cell(ticking(agent.state_since, "since")), cell(call), cell(actions));
    return tr;
  });
  $("agents-table").querySelector("tbody").replaceChildren(...rows);
  $("no-agents").hidden = view.agents.length > 0;
}

function renderQueues() {
  const rows = view.queues.map((queue) => {
    const tr = document.createElement("tr");
    tr.dataset.queueId = queue.id;
    const sl = queue.service_level.percent === null ? "—" : `${queue.service_level.percent}% (≤ ${queue.service_level.target_s} s)`;
    const longest = queue.oldest_since ? ticking(queue.oldest_since, "longest") : "0:00";
    const busy = BUSY.reduce((sum, state) => sum + (queue.agents[state] || 0), 0);
    const level = cell(sl, "service-level");
    // Today's counts behind the figure (a short abandon is left out of it: docs/reports.md).
    for (const key of ["answered", "abandoned", "short_abandoned"]) level.dataset[key.replace("_a", "A")] = String(queue.service_level[key] ?? 0);
    tr.append(cell(queue.name), cell(String(queue.waiting), "waiting"), cell(longest, "longest-cell"), level,
      cell(String(queue.agents.available || 0), "available"), cell(String(busy), "busy"));
    return tr;
  });
  $("queues-table").querySelector("tbody").replaceChildren(...rows);
  $("no-queues").hidden = view.queues.length > 0;
}

function renderCalls() {
  const rows = view.calls.map((call) => {
    const own = mine && mine.call_id === call.id;
    const free = !mine || (own && mine.mode !== "taken_over");
    const tr = document.createElement("tr");
    tr.dataset.callId = call.id;
    const state = document.createElement("span");
    state.className = "supervision";
    state.dataset.mode = own ? mine.mode : "";
    state.textContent = own ? t(`mode_${mine.mode}`) : "";
    const actions = document.createElement("span");
    actions.className = "actions";
    for (const mode of MODES) actions.append(button(`${mode}-button`, mode, free, () => supervise(call.id, mode), own && mine.mode === mode));
    actions.append(
      button("takeover-button", "take_over", own && mine.mode !== "taken_over", () => takeOver(call.id)),
      button("leave-button", "leave", own, () => leave(call.id)),
      button("recording-button", recordingPaused[call.id] ? "resume_recording" : "pause_recording", true,
        () => setRecording(call.id, !recordingPaused[call.id]), Boolean(recordingPaused[call.id])),
    );
    tr.append(cell(call.caller_name), cell(call.agent_name || ""), cell(ticking(call.answered_at || call.started_at, "duration")),
      cell(state), cell(actions));
    return tr;
  });
  $("calls-table").querySelector("tbody").replaceChildren(...rows);
  $("no-calls").hidden = view.calls.length > 0;
}

function render() {
  $("scope-note").dataset.all = String(view.scope.all);
  $("scope-note").textContent = t(view.scope.all ? "scope_all" : "scope_some");
  renderAgents();
  renderQueues();
  renderCalls();
}

function tick() {
  for (const el of document.querySelectorAll(".ticking")) el.textContent = clock(el.dataset.since);
}

async function foldRecording(callId) {
  const events = await api("GET", `/api/v1/calls/${callId}/events`);
  let paused = false;
  for (const e of events) {
    if (e.type === "recording_paused") paused = true;
    else if (e.type === "recording_resumed") paused = false;
  }
  recordingPaused[callId] = paused;
}

/** Re-read the console (one read at a time; a request meanwhile reads once more after). */
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      const next = await api("GET", "/api/v1/supervision/console");
      // A call's recording state is read once, when it first shows; then from our own answers.
      await Promise.all(next.calls.filter((c) => !(c.id in recordingPaused)).map((c) => foldRecording(c.id)));
      view = next;
      if (mine && !view.calls.some((c) => c.id === mine.call_id)) dropMine();  // the call ended
      render();
    } while (again);
  })();
  try { await refreshing; } catch (error) { showError(error.message); } finally { refreshing = null; }
}

async function force(agentId, status) {
  showError("");
  const reason = $("force-reason").value;
  const body = status === "not_ready" && reason ? { status, reason } : { status };
  try {
    await api("PUT", `/api/v1/supervision/agents/${agentId}/status`, body);
  } catch (error) { showError(error.message); }
  await refresh();
}

async function loadReasonCodes() {
  try {
    reasonCodes = (await api("GET", "/api/v1/reason-codes")).filter((r) => r.active);
  } catch { reasonCodes = []; }
  const options = reasonCodes.map((r) => {
    const option = document.createElement("option");
    option.value = r.code;
    option.textContent = r.label || r.code;
    return option;
  });
  $("force-reason").replaceChildren($("force-reason").options[0], ...options);
}

// --- supervising ------------------------------------------------------------------------------

function dropMine() {
  if (mine) mine.phone.hangup();
  mine = null;
}

function attachAudio() {
  if (mine && $("remote-audio").srcObject !== mine.phone.remoteStream) $("remote-audio").srcObject = mine.phone.remoteStream;
}

async function supervise(callId, mode) {
  showError("");
  if (mine && mine.call_id === callId) {
    // Already on the call: one PUT switches what the leg hears and says.
    try {
      await api("PUT", `/api/v1/supervision/calls/${callId}/mode`, { mode });
      mine.mode = mode;
    } catch (error) { showError(error.message); }
    render();
    return;
  }
  // The join is an HTTP offer and /ws/events takes no candidates: the offer stays non-trickle
  // (it holds every candidate), with ICE servers fetched for this connection.
  const phone = new Softphone({ iceServers: userIceServers, onState: () => attachAudio() });
  window.kefuSoftphone = phone;
  mine = { call_id: callId, mode, phone };
  render();
  try {
    const offer = await phone.createOffer();
    const { answer_sdp } = await api("POST", `/api/v1/supervision/calls/${callId}`, { mode, offer_sdp: offer });
    await phone.acceptAnswer(answer_sdp);
    attachAudio();
  } catch (error) {
    showError(error.message);
    if (mine && mine.phone === phone) dropMine();
    render();
  }
}

async function takeOver(callId) {
  showError("");
  try {
    const audio = await api("POST", `/api/v1/supervision/calls/${callId}/takeover`);
    if (mine && mine.call_id === callId && audio.taken_over) mine.mode = "taken_over";
  } catch (error) { showError(error.message); }
  render();
}

async function leave(callId) {
  showError("");
  try { await api("DELETE", `/api/v1/supervision/calls/${callId}`); } catch (error) { showError(error.message); }
  if (mine && mine.call_id === callId) dropMine();
  await refresh();
}

async function setRecording(callId, paused) {
  showError("");
  try {
    const audio = await api("PUT", `/api/v1/supervision/calls/${callId}/recording`, { paused });
    recordingPaused[callId] = audio.recording_paused;
  } catch (error) { showError(error.message); }
  render();
}

// --- live events ------------------------------------------------------------------------------

function connect() {
  const { access_token } = session.load();
  socket = new WebSocket(socketUrl(`/ws/events?access_token=${encodeURIComponent(access_token)}`));
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "ready") refresh();
    else if (frame.type === "event" && ["call.state_changed", "agent.state_changed"].includes(frame.event.event_type)) refresh();
  });
  socket.addEventListener("close", () => {
    // Reconnect (refreshing an expired token first) unless logging out.
    if (!closing && session.load()) setTimeout(async () => { await api("GET", "/api/v1/me").catch(() => null); connect(); }, 2000);
  });
}

async function start() {
  const me = await api("GET", "/api/v1/me");
  if (!me.permissions.includes(SUPERVISE)) {
    session.clear();
    throw new Error(t("not_a_supervisor"));
  }
  applyLanguage(me.user.locale || me.tenant.locale);
  $("login-form").hidden = true;
  $("supervisor").hidden = false;
  $("supervisor-name").textContent = me.user.display_name;
  render();
  loadReasonCodes();
  connect();
  setInterval(tick, 1000);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("", "login-error");
  try {
    await logIn($("tenant").value.trim(), $("email").value.trim(), $("password").value);
    await start();
  } catch (error) {
    showError(error.message, "login-error");
  }
});

$("logout-button").addEventListener("click", async () => {
  closing = true;
  if (mine) await leave(mine.call_id);
  if (socket) socket.close();
  const current = session.load();
  if (current) await api("POST", "/api/v1/auth/logout", { refresh_token: current.refresh_token }).catch(() => null);
  session.clear();
  location.reload();
});

if (session.load()) start().catch((error) => { session.clear(); showError(error.message, "login-error"); });
