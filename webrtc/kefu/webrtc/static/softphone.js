// Kefu browser softphone (ES module): one audio-only RTCPeerConnection to the
// Kefu media server.  Signalling is non-trickle: createOffer() resolves once ICE
// gathering is complete, so the offer SDP carries every candidate; the page
// posts it to the control-plane API and hands the answer to acceptAnswer().

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
    this._closed = false;
  }

  /** Create the offer (after ICE gathering completes) for `stream`, by default the microphone. */
  async createOffer(stream) {
    if (this.pc) throw new Error("Softphone: createOffer() was already called; make a new Softphone");
    this.localStream = stream || (await navigator.mediaDevices.getUserMedia({ audio: true, video: false }));
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    pc.addEventListener("track", (event) => {
      if (!this._remoteStream.getTracks().includes(event.track)) this._remoteStream.addTrack(event.track);
    });
    pc.addEventListener("connectionstatechange", () => this._state(pc.connectionState));
    for (const track of this.localStream.getAudioTracks()) pc.addTrack(track, this.localStream);
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    return pc.localDescription.sdp;
  }

  /** Apply the media server's answer. */
  async acceptAnswer(answerSdp) {
    if (!this.pc) throw new Error("Softphone: call createOffer() first");
    await this.pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
  }

  /** The far end's audio, a MediaStream that exists from the start (attach it to an <audio autoplay>). */
  get remoteStream() {
    return this._remoteStream;
  }

  /** Close the connection and release the microphone (idempotent). */
  hangup() {
    if (this._closed) return;
    this._closed = true;
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
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
