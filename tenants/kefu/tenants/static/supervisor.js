// The supervisor page: the tenant's connected calls, live, and one-click
// Monitor / Whisper / Barge / Take over / Leave / Pause-Resume recording.
// The list is re-read (GET /api/v1/calls) whenever /ws/events reports a call state
// change (a call connected or ended); durations tick locally.  Joining a call makes one softphone
// leg (POST /api/v1/supervision/calls/{id}, a non-trickle offer with fresh ICE servers
// from /api/v1/media/ice-servers); switching mode is one PUT on the same leg.
// Rows: #calls-table tr[data-call-id]; in each, .supervision (data-mode:
// monitor | whisper | barge | taken_over | "") and the buttons .monitor-button,
// .whisper-button, .barge-button, .takeover-button, .leave-button, .recording-button.
import { Softphone } from "/static/webrtc/softphone.js";
import { $, api, applyLanguage, logIn, session, showError, socketUrl, t, userIceServers } from "./common.js";

const SUPERVISE = "acd.agents.supervise";
const MODES = ["monitor", "whisper", "barge"];
let calls = [];                 // connected calls, newest first
let agentNames = {};
const recordingPaused = {};     // call id -> bool, folded from the call's events
let mine = null;                // { call_id, mode, phone } of the call this supervisor is on
let socket = null;
let closing = false;
let refreshing = null;
let again = false;

// --- the list -------------------------------------------------------------------------------

function duration(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
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

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content ?? "";
  return td;
}

function render() {
  const rows = calls.map((call) => {
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
    const time = document.createElement("span");
    time.className = "duration";
    time.dataset.since = call.answered_at || call.started_at;
    time.textContent = duration(time.dataset.since);
    tr.append(cell(call.caller_name), cell(agentNames[call.agent_id] || ""), cell(time), cell(state), cell(actions));
    return tr;
  });
  $("calls-table").querySelector("tbody").replaceChildren(...rows);
  $("no-calls").hidden = calls.length > 0;
}

function tick() {
  for (const el of document.querySelectorAll("#calls-table .duration")) el.textContent = duration(el.dataset.since);
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

/** Re-read the connected calls (one read at a time; a request meanwhile reads once more after). */
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      const page = await api("GET", "/api/v1/calls?limit=200");
      const connected = page.items.filter((c) => c.status === "connected");
      if (connected.some((c) => c.agent_id && !(c.agent_id in agentNames))) {
        const agents = await api("GET", "/api/v1/agents");
        agentNames = Object.fromEntries(agents.map((a) => [a.id, a.display_name]));
      }
      // A call's recording state is read once, when it first shows; then from our own answers.
      await Promise.all(connected.filter((c) => !(c.id in recordingPaused)).map((c) => foldRecording(c.id)));
      calls = connected;
      if (mine && !calls.some((c) => c.id === mine.call_id)) dropMine();  // the call ended
      render();
    } while (again);
  })();
  try { await refreshing; } catch (error) { showError(error.message); } finally { refreshing = null; }
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
    else if (frame.type === "event" && frame.event.event_type === "call.state_changed") refresh();
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
