// The agent desktop: log in to the seat, ready / not ready, answer, hang up,
// hold / mute / recording pause, and what a supervisor is doing on the call.
// #agent-state: offline | available | not_ready | ringing | on_call (a code, hidden;
//               #agent-state-label shows it in words)
// #call-state:  idle | ringing | connecting | connected | ended
// The agent socket (/ws/agent) pushes state, offers and the call's audio state
// (call.audio, call.taken_over); its pings renew the presence lease.
// A reloaded page finds its connected call in the seat's state and re-attaches
// to it (POST /api/v1/agent/calls/{id}/media); so does a page whose connection
// fails (a network change): the server keeps the call for a grace period.
import { Softphone } from "/static/webrtc/softphone.js";
import { $, api, applyLanguage, config, logIn, session, showError, socketUrl, t } from "./common.js";

const PING_MS = 10_000;
const NO_AUDIO = { on_hold: false, muted: false, recording_paused: false, supervisor: null, taken_over: false };
let socket = null;
let pinger = null;
let softphone = null;
let currentCall = null;
let closing = false;
let reattaching = false;
let agentState = { state: "offline", reason: null };
let audio = { ...NO_AUDIO };

// --- what the page shows ----------------------------------------------------------------

function stateWords(state, reason) {
  const word = t(`state_${state}`);
  if (state !== "not_ready" || !reason || reason === "not_ready") return word;
  const key = `reason_${reason}`;
  return `${word} (${t(key) === key ? reason : t(key)})`;
}

function setAgentState(state, reason = null) {
  agentState = { state, reason };
  $("agent-state").textContent = state;
  $("agent-state-label").textContent = stateWords(state, reason);
  $("agent-state-label").dataset.state = state;
  $("ready-button").disabled = state === "available" || state === "offline";
  $("not-ready-button").disabled = state === "not_ready" || state === "offline";
}

function setCallState(state) {
  $("call-state").textContent = state;
  $("answer-button").disabled = state !== "ringing";
  $("hangup-button").disabled = !["connecting", "connected"].includes(state);
  renderAudio();
}

function toggle(id, pressed, whenPressed, whenNot, enabled) {
  const button = $(id);
  button.textContent = t(pressed ? whenPressed : whenNot);
  button.setAttribute("aria-pressed", String(pressed));
  button.disabled = !enabled;
}

function renderAudio() {
  const live = $("call-state").textContent === "connected" && !audio.taken_over;
  toggle("hold-button", audio.on_hold, "resume", "hold", live);
  toggle("mute-button", audio.muted, "unmute", "mute", live);
  toggle("recording-button", audio.recording_paused, "resume_recording", "pause_recording", live);
  const states = [audio.on_hold && "on_hold", audio.muted && "muted", audio.recording_paused && "recording_paused"].filter(Boolean);
  $("audio-state").textContent = states.map(t).join(" · ");
  $("audio-state").hidden = !live || states.length === 0;
  const notice = $("supervisor-notice");
  const supervisor = live ? audio.supervisor : null;
  notice.dataset.mode = supervisor ? supervisor.mode : "";
  notice.textContent = supervisor ? t(`supervisor_${supervisor.mode}`).replace("{name}", supervisor.name || t("a_supervisor")) : "";
  notice.hidden = !supervisor;
}

function applyAudio(state) {
  if (!state) return;
  // The API's answers carry no supervisor name; the pushes do: keep the name we know.
  const known = audio.supervisor;
  const supervisor = state.supervisor && !state.supervisor.name && known ? { ...state.supervisor, name: known.name } : state.supervisor;
  audio = { on_hold: state.on_hold, muted: state.muted, recording_paused: state.recording_paused, supervisor, taken_over: state.taken_over };
  renderAudio();
}

function render() {
  setAgentState(agentState.state, agentState.reason);
  renderAudio();
}

// --- the call's media ---------------------------------------------------------------------

function attachAudio() {
  if (softphone && softphone.remoteStream && $("remote-audio").srcObject !== softphone.remoteStream) {
    $("remote-audio").srcObject = softphone.remoteStream;
  }
}

function newSoftphone() {
  const phone = new Softphone({
    iceServers: config.ice_servers,
    onState: (state) => {
      if (phone !== softphone) return;
      attachAudio();
      if (state === "connected") setCallState("connected");
      // A network change: offer again on a fresh connection while the server waits for us.
      if ((state === "failed" || state === "disconnected") && $("call-state").textContent === "connected") reattach();
    },
  });
  softphone = phone;
  window.kefuSoftphone = phone;
  return phone;
}

function hangUpLocally() {
  if (softphone) softphone.hangup();
  softphone = null;
}

function offered(callId, callerName) {
  currentCall = callId;
  audio = { ...NO_AUDIO };
  $("call-id").textContent = callId;
  $("caller-label").textContent = callerName || "";
  $("taken-over-notice").hidden = true;
  setCallState("ringing");
}

function ended() {
  hangUpLocally();
  audio = { ...NO_AUDIO };
  if (currentCall) setCallState("ended");
}

function takenOver() {
  // The server already closed our leg and freed us: no hang-up request, just stop the softphone.
  hangUpLocally();
  audio = { ...NO_AUDIO, taken_over: true };
  $("taken-over-notice").hidden = false;
  setCallState("ended");
}

