// The caller page: one click-to-call through the tenant's widget key.
// State in #call-state: idle | connecting | ivr | queued | connected | voicemail | callback | suspended | ended
// (ivr: in the entry point's flow; #keypad sends the caller's keys as DTMF on the call's audio).
// (callback: the caller left the queue to be called back and keeps its place; the page has no audio then).
// The page follows its call on the caller socket /ws/caller/{call_id}?caller_token=…
// While the call waits, #queue-position says its place and expected wait (from the socket's
// announcements, and GET /api/v1/widget/calls/{id} when a push has none) and #callback-form
// offers "Call me back" (POST …/callback; the server closes our media leg).
// Every peer connection gets fresh ICE servers (GET /api/v1/widget/{key}/ice-servers)
// and trickles its candidates on that socket (docs/signalling.md).  The first offer
// creates the call over HTTP; its candidates wait for the answer (and the call's id).
// The call's id and token stay in sessionStorage until it ends: a reloaded page
// re-attaches to it with an offer on the socket, and so does a page whose
// connection drops (a network change), on a fresh peer connection.
import { Softphone } from "/static/webrtc/softphone.js";
import {
  $, CandidateOutbox, SignallingSocket, callIsGone, candidateMessage, config, publicApi, showError, t, widgetIceServers,
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
// The call's place while it waits in a queue: { position, expected_wait_s } (null: unknown or not waiting).
let place = null;
// Pushes that carried a place: a GET answer older than one of them is not shown.
let placePushes = 0;
// A callback request under way: our leg is about to close on purpose.
let leavingForCallback = false;

function setState(state) {
  $("call-state").textContent = state;
  if (state === "connecting") $("suspended-notice").hidden = true;
  if (state === "suspended") $("suspended-notice").hidden = false;
  $("call-button").disabled = !["idle", "ended"].includes(state);
  // Hanging up a callback cancels it.
  $("hangup-button").disabled = ["idle", "ended"].includes(state);
  $("callback-notice").hidden = state !== "callback";
  $("voicemail-notice").hidden = state !== "voicemail";
  $("keypad").hidden = state !== "ivr";
  renderPlace();
}

function live() {
  return ["ivr", "queued", "connected", "voicemail"].includes($("call-state").textContent);
}

function renderPlace() {
  const waiting = $("call-state").textContent === "queued" && place !== null;
  const shown = $("queue-position");
  shown.hidden = !waiting;
  $("callback-form").hidden = !waiting;
  if (!waiting) return;
  const wait = place.expected_wait_s;
  const minutes = wait == null ? null : Math.max(1, Math.round(wait / 60));
  const key = minutes === null ? "queue_position" : minutes === 1 ? "queue_position_wait_one" : "queue_position_wait";
  shown.textContent = t(key).replace("{position}", place.position).replace("{minutes}", minutes);
  shown.dataset.position = String(place.position);
  shown.dataset.expectedWaitS = wait == null ? "" : String(wait);
}

/** The place of a waiting call from GET /api/v1/widget/calls/{id} (a push without one: the socket's first message, a re-queue). */
async function readPlace() {
  if (!call) return;
  const asked = call;
  const pushes = placePushes;
  let found;
  try {
    found = await publicApi("GET", `/api/v1/widget/calls/${asked.call_id}`, undefined, { "X-Caller-Token": asked.caller_token });
  } catch {
    return;  // the socket says what happens next
  }
  if (asked !== call || pushes !== placePushes) return;
  if (found.callback) becomeCallback();
  else if (found.status === "queued" && found.position != null) place = { position: found.position, expected_wait_s: found.expected_wait_s ?? null };
  else place = null;
  renderPlace();
}

/** The call waits for its callback: no audio here any more (the server closed our leg), the place is kept. */
function becomeCallback() {
  if (!call || $("call-state").textContent === "callback") return;
  leavingForCallback = false;
  setState("callback");
  const stored = saved.load();
  if (stored) saved.save({ ...stored, callback: true });
  if (softphone) softphone.hangup();
  softphone = null;
  $("remote-audio").srcObject = null;
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
      if ((state === "failed" || state === "disconnected") && live() && !leavingForCallback) reattach();
    },
  });
  softphone = phone;
  window.kefuSoftphone = phone;
  return phone;
}

