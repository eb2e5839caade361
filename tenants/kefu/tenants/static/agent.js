// The agent desktop: log in to the seat, ready / not ready, answer, hang up,
// hold / mute / recording pause, what a supervisor is doing on the call, and
// transfers: blind, or a consultation that ends in a conference, a completed
// transfer or a cancel.  The other side of a consultation is this page too: an
// agent being consulted answers with its own softphone (#consult-offer), and
// when the transfer completes that leg simply goes on as its call.
// #agent-state: offline | available | not_ready | ringing | on_call | wrap_up (a code, hidden;
//               #agent-state-label shows it in words)
// #call-state:  idle | ringing | connecting | connected | ended
// The agent socket (/ws/agent) pushes state, offers, the call's audio state
// (call.audio with its consult, call.taken_over), call.transferred (the call left
// us), consult.offered / consult.ended (we are consulted) and
// call.transferred_to_you; its pings renew the presence lease.
// Not ready carries the reason chosen in #not-ready-reason (the tenant's active reason
// codes, or Kefu's defaults while it defined none).  After a call the seat may be in
// after-call work (#agent-state wrap_up, #wrap-up-countdown to wrap_up_until when the
// queue sets an end); #disposition-panel gives the connected call, or the call in
// after-call work, a wrap-up code, first-call resolution and notes, and ends (Ready,
// End wrap-up) or extends the after-call work.  A ringing offer taken back
// (call.withdrawn: answered elsewhere in a ring-all group, or not answered in time)
// clears the ringing call (#offer-withdrawn-notice).
// Media: every peer connection gets fresh ICE servers (GET /api/v1/media/ice-servers);
// its offer goes on the agent socket ({"type":"offer"}: it answers a ringing call or
// a consultation, or re-attaches our connected call) with its candidates trickled
// right behind it, and the socket's answer completes it (docs/signalling.md).
// A reloaded page finds its connected call in the seat's state and re-attaches
// to it; so does a page whose connection fails (a network change): the server
// keeps the call for a grace period.
import { Softphone } from "/static/webrtc/softphone.js";
import {
  $, CandidateOutbox, SignallingSocket, api, applyLanguage, callIsGone, candidateMessage, logIn, session, showError, t,
  userIceServers,
} from "./common.js";

const PING_MS = 10_000;
// What PUT /api/v1/agent/status accepts while the tenant defined no reason codes (kefu.tenants.acd.DEFAULT_REASON_CODES).
const DEFAULT_REASON_CODES = ["break", "lunch", "meeting", "training", "coaching", "other"];
const NO_AUDIO = { on_hold: false, muted: false, recording_paused: false, supervisor: null, taken_over: false, consult: null };
let socket = null;
let pinger = null;
let softphone = null;
let outbox = new CandidateOutbox();  // the latest offer's candidates
let currentCall = null;
let closing = false;
let reattaching = false;
// state: the desktop's code; status: the agent's own choice; wrapUpCallId / wrapUpUntil: after-call work (the agent.state push).
let agentState = { state: "offline", status: "offline", reason: null, wrapUpCallId: null, wrapUpUntil: null };
// agent.state pushes so far: an HTTP answer is older than a push that came while it was under way.
let statePushes = 0;
// Not-ready reasons offered: [{code, label}]; label null for Kefu's defaults (their words are in i18n.py).
let reasonCodes = DEFAULT_REASON_CODES.map((code) => ({ code, label: null }));
// The tenant's active wrap-up codes: [{code, label}]; null until read (when a disposition is first possible).
let wrapUpCodes = null;
// The call #disposition-panel was last filled for: a new call empties the form.
let dispositionFor = null;
let countdown = null;
let audio = { ...NO_AUDIO };
// Transfer targets: GET /api/v1/agent/directory, read when a call connects (and on Refresh).
let directory = { queues: [], agents: [] };
// Our consultation ended (the consulted agent hung up, or it was not answered) and we are back with the caller.
let consultEnded = false;
// The call we are leaving (hang-up, blind transfer, completed consultation): its leg closing is no network failure.
let handingOver = null;
// Another agent consults us: { callId, from, callerName, state: ringing | connecting | talking, audio }.
let consultation = null;

// --- what the page shows ----------------------------------------------------------------

