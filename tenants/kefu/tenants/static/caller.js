// The caller page: one click-to-call through the tenant's widget key.
// State in #call-state: idle | connecting | queued | connected | ended.
// The page follows its call on the caller socket /ws/caller/{call_id}?caller_token=…
// Every peer connection gets fresh ICE servers (GET /api/v1/widget/{key}/ice-servers)
// and trickles its candidates on that socket (docs/signalling.md).  The first offer
// creates the call over HTTP; its candidates wait for the answer (and the call's id).
// The call's id and token stay in sessionStorage until it ends: a reloaded page
// re-attaches to it with an offer on the socket, and so does a page whose
// connection drops (a network change), on a fresh peer connection.
import { Softphone } from "/static/webrtc/softphone.js";
import {
  $, CandidateOutbox, SignallingSocket, callIsGone, candidateMessage, config, publicApi, showError, widgetIceServers,
} from "./common.js";

const STORE = `kefu.call.${config.widget_key}`;
const saved = {
  load() { try { return JSON.parse(sessionStorage.getItem(STORE)); } catch { return null; } },
  save(value) { sessionStorage.setItem(STORE, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(STORE); },
};

let call = null;
let softphone = null;
let socket = null;
let reattaching = false;
let outbox = new CandidateOutbox();  // the latest offer's candidates

function setState(state) {
  $("call-state").textContent = state;
  $("call-button").disabled = !["idle", "ended"].includes(state);
  $("hangup-button").disabled = ["idle", "ended"].includes(state);
}

function live() {
  return ["queued", "connected"].includes($("call-state").textContent);
}

function attachAudio() {
  if (softphone && softphone.remoteStream && $("remote-audio").srcObject !== softphone.remoteStream) {
    $("remote-audio").srcObject = softphone.remoteStream;
  }
}

function newSoftphone() {
  const phone = new Softphone({
    iceServers: () => widgetIceServers(config.widget_key),
    trickle: true,
    onCandidate: (candidate) => { if (phone === softphone) outbox.add(candidate); },
    onState: (state) => {
      if (phone !== softphone) return;
      attachAudio();
      // A network change: restart ICE on a fresh connection (the server keeps the call meanwhile).
      if ((state === "failed" || state === "disconnected") && live()) reattach();
    },
  });
  softphone = phone;
  window.kefuSoftphone = phone;
  return phone;
}

function finish() {
  setState("ended");
  call = null;
  saved.clear();
  if (socket) socket.close();
  socket = null;
  if (softphone) softphone.hangup();
}

function follow() {
  socket = new SignallingSocket(`/ws/caller/${call.call_id}?caller_token=${encodeURIComponent(call.caller_token)}`, {
    onMessage: (message) => {
      if (message.type !== "call.state") return;
      if (message.status === "connected") { setState("connected"); attachAudio(); }
      else if (message.status === "ended") finish();
      else if ($("call-state").textContent !== "connected") setState("queued");
    },
  });
}

/** Send this offer's candidates on the socket from now on (the leg exists, or the offer went out on it). */
function trickle(offerOutbox, callId) {
  offerOutbox.open((candidate) => { if (socket) socket.send(candidateMessage(callId, candidate)); });
}

/** Offer again for the call: after a reload (no softphone yet) or when the connection failed. */
async function reattach() {
  if (reattaching || !call) return;
  reattaching = true;
  try {
    const phone = softphone && softphone.state !== "closed" ? softphone : newSoftphone();
    const offerOutbox = outbox = new CandidateOutbox();
    const offer = phone.pc ? await phone.reoffer() : await phone.createOffer();
    if (!socket || socket.closed) follow();
    const answering = socket.offer(call.call_id, offer);
    trickle(offerOutbox, call.call_id);  // right behind the offer: the server adds them once it has answered
    const answerSdp = await answering;
    if (phone !== softphone) return;
    await phone.acceptAnswer(answerSdp);
    attachAudio();
  } catch (error) {
    if (!call) return;  // hung up meanwhile
    if (callIsGone(error)) finish();  // the call is over (or was never ours)
    else showError(error.message);
  } finally {
    reattaching = false;
  }
}

$("call-button").addEventListener("click", async () => {
  showError("");
  const name = $("caller-name").value.trim();
  if (!name) { $("caller-name").focus(); return; }
  setState("connecting");
  try {
    const phone = newSoftphone();
    const offerOutbox = outbox = new CandidateOutbox();
    const offer = await phone.createOffer();
    call = await publicApi("POST", `/api/v1/widget/${encodeURIComponent(config.widget_key)}/calls`, { caller_name: name, offer_sdp: offer });
    saved.save({ call_id: call.call_id, caller_token: call.caller_token, caller_name: name });
    await phone.acceptAnswer(call.answer_sdp);
    attachAudio();
    if ($("call-state").textContent === "connecting") setState("queued");
    follow();
    trickle(offerOutbox, call.call_id);
  } catch (error) {
    showError(error.message);
    finish();
  }
});

$("hangup-button").addEventListener("click", async () => {
  if (call) {
    try {
      await publicApi("POST", `/api/v1/widget/calls/${call.call_id}/hangup`, undefined, { "X-Caller-Token": call.caller_token });
    } catch (error) { showError(error.message); }
  }
  finish();
});

const previous = saved.load();
if (previous) {
  // A reload during the call: carry on with it.
  call = previous;
  $("caller-name").value = previous.caller_name || "";
  setState("connecting");
  follow();
  reattach();
} else {
  setState("idle");
}
