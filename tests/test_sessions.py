"""Whole-system replays: what each user sees, under a virtual clock (see tests/world.py)."""
import os

import pytest

from world import SESSIONS, run_session


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_session_gives_the_recorded_transcript(path):
    recorded = path.read_text()
    replayed = run_session(recorded)
    if os.environ.get("REPLAY_UPDATE"):
        path.write_text(replayed)
    assert replayed == recorded


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: p.stem)
def test_session_replays_identically(path):
    assert run_session(path.read_text()) == run_session(path.read_text())


def test_there_are_sessions():
    assert len(SESSIONS) >= 10