function reasonWords(code) {
  const tenantCode = reasonCodes.find((r) => r.code === code && r.label);
  if (tenantCode) return tenantCode.label;
  const key = `reason_${code}`;
  return t(key) === key ? code : t(key);
}

function stateWords(state, reason) {
  const word = t(`state_${state}`);
  if (state !== "not_ready" || !reason || reason === "not_ready") return word;
  return `${word} (${reasonWords(reason)})`;
}

/** The seat's state; `status` and the after-call work's call and end come with the pushes
 *  (an HTTP answer has no wrap-up fields: a seat still in after-call work keeps the pushed ones). */
function setAgentState(state, reason = null, { status, wrapUpCallId, wrapUpUntil } = {}) {
  const wrapping = state === "wrap_up";
  agentState = {
    state,
    reason,
    status: status || agentState.status,
    wrapUpCallId: wrapping ? (wrapUpCallId !== undefined ? wrapUpCallId : agentState.wrapUpCallId) : null,
    wrapUpUntil: wrapping ? (wrapUpUntil !== undefined ? wrapUpUntil : agentState.wrapUpUntil) : null,
  };
  renderAgentState();
}

/** An HTTP answer's seat state, unless an agent.state push came meanwhile (the push is as new or newer). */
function answeredState(state, pushesBefore) {
  if (statePushes === pushesBefore) setAgentState(state.state, state.not_ready_reason, { status: state.status });
}

function renderAgentState() {
  const { state, reason } = agentState;
  $("agent-state").textContent = state;
  $("agent-state-label").textContent = stateWords(state, reason);
  $("agent-state-label").dataset.state = state;
  $("ready-button").disabled = state === "available" || state === "offline";
  $("seat-login-button").hidden = state !== "offline";
  renderReasonChoice();
  renderCountdown();
  renderDisposition();
}

function renderReasonChoice() {
  // Not ready again with another reason is a change; with the same one it is not.
  const chosen = $("not-ready-reason").value;
  $("not-ready-button").disabled = agentState.state === "offline" || !chosen || (agentState.status === "not_ready" && agentState.reason === chosen);
}

function renderReasonOptions() {
  const select = $("not-ready-reason");
  const chosen = select.value;
  select.replaceChildren(...reasonCodes.map((r) => Object.assign(document.createElement("option"), { value: r.code, textContent: r.label || reasonWords(r.code) })));
  if (reasonCodes.some((r) => r.code === chosen)) select.value = chosen;
  renderReasonChoice();
}

async function loadReasonCodes() {
  try {
    const codes = await api("GET", "/api/v1/agent/reason-codes");
    // None defined: PUT /api/v1/agent/status takes Kefu's defaults.
    reasonCodes = codes.length ? codes.map(({ code, label }) => ({ code, label })) : DEFAULT_REASON_CODES.map((code) => ({ code, label: null }));
  } catch (error) {
    showError(error.message);
  }
  renderReasonOptions();
  renderAgentState();  // a tenant code's label in "Not ready (…)"
}

/** "2:05 left" until wrap_up_until (the browser's clock against the server's time). */
function renderCountdown() {
  const until = agentState.state === "wrap_up" && agentState.wrapUpUntil ? Date.parse(agentState.wrapUpUntil) : null;
  const element = $("wrap-up-countdown");
  if (until === null || Number.isNaN(until)) {
    clearInterval(countdown);
    countdown = null;
    element.hidden = true;
    element.textContent = "";
    delete element.dataset.secondsLeft;
    return;
  }
  const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
  element.textContent = t("wrap_up_left").replace("{time}", `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`);
  element.dataset.secondsLeft = String(left);
  element.hidden = false;
  if (!countdown) countdown = setInterval(renderCountdown, 500);
}

// --- disposition and after-call work --------------------------------------------------------

/** The call a disposition is for now: the call in after-call work, else our connected call. */
function dispositionCallId() {
  if (agentState.state === "wrap_up") return agentState.wrapUpCallId;
  return $("call-state").textContent === "connected" && !audio.taken_over ? currentCall : null;
}

function resetDisposition() {
  $("wrap-up-code").value = "";
  // Indeterminate until the agent says: first_call_resolution null.
  $("first-call-resolution").checked = false;
  $("first-call-resolution").indeterminate = true;
  $("disposition-notes").value = "";
  $("disposition-saved").hidden = true;
  showError("", "wrap-up-error");
}

