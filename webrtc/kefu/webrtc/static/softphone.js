// Kefu browser softphone (ES module): one audio-only RTCPeerConnection to the
// Kefu media server.
//
// ICE servers: `iceServers` is a list, or an async function that answers one
// (the page fetches /api/v1/media/ice-servers or /api/v1/widget/{key}/ice-servers);
// the function is called right before each new RTCPeerConnection, so every
// connection gets a TURN credential that is still valid (docs/signalling.md).
//
// Signalling, two ways:
// - trickle (`trickle: true`): createOffer() resolves as soon as the local
//   description is set; the connection's candidates come afterwards, one by one,
//   to `onCandidate(candidate)` (RTCIceCandidate.toJSON(), then null when
//   gathering is complete).  The page sends them after its offer.
// - non-trickle (the default): createOffer() resolves once ICE gathering is
//   complete (or after 5 s), so the offer SDP carries every candidate.
// Either way the page sends the offer and hands the answer to acceptAnswer().
//
// Re-attaching after a network change: reoffer() builds a fresh
// RTCPeerConnection on the same microphone (aiortc 1.16, the media server,
// cannot restart ICE inside an existing connection), the page sends that offer
// to its re-attach endpoint, and acceptAnswer() swaps the connections: the
// server's new leg replaces the old one, and the old connection is closed here.
// remoteStream is then a new MediaStream: pages re-attach it on onState.
// Only the newest connection's candidates reach onCandidate.

const GATHERING_TIMEOUT_MS = 5000;

function toIceServer(server) {
  return typeof server === "string" ? { urls: server } : server;
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    // Stop waiting after a while: an unreachable STUN/TURN server must not
    // hold the call; the candidates gathered so far are used.
    const timer = setTimeout(done, GATHERING_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class Softphone {
  constructor({ iceServers = [], trickle = false, onCandidate = (candidate) => {}, onState = (state) => {} } = {}) {
    this.iceServers = typeof iceServers === "function" ? iceServers : iceServers.map(toIceServer);
    this.trickle = trickle;
    this.onCandidate = onCandidate;
    this.onState = onState;
    this.pc = null;
    this.localStream = null;
    this._remoteStream = new MediaStream();
    this._previous = null;
    this._closed = false;
  }

  /** Create the offer for `stream`, by default the microphone (after ICE gathering, unless trickling). */
  async createOffer(stream) {
    if (this.pc) throw new Error("Softphone: createOffer() was already called; make a new Softphone");
    // (Kept from a first attempt that failed before its connection existed, e.g. fetching the ICE servers.)
    this.localStream = this.localStream || stream || (await navigator.mediaDevices.getUserMedia({ audio: true, video: false }));
    return await this._connect(await this._iceServers());
  }

  /** A fresh offer on a new connection with the same microphone (see the top of this file).
   *  The current connection keeps running until acceptAnswer() takes the new one. */
  async reoffer() {
    if (this._closed) throw new Error("Softphone: hung up");
    if (!this.localStream) throw new Error("Softphone: call createOffer() first");
    const iceServers = await this._iceServers();  // meanwhile `pc` is still the current connection
    if (this._previous) { if (this.pc) this.pc.close(); }  // an earlier re-offer that got no answer: drop it, keep the answered one
    else this._previous = this.pc;
    this.pc = null;
    return await this._connect(iceServers);
  }

  /** The ICE servers for a new connection: the list given, or the function's fresh answer. */
  async _iceServers() {
    return typeof this.iceServers === "function" ? (await this.iceServers()).map(toIceServer) : this.iceServers;
  }

  async _connect(iceServers) {
    if (this._closed) throw new Error("Softphone: hung up");
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    const remote = this._previous ? new MediaStream() : this._remoteStream;
    pc.addEventListener("track", (event) => {
      if (!remote.getTracks().includes(event.track)) remote.addTrack(event.track);
    });
    // Only the current connection speaks for the softphone.
    pc.addEventListener("connectionstatechange", () => { if (pc === this.pc && !this._closed) this._state(pc.connectionState); });
    if (this.trickle) {
      pc.addEventListener("icecandidate", (event) => {
        if (pc === this.pc && !this._closed) this._candidate(event.candidate ? event.candidate.toJSON() : null);
      });
    }
    for (const track of this.localStream.getAudioTracks()) pc.addTrack(track, this.localStream);
    await pc.setLocalDescription(await pc.createOffer());
    if (!this.trickle) await gatheringComplete(pc);
    if (this._closed) { pc.close(); throw new Error("Softphone: hung up"); }
    this._nextRemote = remote;
    return pc.localDescription.sdp;
  }

  /** Apply the media server's answer (to the latest offer). */
  async acceptAnswer(answerSdp) {
    if (!this.pc) throw new Error("Softphone: call createOffer() first");
    await this.pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
    this._remoteStream = this._nextRemote || this._remoteStream;
    if (this._previous) {
      this._previous.close();
      this._previous = null;
    }
  }

  /** The far end's audio, a MediaStream that exists from the start (attach it to an <audio autoplay>).
   *  After a re-offer is answered it is a new stream. */
  get remoteStream() {
    return this._remoteStream;
  }

  /** The current connection's state ("new" before the first offer). */
  get state() {
    return this._closed ? "closed" : this.pc ? this.pc.connectionState : "new";
  }

  /** Close the connection and release the microphone (idempotent). */
  hangup() {
    if (this._closed) return;
    this._closed = true;
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
    if (this._previous) this._previous.close();
    if (this.pc) this.pc.close();
    this._state("closed");
  }

  _candidate(candidate) {
    try {
      this.onCandidate(candidate);
    } catch (error) {
      console.error("Softphone onCandidate handler failed", error);
    }
  }

  _state(state) {
    try {
      this.onState(state);
    } catch (error) {
      console.error("Softphone onState handler failed", error);
    }
  }
}