/** Offer again for the current connected call: after a reload (no softphone yet) or a failed connection. */
async function reattach() {
  if (reattaching || !currentCall) return;
  reattaching = true;
  const callId = currentCall;
  $("reconnecting-notice").hidden = false;
  try {
    const phone = softphone && softphone.state !== "closed" ? softphone : newSoftphone();
    const offer = phone.pc ? await phone.reoffer() : await phone.createOffer();
    const answer = await api("POST", `/api/v1/agent/calls/${callId}/media`, { offer_sdp: offer });
    if (phone !== softphone || callId !== currentCall) return;  // ended or taken over meanwhile
    await phone.acceptAnswer(answer.answer_sdp);
    attachAudio();
    applyAudio(answer.audio);
  } catch (error) {
    if (callId !== currentCall || audio.taken_over) return;
    showError(error.message);
    if (error.status === 404 || error.status === 409) ended();
  } finally {
    reattaching = false;
    $("reconnecting-notice").hidden = true;
  }
}

// --- the agent socket -----------------------------------------------------------------------

function onMessage(message) {
  if (message.type === "agent.state") {
    setAgentState(message.state, message.reason);
    if (message.state === "ringing" && message.call_id && message.call_id !== currentCall) offered(message.call_id, "");
    if (message.state !== "ringing" && message.state !== "on_call" && $("call-state").textContent === "ringing") ended();
  } else if (message.type === "call.offered") {
    offered(message.call_id, message.caller_name);
  } else if (message.type === "call.audio" && message.call_id === currentCall) {
    applyAudio(message);
  } else if (message.type === "call.taken_over" && message.call_id === currentCall) {
    takenOver();
  } else if (message.type === "call.ended" && message.call_id === currentCall) {
    ended();
  }
}

function connect() {
  const { access_token } = session.load();
  socket = new WebSocket(socketUrl(`/ws/agent?access_token=${encodeURIComponent(access_token)}`));
  socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
  socket.addEventListener("open", () => {
    pinger = setInterval(() => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ type: "ping" })), PING_MS);
  });
  socket.addEventListener("close", () => {
    clearInterval(pinger);
    if (!closing && session.load()) setTimeout(async () => { await api("GET", "/api/v1/agent/state").catch(() => null); connect(); }, 2000);
  });
}

async function start() {
  const state = await api("POST", "/api/v1/agent/session");
  $("login-form").hidden = true;
  $("desktop").hidden = false;
  $("agent-name").textContent = state.display_name;
  setAgentState(state.state, state.not_ready_reason);
  setCallState("idle");
  if (state.state === "ringing" && state.current_call_id) offered(state.current_call_id, "");
  if (state.state === "on_call" && state.current_call_id) {
    // A reload mid-call: the call goes on; re-attach to it at once.
    offered(state.current_call_id, "");
    setCallState("connecting");
    reattach();
    api("GET", `/api/v1/calls/${state.current_call_id}`).then((call) => { $("caller-label").textContent = call.caller_name; }).catch(() => null);
  }
  connect();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("", "login-error");
  try {
    const result = await logIn($("tenant").value.trim(), $("email").value.trim(), $("password").value);
    applyLanguage(result.user.locale || result.tenant.locale);
    render();
    await start();
  } catch (error) {
    showError(error.message, "login-error");
  }
});

async function setStatus(status, reason) {
  try {
    const state = await api("PUT", "/api/v1/agent/status", reason ? { status, reason } : { status });
    setAgentState(state.state, state.not_ready_reason);
  } catch (error) { showError(error.message); }
}

$("ready-button").addEventListener("click", () => setStatus("available"));
$("not-ready-button").addEventListener("click", () => setStatus("not_ready", "break"));

$("answer-button").addEventListener("click", async () => {
  showError("");
  setCallState("connecting");
  try {
    const phone = newSoftphone();
    const offer = await phone.createOffer();
    const { answer_sdp } = await api("POST", `/api/v1/agent/calls/${currentCall}/answer`, { offer_sdp: offer });
    await phone.acceptAnswer(answer_sdp);
    attachAudio();
  } catch (error) {
    showError(error.message);
    ended();
  }
});

$("hangup-button").addEventListener("click", async () => {
  try { await api("POST", `/api/v1/agent/calls/${currentCall}/hangup`); } catch (error) { showError(error.message); }
  ended();
});

async function control(action, body) {
  showError("");
  try { applyAudio(await api("PUT", `/api/v1/agent/calls/${currentCall}/${action}`, body)); }
  catch (error) { showError(error.message); }
}

$("hold-button").addEventListener("click", () => control("hold", { on_hold: !audio.on_hold }));
$("mute-button").addEventListener("click", () => control("mute", { muted: !audio.muted }));
$("recording-button").addEventListener("click", () => control("recording", { paused: !audio.recording_paused }));

$("logout-button").addEventListener("click", async () => {
  closing = true;
  try { await api("DELETE", "/api/v1/agent/session"); } catch (error) { showError(error.message); closing = false; return; }
  if (socket) socket.close();
  session.clear();
  location.reload();
});

render();
const signedIn = session.load();
if (signedIn) {
  applyLanguage((signedIn.user && signedIn.user.locale) || (signedIn.tenant && signedIn.tenant.locale));
  render();
  start().catch(() => session.clear());
}
