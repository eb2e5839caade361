"""Who hears whom for every combination of call state (pure, no audio)."""

from __future__ import annotations

import itertools

import pytest

from kefu.tenants.audio_routes import SUPERVISOR_MODES, CallAudio, routes


def hears(**state: object) -> dict[str, set[str]]:
    return {listener: set(sources) for listener, sources in routes(CallAudio(**state)).items()}  # type: ignore[arg-type]


def test_a_plain_call_is_caller_and_agent_hearing_each_other() -> None:
    assert hears() == {"caller": {"agent"}, "agent": {"caller"}}


def test_hold_plays_music_to_the_caller_and_keeps_the_agent_from_hearing_the_caller() -> None:
    assert hears(on_hold=True) == {"caller": {"moh"}, "agent": set()}


def test_a_muted_agent_is_not_heard_but_still_hears_the_caller() -> None:
    assert hears(agent_muted=True) == {"caller": set(), "agent": {"caller"}}


@pytest.mark.parametrize(
    ("mode", "caller", "agent"),
    [
        ("monitor", {"agent"}, {"caller"}),
        ("whisper", {"agent"}, {"caller", "supervisor"}),
        ("barge", {"agent", "supervisor"}, {"caller", "supervisor"}),
    ],
)
def test_supervisor_modes(mode: str, caller: set[str], agent: set[str]) -> None:
    assert hears(supervisor_mode=mode) == {"caller": caller, "agent": agent, "supervisor": {"caller", "agent"}}


def test_a_taken_over_call_is_the_caller_and_the_supervisor() -> None:
    assert hears(taken_over=True, supervisor_mode="barge") == {"caller": {"supervisor"}, "supervisor": {"caller"}}


def test_while_consulting_the_caller_hears_music_and_the_agents_hear_each_other() -> None:
    assert hears(consult="ringing") == {"caller": {"moh"}, "agent": set()}
    assert hears(consult="talking") == {"caller": {"moh"}, "agent": {"consult"}, "consult": {"agent"}}


def test_a_three_way_conference_is_everyone_hearing_everyone() -> None:
    assert hears(consult="conference") == {
        "caller": {"agent", "consult"}, "agent": {"caller", "consult"}, "consult": {"caller", "agent"}
    }
    assert hears(consult="conference", agent_muted=True) == {
        "caller": {"consult"}, "agent": {"caller", "consult"}, "consult": {"caller"}
    }


@pytest.mark.parametrize(
    ("on_hold", "muted", "mode", "taken_over", "consult"),
    [
        combo for combo in itertools.product(
            [False, True], [False, True], [None, *SUPERVISOR_MODES], [False, True], [None, "ringing", "talking", "conference"]
        )
        if not (combo[3] and combo[4])  # a taken-over call has no agent to consult
    ],
)
def test_invariants_over_every_state(on_hold: bool, muted: bool, mode: str | None, taken_over: bool, consult: str | None) -> None:
    table = hears(on_hold=on_hold, agent_muted=muted, supervisor_mode=mode, taken_over=taken_over, consult=consult)
    for listener, sources in table.items():
        assert listener not in sources  # nobody hears themselves
    # The caller never hears a supervisor who is only monitoring or whispering.
    if mode in ("monitor", "whisper") and not taken_over:
        assert "supervisor" not in table["caller"]
    # On hold (or while the agent consults) the caller hears music and nothing else, and nobody hears the caller.
    if on_hold or consult in ("ringing", "talking"):
        assert table["caller"] == {"moh"}
        assert all("caller" not in sources for sources in table.values())
    # A muted agent is heard by nobody (the supervisor still monitors the agent).
    if muted and not taken_over:
        assert "agent" not in table["caller"]
        assert "agent" not in table.get("consult", set()) or consult == "talking"
    # Only a consultation has a consult party.
    assert ("consult" in table) == (consult in ("talking", "conference"))
