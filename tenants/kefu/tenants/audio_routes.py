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

A consultation adds a ``consult`` party (another agent): while it rings the
caller is on hold; while agent and consulted agent talk, the caller hears
music and neither agent hears the caller; in a three-way conference everyone
hears everyone (a muted agent excepted).
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
    consult: str | None = None  # ringing | talking | conference | None


def routes(state: CallAudio) -> dict[str, list[str]]:
    if state.taken_over:
        # The supervisor is now the caller's only party (muting and hold apply to it).
        if state.on_hold:
            return {"caller": ["moh"], "supervisor": []}
        return {"caller": [] if state.agent_muted else ["supervisor"], "supervisor": ["caller"]}
    hears: dict[str, list[str]] = {"caller": [], "agent": []}
    consulting = state.consult in ("ringing", "talking")
    conference = state.consult == "conference"
    if state.on_hold or consulting:
        hears["caller"].append("moh")
    else:
        if not state.agent_muted:
            hears["caller"].append("agent")
        hears["agent"].append("caller")
    if state.consult == "talking":
        hears["agent"].append("consult")
        hears["consult"] = ["agent"]
    elif conference:
        if not state.on_hold:
            hears["caller"].append("consult")
            hears["agent"].append("consult")
            hears["consult"] = ["caller"] + ([] if state.agent_muted else ["agent"])
        else:
            hears["consult"] = [] if state.agent_muted else ["agent"]
            hears["agent"].append("consult")
    mode = state.supervisor_mode
    if mode is not None:
        hears["supervisor"] = ([] if state.on_hold or consulting else ["caller"]) + ["agent"]
        if state.consult in ("talking", "conference"):
            hears["supervisor"].append("consult")
        if mode in ("whisper", "barge"):
            hears["agent"].append("supervisor")
        if mode == "barge" and not state.on_hold and not consulting:
            hears["caller"].append("supervisor")
            if conference:
                hears["consult"].append("supervisor")
    return hears