function renderDisposition() {
  const callId = dispositionCallId();
  // The same call going from connected to after-call work keeps what the agent entered.
  if (callId && callId !== dispositionFor) {
    dispositionFor = callId;
    resetDisposition();
    loadWrapUpCodes();
  }
  const panel = $("disposition-panel");
  panel.hidden = !callId;
  panel.dataset.callId = callId || "";
  $("wrap-up-controls").hidden = agentState.state !== "wrap_up";
  $("extend-wrap-up-button").hidden = !agentState.wrapUpUntil;  // after-call work the agent ends has no time to extend
  $("save-disposition-button").disabled = !callId || !$("wrap-up-code").value;
}

function renderWrapUpCodes() {
  const select = $("wrap-up-code");
  const chosen = select.value;
  const option = (value, text) => Object.assign(document.createElement("option"), { value, textContent: text });
  const codes = wrapUpCodes || [];
  select.replaceChildren(option("", t(wrapUpCodes && !codes.length ? "no_wrap_up_codes" : "choose_wrap_up_code")), ...codes.map((c) => option(c.code, c.label)));
  select.value = codes.some((c) => c.code === chosen) ? chosen : "";
  renderDisposition();
}

async function loadWrapUpCodes() {
  try {
    wrapUpCodes = (await api("GET", "/api/v1/agent/wrap-up-codes")).map(({ code, label }) => ({ code, label }));
  } catch (error) {
    showError(error.message, "wrap-up-error");
    return;
  }
  renderWrapUpCodes();
}

function setCallState(state) {
  const was = $("call-state").textContent;
  $("call-state").textContent = state;
  if (state === "connected" && was !== "connected") loadDirectory();
  $("answer-button").disabled = state !== "ringing";
  $("hangup-button").disabled = !["connecting", "connected"].includes(state);
  renderAudio();
  renderDisposition();
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
  renderTransfer(live);
}

function agentName(agentId) {
  const agent = directory.agents.find((a) => a.id === agentId);
  return agent ? agent.display_name : t("another_agent");
}

function renderTransfer(live) {
  const consult = live ? audio.consult : null;
  const target = $("transfer-target").value;
  $("transfer-target").disabled = !live || Boolean(consult);
  $("directory-refresh-button").disabled = !live;
  $("blind-transfer-button").disabled = !live || Boolean(consult) || !target;
  $("consult-button").disabled = !live || Boolean(consult) || !target;
  $("consult-controls").hidden = !consult;
  $("conference-button").disabled = !consult || consult.state !== "talking";
  $("complete-transfer-button").disabled = !consult || !["talking", "conference"].includes(consult.state);
  $("cancel-consult-button").disabled = !consult;
  const status = $("consult-status");
  const shown = consult ? consult.state : live && consultEnded ? "ended" : "";
  status.dataset.state = shown;
  status.textContent = shown ? t(`consult_${shown}`).replace("{name}", consult ? agentName(consult.agent_id) : "") : "";
  status.hidden = !shown;
  // Hanging up while consulting hands the call over, as desk phones do: say so on the button.
  const handsOver = consult && ["talking", "conference"].includes(consult.state);
  $("hangup-button").title = handsOver ? t("hang_up_transfers").replace("{name}", agentName(consult.agent_id)) : "";
}

function renderDirectory() {
  const select = $("transfer-target");
  const chosen = select.value;
  const option = (value, text) => Object.assign(document.createElement("option"), { value, textContent: text });
  const group = (label, options) => {
    const element = Object.assign(document.createElement("optgroup"), { label });
    element.append(...options);
    return element;
  };
  select.replaceChildren(option("", t("choose_target")));
  if (directory.queues.length) select.append(group(t("queues"), directory.queues.map((q) => option(`queue:${q.id}`, q.name))));
  if (directory.agents.length) {
    select.append(group(t("agents"), directory.agents.map((a) => option(`agent:${a.id}`, `${a.display_name} (${stateWords(a.state)})`))));
  }
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  renderAudio();
}

async function loadDirectory() {
  try {
    directory = await api("GET", "/api/v1/agent/directory");
  } catch (error) {
    showError(error.message);
    return;
  }
  renderDirectory();
}

