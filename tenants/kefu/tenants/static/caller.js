// The caller page: one click-to-call through the tenant's widget key.
// State in #call-state: idle | connecting | queued | connected | ended.
// The page follows its call on the caller socket /ws/caller/{call_id}?caller_token=…
// The call's id and token stay in sessionStorage until it ends: a reloaded page
// re-attaches to it (POST /api/v1/widget/calls/{id}/media), and so does a page
// whose connection drops (a network change), on a fresh peer connection.
import { Softphone } from "/static/webrtc/softphone.js";
import { $, config, publicApi, showError, socketUrl } from "./common.js";

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
    iceServers: config.ice_servers,
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
  saved.clear();
  if (socket) socket.close();
  socket = null;
  if (softphone) softphone.hangup();
}

function follow() {
  socket = new WebSocket(socketUrl(`/ws/caller/${call.call_id}?caller_token=${encodeURIComponent(call.caller_token)}`));
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type !== "call.state") return;
    if (message.status === "connected") { setState("connected"); attachAudio(); }
    else if (message.status === "ended") finish();
    else if ($("call-state").textContent !== "connected") setState("queued");
  });
}

/** Offer again for the call: after a reload (no softphone yet) or when the connection failed. */
async function reattach() {
  if (reattaching || !call) return;
  reattaching = true;
  try {
    const phone = softphone && softphone.state !== "closed" ? softphone : newSoftphone();
    const offer = phone.pc ? await phone.reoffer() : await phone.createOffer();
    const { answer_sdp } = await publicApi(
      "POST", `/api/v1/widget/calls/${call.call_id}/media`, { offer_sdp: offer }, { "X-Caller-Token": call.caller_token },
    );
    if (phone !== softphone) return;
    await phone.acceptAnswer(answer_sdp);
    attachAudio();
  } catch (error) {
    if (error.status === 404 || error.status === 409) finish();  // the call is over (or was never ours)
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
    const offer = await phone.createOffer();
    call = await publicApi("POST", `/api/v1/widget/${encodeURIComponent(config.widget_key)}/calls`, { caller_name: name, offer_sdp: offer });
    saved.save({ call_id: call.call_id, caller_token: call.caller_token, caller_name: name });
    await phone.acceptAnswer(call.answer_sdp);
    attachAudio();
    if ($("call-state").textContent === "connecting") setState("queued");
    follow();
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
