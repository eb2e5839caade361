"""Who hears whom in a call, from the call's control state (pure; the media plane applies it).

The control plane keeps a call's state (on hold, agent muted, supervisor and
its mode, a taken-over call); this module turns it into the media plane's
routing table ``hears[listener] = [sources]``.  Keeping it a pure function
means every mode can be checked exhaustively without audio.

| state | caller hears | agent hears | supervisor hears |
| --- | --- | --- | --- |
| talking | agent | caller | — |
| on hold | music on hold | nothing | (as below, minus the caller) |
| agent muted | nothing from the agent | caller | |
| monitor | agent | caller | caller, agent |
| whisper | agent | caller, supervisor | caller, agent |
| barge | agent, supervisor | caller, supervisor | caller, agent |
| taken over | supervisor | (gone) | caller |
"""

from __future__ import annotations

from dataclasses import dataclass

SUPERVISOR_MODES = ("monitor", "whisper", "barge")


@dataclass(frozen=True)
class CallAudio:
    on_hold: bool = False
    agent_muted: bool = False
    supervisor_mode: str | None = None  # monitor | whisper | barge | None
    taken_over: bool = False


def routes(state: CallAudio) -> dict[str, list[str]]:
    if state.taken_over:
        # The supervisor is now the caller's only party (muting and hold apply to it).
        if state.on_hold:
            return {"caller": ["moh"], "supervisor": []}
        return {"caller": [] if state.agent_muted else ["supervisor"], "supervisor": ["caller"]}
    hears: dict[str, list[str]] = {"caller": [], "agent": []}
    if state.on_hold:
        hears["caller"].append("moh")
    else:
        if not state.agent_muted:
            hears["caller"].append("agent")
        hears["agent"].append("caller")
    mode = state.supervisor_mode
    if mode is not None:
        hears["supervisor"] = ([] if state.on_hold else ["caller"]) + ["agent"]
        if mode in ("whisper", "barge"):
            hears["agent"].append("supervisor")
        if mode == "barge" and not state.on_hold:
            hears["caller"].append("supervisor")
    return hears