function renderConsultation() {
  const panel = $("consult-offer");
  panel.hidden = !consultation;
  panel.dataset.state = consultation ? consultation.state : "";
  if (!consultation) return;
  const ringing = consultation.state === "ringing";
  $("consult-offer-text").textContent = t(ringing ? "consult_offered" : "consult_talking_to")
    .replace("{name}", consultation.from || t("another_agent"))
    .replace("{caller}", consultation.callerName || t("caller"));
  $("consult-answer-button").disabled = !ringing;
  $("consult-answer-button").hidden = !ringing && consultation.state !== "connecting";
  $("consult-hangup-button").textContent = t(ringing ? "decline" : "hang_up");
}

function applyAudio(state) {
  if (!state) return;
  // The API's answers carry no supervisor name; the pushes do: keep the name we know.
  const known = audio.supervisor;
  const supervisor = state.supervisor && !state.supervisor.name && known ? { ...state.supervisor, name: known.name } : state.supervisor;
  const consult = state.consult || null;
  if (consult) consultEnded = false;
  else if (audio.consult) consultEnded = true;
  audio = { on_hold: state.on_hold, muted: state.muted, recording_paused: state.recording_paused, supervisor, taken_over: state.taken_over, consult };
  renderAudio();
}

function render() {
  renderReasonOptions();
  renderWrapUpCodes();
  renderAgentState();
  renderDirectory();
  renderConsultation();
}

// --- the call's media ---------------------------------------------------------------------

function attachAudio() {
  if (softphone && softphone.remoteStream && $("remote-audio").srcObject !== softphone.remoteStream) {
    $("remote-audio").srcObject = softphone.remoteStream;
  }
}

function newSoftphone() {
  const phone = new Softphone({
    iceServers: userIceServers,
    trickle: true,
    onCandidate: (candidate) => { if (phone === softphone) outbox.add(candidate); },
    onState: (state) => {
      if (phone !== softphone) return;
      attachAudio();
      if (consultation) return;  // a consultation's leg: it becomes a call only with call.transferred_to_you
      if (state === "connected") setCallState("connected");
      // A network change: offer again on a fresh connection while the server waits for us.
      const handedOver = handingOver !== null && handingOver === currentCall;
      if ((state === "failed" || state === "disconnected") && $("call-state").textContent === "connected" && !handedOver) reattach();
    },
  });
  softphone = phone;
  window.kefuSoftphone = phone;
  return phone;
}

/** Offer `phone`'s next connection (its first, or a re-offer) for the call on the agent socket,
 *  trickle its candidates behind the offer, and apply the answer (onAnswered first: the server has our leg now).
 *  False if the softphone was replaced meanwhile. */
async function offerOnSocket(phone, callId, onAnswered = () => {}) {
  const offerOutbox = outbox = new CandidateOutbox();
  const offer = phone.pc ? await phone.reoffer() : await phone.createOffer();
  const answering = socket.offer(callId, offer);
  offerOutbox.open((candidate) => { if (socket) socket.send(candidateMessage(callId, candidate)); });
  const answerSdp = await answering;
  onAnswered();
  if (phone !== softphone) return false;
  await phone.acceptAnswer(answerSdp);
  attachAudio();
  return true;
}

function hangUpLocally() {
  if (softphone) softphone.hangup();
  softphone = null;
}

/** A call rings here; `callback` when the offer says it is a caller waiting to be called back. */
function offered(callId, callerName, callback = false) {
  currentCall = callId;
  audio = { ...NO_AUDIO };
  consultEnded = false;
  $("call-id").textContent = callId;
  $("caller-label").textContent = [callerName, callback && `(${t("callback_offer")})`].filter(Boolean).join(" ");
  $("caller-label").dataset.callback = String(callback);
  $("taken-over-notice").hidden = true;
  $("transferred-notice").hidden = true;
  $("offer-withdrawn-notice").hidden = true;
  setCallState("ringing");
}

/** The ringing offer was taken back (answered elsewhere, or not answered in time): nothing rings here any more. */
function offerWithdrawn(callId, reason) {
  if (callId !== currentCall || $("call-state").textContent === "connected") return;
  hangUpLocally();  // an answer under way lost the race: its leg goes too
  currentCall = null;
  $("call-id").textContent = "";
  $("caller-label").textContent = "";
  setCallState("idle");
  const notice = $("offer-withdrawn-notice");
  const key = `withdrawn_${reason}`;
  notice.dataset.reason = reason || "";
  notice.textContent = t(key) === key ? t("withdrawn_other") : t(key);
  notice.hidden = false;
}

