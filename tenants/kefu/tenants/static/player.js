// A call's recording player: one <audio> per party (the call's channels), played in
// step, with play / pause, a position slider, and per party "hear alone" and mute.
// The sources are short-lived signed links (POST /api/v1/calls/{id}/playback,
// docs/recordings.md); when one has expired (the browser's next range request is
// refused) the player asks for fresh links and goes on from the same position.
//
// Markup it makes inside the container: .player[data-call-id] > .player-play (aria-pressed),
// .player-position (input range, seconds), .player-time, and per party
// .player-party[data-party] > .player-solo (aria-pressed), .player-mute (aria-pressed), audio.
import { api, el, t } from "./common.js";

const DRIFT_S = 0.25;  // parties further apart than this are put back in step

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export class CallPlayer {
  /** ``playback``: the answer of POST /api/v1/calls/{id}/playback (or of another route answering
   *  the same shape, e.g. a library item's); ``renew`` asks for fresh links the same way. */
  constructor(container, playback, { onError = () => {}, renew = null } = {}) {
    this.callId = playback.call_id;
    this.onError = onError;
    this.renew = renew || (() => api("POST", `/api/v1/calls/${this.callId}/playback`));
    this.solo = null;
    this.muted = new Set();
    this.parties = playback.parties.map((party) => ({ ...party, audio: el("audio", { preload: "auto", src: party.url }) }));
    this.refreshing = null;
    this.recoveries = 0;  // fresh links asked for since audio last played (a missing file must not loop)
    this.root = el("div", { className: "player" });
    this.root.dataset.callId = this.callId;
    this.playButton = el("button", { type: "button", className: "player-play", textContent: t("play") });
    this.playButton.setAttribute("aria-pressed", "false");
    this.playButton.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.position = el("input", { type: "range", className: "player-position", min: 0, max: 0, step: 0.1, value: 0 });
    this.position.addEventListener("input", () => this.seek(Number(this.position.value)));
    this.time = el("span", { className: "player-time", textContent: "0:00 / 0:00" });
    const controls = el("div", { className: "actions" }, this.playButton, this.position, this.time);
    const rows = this.parties.map((party) => this.partyRow(party));
    this.root.append(controls, ...rows);
    container.replaceChildren(this.root);
    const [lead] = this.parties;
    if (lead) {
      lead.audio.addEventListener("timeupdate", () => this.follow());
      lead.audio.addEventListener("ended", () => this.pause());
    }
    for (const party of this.parties) {
      party.audio.addEventListener("loadedmetadata", () => this.showTime());
      party.audio.addEventListener("error", () => this.recover());
      party.audio.addEventListener("playing", () => { this.recoveries = 0; });
    }
  }

  partyRow(party) {
    const solo = el("button", { type: "button", className: "player-solo", textContent: t("hear_alone") });
    solo.setAttribute("aria-pressed", "false");
    solo.addEventListener("click", () => this.setSolo(this.solo === party.party ? null : party.party));
    const mute = el("button", { type: "button", className: "player-mute", textContent: t("mute_party") });
    mute.setAttribute("aria-pressed", "false");
    mute.addEventListener("click", () => this.toggleMute(party.party));
    const label = el("span", { className: "player-party-name", textContent: t(`party_${party.party}`) === `party_${party.party}` ? party.party : t(`party_${party.party}`) });
    const row = el("div", { className: "player-party actions" }, label, solo, mute, party.audio);
    row.dataset.party = party.party;
    party.row = row;
    return row;
  }

  get playing() {
    return this.parties.some((p) => !p.audio.paused);
  }

  get duration() {
    return Math.max(0, ...this.parties.map((p) => (Number.isFinite(p.audio.duration) ? p.audio.duration : (p.duration_ms || 0) / 1000)));
  }

  async play() {
    const lead = this.parties[0];
    if (!lead) return;
    for (const party of this.parties) party.audio.currentTime = lead.audio.currentTime;
    await Promise.all(this.parties.map((p) => p.audio.play().catch((error) => this.onError(error))));
    this.playButton.setAttribute("aria-pressed", "true");
    this.playButton.textContent = t("pause");
  }

  pause() {
    for (const party of this.parties) party.audio.pause();
    this.playButton.setAttribute("aria-pressed", "false");
    this.playButton.textContent = t("play");
  }

  seek(seconds) {
    for (const party of this.parties) party.audio.currentTime = Math.min(seconds, Number.isFinite(party.audio.duration) ? party.audio.duration : seconds);
    this.showTime();
  }

  /** Keep the other parties with the first one, and the slider with all of them. */
  follow() {
    const lead = this.parties[0].audio;
    for (const party of this.parties.slice(1)) {
      if (!party.audio.paused && Math.abs(party.audio.currentTime - lead.currentTime) > DRIFT_S) party.audio.currentTime = lead.currentTime;
    }
    this.showTime();
  }

  showTime() {
    const lead = this.parties[0] ? this.parties[0].audio.currentTime : 0;
    this.position.max = String(this.duration);
    this.position.value = String(lead);
    this.time.textContent = `${clock(lead)} / ${clock(this.duration)}`;
  }

  setSolo(party) {
    this.solo = party;
    this.applyVolumes();
  }

  toggleMute(party) {
    if (this.muted.has(party)) this.muted.delete(party); else this.muted.add(party);
    this.applyVolumes();
  }

  applyVolumes() {
    for (const party of this.parties) {
      const heard = this.solo ? this.solo === party.party : !this.muted.has(party.party);
      party.audio.muted = !heard;
      party.row.dataset.heard = String(heard);
      party.row.querySelector(".player-solo").setAttribute("aria-pressed", String(this.solo === party.party));
      party.row.querySelector(".player-mute").setAttribute("aria-pressed", String(this.muted.has(party.party)));
    }
  }

  /** A source failed (most often its link expired): fresh links, same position, same state. */
  async recover() {
    if (this.refreshing) return this.refreshing;
    if (this.recoveries >= 2) {
      this.onError(new Error(t("recording_unavailable")));
      return undefined;
    }
    this.recoveries += 1;
    this.refreshing = (async () => {
      const at = this.parties[0] ? this.parties[0].audio.currentTime : 0;
      const wasPlaying = this.playing;
      try {
        const fresh = await this.renew();
        for (const party of this.parties) {
          const again = fresh.parties.find((p) => p.recording_id === party.recording_id);
          if (!again) continue;
          party.url = again.url;
          party.audio.src = again.url;
          party.audio.currentTime = at;
        }
        if (wasPlaying) await this.play();
      } catch (error) {
        this.onError(error);
      }
    })();
    try { await this.refreshing; } finally { this.refreshing = null; }
  }

  stop() {
    this.pause();
    for (const party of this.parties) party.audio.removeAttribute("src");
  }
}

/** Ask for the call's links and mount a player in ``container``. */
export async function playCall(container, callId, options = {}) {
  const playback = await api("POST", `/api/v1/calls/${callId}/playback`);
  return new CallPlayer(container, playback, options);
}
