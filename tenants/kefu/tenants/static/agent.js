// The agent desktop: log in to the seat, ready / not ready, answer, hang up.
// #agent-state: offline | available | not_ready | ringing | on_call
// #call-state:  idle | ringing | connecting | connected | ended
// The agent socket (/ws/agent) pushes state and offers; its pings renew the presence lease.
import { Softphone } from "/static/webrtc/softphone.js";
import { $, api, applyLanguage, config, logIn, session, showError, socketUrl } from "./common.js";

const PING_MS = 10_000;
let socket = null;
let pinger = null;
let softphone = null;
let currentCall = null;
let closing = false;

function setAgentState(state) {
  $("agent-state").textContent = state;
  $("ready-button").disabled = state === "available" || state === "offline";
  $("not-ready-button").disabled = state === "not_ready" || state === "offline";
}

function setCallState(state) {
  $("call-state").textContent = state;
  $("answer-button").disabled = state !== "ringing";
  $("hangup-button").disabled = !["connecting", "connected"].includes(state);
}

function attachAudio() {
  if (softphone && softphone.remoteStream) $("remote-audio").srcObject = softphone.remoteStream;
}

function offered(callId, callerName) {
  currentCall = callId;
  $("call-id").textContent = callId;
  $("caller-label").textContent = callerName || "";
  setCallState("ringing");
}

function ended() {
  if (softphone) softphone.hangup();
  softphone = null;
  if (currentCall) setCallState("ended");
}

function onMessage(message) {
  if (message.type === "agent.state") {
    setAgentState(message.state);
    if (message.state === "ringing" && message.call_id && message.call_id !== currentCall) offered(message.call_id, "");
    if (message.state !== "ringing" && message.state !== "on_call" && $("call-state").textContent === "ringing") ended();
  } else if (message.type === "call.offered") {
    offered(message.call_id, message.caller_name);
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
  setAgentState(state.state);
  setCallState("idle");
  if (state.state === "ringing" && state.current_call_id) offered(state.current_call_id, "");
  connect();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("", "login-error");
  try {
    const result = await logIn($("tenant").value.trim(), $("email").value.trim(), $("password").value);
    applyLanguage(result.user.locale || result.tenant.locale);
    await start();
  } catch (error) {
    showError(error.message, "login-error");
  }
});

async function setStatus(status, reason) {
  try { setAgentState((await api("PUT", "/api/v1/agent/status", reason ? { status, reason } : { status })).state); }
  catch (error) { showError(error.message); }
}

$("ready-button").addEventListener("click", () => setStatus("available"));
$("not-ready-button").addEventListener("click", () => setStatus("not_ready", "break"));

$("answer-button").addEventListener("click", async () => {
  showError("");
  setCallState("connecting");
  try {
    softphone = new Softphone({
      iceServers: config.ice_servers,
      onState: (state) => { attachAudio(); if (state === "connected") setCallState("connected"); },
    });
    window.kefuSoftphone = softphone;
    const offer = await softphone.createOffer();
    const { answer_sdp } = await api("POST", `/api/v1/agent/calls/${currentCall}/answer`, { offer_sdp: offer });
    await softphone.acceptAnswer(answer_sdp);
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

$("logout-button").addEventListener("click", async () => {
  closing = true;
  try { await api("DELETE", "/api/v1/agent/session"); } catch (error) { showError(error.message); return; }
  if (socket) socket.close();
  session.clear();
  location.reload();
});

if (session.load()) start().catch(() => session.clear());