function ended() {
  hangUpLocally();
  audio = { ...NO_AUDIO };
  consultEnded = false;
  if (currentCall) setCallState("ended");
}

/** The call left us (blind transfer, completed consultation, or hanging up while consulting):
 *  the server closed or moved our leg and freed us; no hang-up request. */
function transferredAway(callId) {
  if (callId !== currentCall) return;
  ended();
  $("transferred-notice").hidden = false;
}

// --- being consulted ---------------------------------------------------------------------

function consultOffered(message) {
  // The agent.state push (ringing, with this call) came first and looked like a call offer.
  if (message.call_id === currentCall && $("call-state").textContent === "ringing") {
    currentCall = null;
    $("call-id").textContent = "";
    $("caller-label").textContent = "";
    setCallState("idle");
  }
  consultation = { callId: message.call_id, from: message.from, callerName: message.caller_name, state: "ringing", audio: null };
  $("transferred-notice").hidden = true;
  renderConsultation();
}

function consultationOver(callId) {
  if (!consultation || consultation.callId !== callId) return;
  consultation = null;
  hangUpLocally();
  renderConsultation();
}

/** The consulting agent completed the transfer: our consultation leg goes on as the call's agent leg. */
function transferredToYou(callId) {
  const consult = consultation && consultation.callId === callId ? consultation : null;
  consultation = null;
  renderConsultation();
  currentCall = callId;
  audio = { ...NO_AUDIO };
  consultEnded = false;
  $("call-id").textContent = callId;
  $("caller-label").textContent = consult ? consult.callerName || "" : "";
  $("taken-over-notice").hidden = true;
  $("transferred-notice").hidden = true;
  if (consult && consult.audio) applyAudio(consult.audio);
  if (softphone && softphone.state === "connected") {
    setCallState("connected");
  } else {
    setCallState("connecting");
    if (!softphone || softphone.state === "closed" || softphone.state === "failed") reattach();
  }
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
    // The answer is followed by a call.audio push with the call's hold, mute, recording and supervisor state.
    const phone = softphone && softphone.state !== "closed" ? softphone : newSoftphone();
    await offerOnSocket(phone, callId);
  } catch (error) {
    if (callId !== currentCall || audio.taken_over) return;
    showError(error.message);
    if (callIsGone(error)) ended();
  } finally {
    reattaching = false;
    $("reconnecting-notice").hidden = true;
  }
}

// --- the agent socket -----------------------------------------------------------------------

function onMessage(message) {
  const consulted = consultation !== null && message.call_id === consultation.callId;
  if (message.type === "agent.state") {
    statePushes += 1;
    if (message.forced) forcedBySupervisor(message.forced);
    setAgentState(message.state, message.reason, {
      status: message.status, wrapUpCallId: message.wrap_up_call_id || null, wrapUpUntil: message.wrap_up_until || null,
    });
    if (message.state === "ringing" && message.call_id && message.call_id !== currentCall && !consulted) offered(message.call_id, "");
    if (message.state !== "ringing" && message.state !== "on_call" && $("call-state").textContent === "ringing") ended();
  } else if (message.type === "call.offered" && !consulted) {
    offered(message.call_id, message.caller_name, Boolean(message.callback));
  } else if (message.type === "call.withdrawn") {
    offerWithdrawn(message.call_id, message.reason);
  } else if (message.type === "call.audio" && message.call_id === currentCall) {
    applyAudio(message);
  } else if (message.type === "call.audio" && consulted) {
    consultation.audio = message;  // the call is being handed to us: call.transferred_to_you follows
  } else if (message.type === "call.taken_over" && message.call_id === currentCall) {
    takenOver();
  } else if (message.type === "call.ended" && message.call_id === currentCall) {
    ended();
  } else if (message.type === "call.transferred") {
    transferredAway(message.call_id);
  } else if (message.type === "consult.offered") {
    consultOffered(message);
  } else if (message.type === "consult.ended") {
    consultationOver(message.call_id);
  } else if (message.type === "call.transferred_to_you") {
    transferredToYou(message.call_id);
  }
}

