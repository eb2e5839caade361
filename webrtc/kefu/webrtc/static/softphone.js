// Kefu browser softphone (ES module): one audio-only RTCPeerConnection to the
// Kefu media server.  Signalling is non-trickle: createOffer() resolves once ICE
// gathering is complete, so the offer SDP carries every candidate; the page
// posts it to the control-plane API and hands the answer to acceptAnswer().
//
// Re-attaching after a network change: reoffer() builds a fresh
// RTCPeerConnection on the same microphone (aiortc 1.16, the media server,
// cannot restart ICE inside an existing connection), the page posts that offer
// to its re-attach endpoint, and acceptAnswer() swaps the connections: the
// server's new leg replaces the old one, and the old connection is closed here.
// remoteStream is then a new MediaStream: pages re-attach it on onState.

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
  constructor({ iceServers = [], onState = (state) => {} } = {}) {
    this.iceServers = iceServers.map(toIceServer);
    this.onState = onState;
    this.pc = null;
    this.localStream = null;
    this._remoteStream = new MediaStream();
    this._previous = null;
    this._closed = false;
  }

  /** Create the offer (after ICE gathering completes) for `stream`, by default the microphone. */
  async createOffer(stream) {
    if (this.pc) throw new Error("Softphone: createOffer() was already called; make a new Softphone");
    this.localStream = stream || (await navigator.mediaDevices.getUserMedia({ audio: true, video: false }));
    return await this._connect();
  }

  /** A fresh offer on a new connection with the same microphone (see the top of this file).
   *  The current connection keeps running until acceptAnswer() takes the new one. */
  async reoffer() {
    if (this._closed) throw new Error("Softphone: hung up");
    if (!this.localStream) throw new Error("Softphone: call createOffer() first");
    if (this._previous) this.pc.close();  // an earlier re-offer that got no answer: drop it, keep the answered one
    else this._previous = this.pc;
    this.pc = null;
    return await this._connect();
  }

  async _connect() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    const remote = this._previous ? new MediaStream() : this._remoteStream;
    pc.addEventListener("track", (event) => {
      if (!remote.getTracks().includes(event.track)) remote.addTrack(event.track);
    });
    // Only the current connection speaks for the softphone.
    pc.addEventListener("connectionstatechange", () => { if (pc === this.pc && !this._closed) this._state(pc.connectionState); });
    for (const track of this.localStream.getAudioTracks()) pc.addTrack(track, this.localStream);
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
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

  _state(state) {
    try {
      this.onState(state);
    } catch (error) {
      console.error("Softphone onState handler failed", error);
    }
  }
}
