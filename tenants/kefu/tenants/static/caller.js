// The caller page: one click-to-call through the tenant's widget key.
// State in #call-state: idle | connecting | queued | connected | ended.
// The page follows its call on the caller socket /ws/caller/{call_id}?caller_token=…
import { Softphone } from "/static/webrtc/softphone.js";
import { $, config, publicApi, showError, socketUrl } from "./common.js";

let call = null;
let softphone = null;
let socket = null;

function setState(state) {
  $("call-state").textContent = state;
  $("call-button").disabled = !["idle", "ended"].includes(state);
  $("hangup-button").disabled = ["idle", "ended"].includes(state);
}

function attachAudio() {
  if (softphone && softphone.remoteStream) $("remote-audio").srcObject = softphone.remoteStream;
}

function finish() {
  setState("ended");
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

$("call-button").addEventListener("click", async () => {
  showError("");
  const name = $("caller-name").value.trim();
  if (!name) { $("caller-name").focus(); return; }
  setState("connecting");
  try {
    softphone = new Softphone({ iceServers: config.ice_servers, onState: attachAudio });
    window.kefuSoftphone = softphone;
    const offer = await softphone.createOffer();
    call = await publicApi("POST", `/api/v1/widget/${encodeURIComponent(config.widget_key)}/calls`, { caller_name: name, offer_sdp: offer });
    await softphone.acceptAnswer(call.answer_sdp);
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

setState("idle");