function connect() {
  const { access_token } = session.load();
  socket = new SignallingSocket(`/ws/agent?access_token=${encodeURIComponent(access_token)}`, {
    onMessage,
    onOpen: () => {
      pinger = setInterval(() => socket.open && socket.send({ type: "ping" }), PING_MS);
      // Back after the socket dropped: a connection that failed meanwhile could not re-attach without it.
      const broken = !softphone || ["failed", "disconnected", "closed"].includes(softphone.state);
      if (currentCall && !consultation && ["connecting", "connected"].includes($("call-state").textContent) && broken) reattach();
    },
    onClose: () => {
      clearInterval(pinger);
      if (!closing && session.load()) setTimeout(async () => { await api("GET", "/api/v1/agent/state").catch(() => null); connect(); }, 2000);
    },
  });
}

async function start() {
  const state = await api("POST", "/api/v1/agent/session");
  $("login-form").hidden = true;
  $("desktop").hidden = false;
  $("agent-name").textContent = state.display_name;
  setAgentState(state.state, state.not_ready_reason, { status: state.status });
  setCallState("idle");
  loadReasonCodes();
  connect();  // first: a re-attach below offers on it
  if (state.state === "ringing" && state.current_call_id) offered(state.current_call_id, "");
  if (state.state === "on_call" && state.current_call_id) {
    // A reload mid-call: the call goes on; re-attach to it at once.
    offered(state.current_call_id, "");
    setCallState("connecting");
    reattach();
    api("GET", `/api/v1/calls/${state.current_call_id}`).then((call) => { $("caller-label").textContent = call.caller_name; }).catch(() => null);
  }
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

/** A supervisor forced the seat's state (强制示闲 / 强制示忙 / 强制签出): say who, until the agent acts. */
function forcedBySupervisor({ action, by }) {
  const notice = $("forced-notice");
  notice.dataset.action = action;
  notice.textContent = t(`forced_${action}`).replace("{name}", by || t("a_supervisor_name"));
  notice.hidden = false;
}

async function setStatus(status, reason) {
  showError("");
  $("forced-notice").hidden = true;
  const pushes = statePushes;
  try {
    answeredState(await api("PUT", "/api/v1/agent/status", reason ? { status, reason } : { status }), pushes);
  } catch (error) { showError(error.message); }
}

/** End after-call work (refused while the queue requires a disposition and none was saved); `ready`: available after it. */
async function endWrapUp({ ready }) {
  showError("", "wrap-up-error");
  const pushes = statePushes;
  let state;
  try {
    state = await api("POST", "/api/v1/agent/wrap-up/end");
  } catch (error) {
    showError(error.message, "wrap-up-error");
    return;
  }
  answeredState(state, pushes);
  if (ready && state.status !== "available") await setStatus("available");
}

$("ready-button").addEventListener("click", () => (agentState.state === "wrap_up" ? endWrapUp({ ready: true }) : setStatus("available")));
$("not-ready-button").addEventListener("click", () => setStatus("not_ready", $("not-ready-reason").value));
$("not-ready-reason").addEventListener("change", () => renderReasonChoice());
$("seat-login-button").addEventListener("click", async () => {
  showError("");
  $("forced-notice").hidden = true;
  const pushes = statePushes;
  try { answeredState(await api("POST", "/api/v1/agent/session"), pushes); } catch (error) { showError(error.message); }
});
$("end-wrap-up-button").addEventListener("click", () => endWrapUp({ ready: false }));
$("extend-wrap-up-button").addEventListener("click", async () => {
  showError("", "wrap-up-error");
  // The agent.state push brings the new wrap_up_until.
  try { await api("POST", "/api/v1/agent/wrap-up/extend"); } catch (error) { showError(error.message, "wrap-up-error"); }
});

$("save-disposition-button").addEventListener("click", async () => {
  const callId = dispositionCallId();
  const code = $("wrap-up-code").value;
  if (!callId || !code) return;
  showError("", "wrap-up-error");
  $("disposition-saved").hidden = true;
  const resolved = $("first-call-resolution");
  const notes = $("disposition-notes").value.trim();
  try {
    await api("PUT", `/api/v1/agent/calls/${callId}/disposition`, {
      code, first_call_resolution: resolved.indeterminate ? null : resolved.checked, notes: notes || null,
    });
    if (callId === dispositionFor) $("disposition-saved").hidden = false;
  } catch (error) {
    showError(error.message, "wrap-up-error");
  }
});
// A change after saving is not saved yet.
for (const id of ["wrap-up-code", "first-call-resolution", "disposition-notes"]) {
  $(id).addEventListener("input", () => { $("disposition-saved").hidden = true; renderDisposition(); });
  $(id).addEventListener("change", () => { $("disposition-saved").hidden = true; renderDisposition(); });
}

$("answer-button").addEventListener("click", async () => {
  showError("");
  setCallState("connecting");
  try {
    await offerOnSocket(newSoftphone(), currentCall);
  } catch (error) {
    showError(error.message);
    ended();
  }
});

$("hangup-button").addEventListener("click", async () => {
  const callId = currentCall;
  handingOver = callId;  // our leg closes now: no re-attach (while consulting, the call goes to the consulted agent)
  try { await api("POST", `/api/v1/agent/calls/${callId}/hangup`); } catch (error) { showError(error.message); }
  handingOver = null;
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

// --- transfers and consultations ----------------------------------------------------------

function chosenTarget() {
  const [kind, id] = $("transfer-target").value.split(":");
  return kind === "queue" ? { queue_id: id } : kind === "agent" ? { agent_id: id } : null;
}

$("transfer-target").addEventListener("change", () => renderAudio());
$("directory-refresh-button").addEventListener("click", () => loadDirectory());

$("blind-transfer-button").addEventListener("click", async () => {
  const target = chosenTarget();
  const callId = currentCall;
  if (!target || !callId) return;
  showError("");
  handingOver = callId;
  try {
    await api("POST", `/api/v1/agent/calls/${callId}/transfer`, target);
    transferredAway(callId);
  } catch (error) {
    showError(error.message);
    if (error.status === 409) loadDirectory();  // the target is busy now: show the states again
  } finally {
    handingOver = null;
  }
});

$("consult-button").addEventListener("click", async () => {
  const target = chosenTarget();
  const callId = currentCall;
  if (!target || !callId) return;
  showError("");
  try {
    const state = await api("POST", `/api/v1/agent/calls/${callId}/consult`, target);
    if (callId === currentCall) applyAudio(state);
  } catch (error) {
    showError(error.message);
    if (error.status === 409) loadDirectory();
  }
});

async function consultStep(method, step) {
  const callId = currentCall;
  showError("");
  try {
    const state = await api(method, `/api/v1/agent/calls/${callId}/consult${step ? `/${step}` : ""}`);
    if (callId === currentCall) applyAudio(state || { ...audio, consult: null });
  } catch (error) {
    showError(error.message);
  }
}

$("conference-button").addEventListener("click", () => consultStep("POST", "conference"));
$("cancel-consult-button").addEventListener("click", () => consultStep("DELETE", ""));
$("complete-transfer-button").addEventListener("click", async () => {
  const callId = currentCall;
  showError("");
  handingOver = callId;
  try {
    await api("POST", `/api/v1/agent/calls/${callId}/consult/complete`);
    transferredAway(callId);
  } catch (error) {
    showError(error.message);
  } finally {
    handingOver = null;
  }
});

$("consult-answer-button").addEventListener("click", async () => {
  const consult = consultation;
  if (!consult || consult.state !== "ringing") return;
  showError("");
  consult.state = "connecting";
  renderConsultation();
  let answered = false;
  try {
    await offerOnSocket(newSoftphone(), consult.callId, () => { answered = true; });
    if (consultation === consult) {
      consult.state = "talking";
      renderConsultation();
    }
  } catch (error) {
    showError(error.message);
    if (answered && consultation === consult) await endConsultation(consult);
    else consultationOver(consult.callId);
  }
});

/** Leave the consultation: the server ends it (and closes our leg) first, then our softphone stops; a leg that just drops is a failure to the server. */
async function endConsultation(consult) {
  try {
    await api("DELETE", `/api/v1/agent/calls/${consult.callId}/consult`);
  } catch (error) {
    if (error.status !== 404 && error.status !== 409) showError(error.message);  // 404 / 409: already over
  }
  consultationOver(consult.callId);
}

// Decline a ringing consultation, or hang up an answered one (back to the consulting agent and the caller).
$("consult-hangup-button").addEventListener("click", () => {
  showError("");
  if (consultation) endConsultation(consultation);
});

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