function finish() {
  place = null;
  leavingForCallback = false;
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
      const now = $("call-state").textContent;
      if (message.status === "ended") finish();
      else if (now === "callback") return;  // no audio here: the call waits for its callback
      else if (message.callback) becomeCallback();  // the caller's request, or the queue's rule
      else if (message.status === "connected") { place = null; setState("connected"); attachAudio(); }
      else if (message.status === "voicemail") { place = null; setState("voicemail"); attachAudio(); }
      else if (message.status === "ivr") { place = null; setState("ivr"); attachAudio(); }
      else if (now !== "connected") {
        // queued, or ringing at an agent (shown as queued: the caller still waits)
        if (message.status !== "queued") place = null;
        else if (message.position != null) {
          placePushes += 1;
          place = { position: message.position, expected_wait_s: message.expected_wait_s ?? null };
        }
        setState("queued");
        if (message.status === "queued" && message.position == null) readPlace();
      }
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

// A server busy setting up other calls refuses at once (503 overloaded, nothing of the call
// exists); the page asks again after its Retry-After, a few times, with the same offer.
const PLACE_ATTEMPTS = 5;

async function placeCall(body) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await publicApi("POST", `/api/v1/widget/${encodeURIComponent(config.widget_key)}/calls`, body);
    } catch (error) {
      if (error.code !== "overloaded" || attempt >= PLACE_ATTEMPTS) throw error;
      const seconds = error.retryAfter ?? 1;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000 + Math.random() * 250));
    }
  }
}

$("call-button").addEventListener("click", async () => {
  showError("");
  const name = $("caller-name").value.trim();
  if (!name) { $("caller-name").focus(); return; }
  setState("connecting");
  place = null;
  try {
    const phone = newSoftphone();
    const offerOutbox = outbox = new CandidateOutbox();
    const offer = await phone.createOffer();
    call = await placeCall({ caller_name: name, offer_sdp: offer });
    saved.save({ call_id: call.call_id, caller_token: call.caller_token, caller_name: name });
    await phone.acceptAnswer(call.answer_sdp);
    attachAudio();
    if (call.status === "suspended") {
      // The service is suspended: the caller hears a short message, then the line drops.
      setState("suspended");
      return;
    }
    if ($("call-state").textContent === "connecting") setState(["ivr", "voicemail"].includes(call.status) ? call.status : "queued");
    follow();
    trickle(offerOutbox, call.call_id);
  } catch (error) {
    showError(error.message);
    finish();
  }
});

/** A key of the keypad: DTMF on the call's audio (RFC 4733 telephone-events, 100 ms each). */
function pressKey(key) {
  const sender = softphone && softphone.pc ? softphone.pc.getSenders().find((s) => s.track && s.track.kind === "audio") : null;
  if (!sender || !sender.dtmf || $("call-state").textContent !== "ivr") return;
  // Keys pressed while earlier ones still sound are queued behind them (insertDTMF replaces the buffer).
  sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + key, 100, 70);
}

for (const key of document.querySelectorAll("#keypad .key")) key.addEventListener("click", () => pressKey(key.dataset.key));
document.addEventListener("keydown", (event) => {
  if (/^[0-9*#]$/.test(event.key) && event.target.tagName !== "INPUT") pressKey(event.key);
});

$("callback-button").addEventListener("click", async () => {
  if (!call) return;
  showError("");
  const number = $("callback-number").value.trim();
  leavingForCallback = true;
  $("callback-button").disabled = true;
  try {
    await publicApi("POST", `/api/v1/widget/calls/${call.call_id}/callback`, number ? { number } : {}, { "X-Caller-Token": call.caller_token });
    becomeCallback();
  } catch (error) {
    leavingForCallback = false;
    showError(error.message);  // a bad number, or the call is no longer waiting (an agent is being offered it)
  } finally {
    $("callback-button").disabled = false;
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
  if (previous.callback) {
    // Waiting for a callback: nothing to re-attach, just follow the call.
    setState("callback");
    follow();
  } else {
    setState("connecting");
    follow();
    reattach();
  }
} else {
  setState("idle");
}
