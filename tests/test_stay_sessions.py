"""Staying connected changes how frames travel, not what anyone sees: every recorded session
(tests/sessions/*.txt) replayed with some or all clients on staying connections shows each user
exactly the lines, at exactly the times, of the all-short-connection run."""
import re

import pytest

from server_events import Deliver, DeliverEach, DeliverRun
from world import SESSIONS, World, run_session

# a native client's start (an IRC client's, `start NAME irc`, has a connection of its own)
START = re.compile(r"^start (\S+)(?!.* irc$)(.*)$", re.MULTILINE)
STAYS = re.compile(r"^start .* stay$", re.MULTILINE)
LINE = re.compile(r"^\s*([\d.]+) (\S+)( log)? \| (.*)$")    # (a client's log line: not seen)


def staying(text, chosen):
    """The session with the clients started in positions `chosen` (0, 1, ...) staying."""
    count = iter(range(1000))
    return START.sub(lambda m: m.group(0) + (" stay" if next(count) in chosen else ""), text)


def commands(text):
    """A session file without its recorded lines."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("  ")) + "\n"


def seen(world):
    """user -> the lines that user's screen shows, with their times; no log, no server."""
    screens = {}
    for line in world.transcript:
        time, who, logged, text = LINE.match(line).groups()
        if who in world.clients and not logged:
            screens.setdefault(who, []).append((time, text))
    return screens


def replayed(text):
    world = World()
    run_session(commands(text), world)
    return world


MIXES = {"all": range(10), "first": {0}, "odd": {1, 3, 5, 7}, "even": {0, 2, 4, 6}}
SHORT = [path for path in SESSIONS if not STAYS.search(path.read_text())]
CASES = [(path, mix) for path in SHORT for mix in MIXES
         if set(MIXES[mix]) & set(range(len(START.findall(path.read_text()))))]


@pytest.mark.parametrize("path, mix", CASES, ids=[f"{p.stem}-{m}" for p, m in CASES])
def test_each_user_sees_the_same_whichever_way_clients_connect(path, mix):
    text = path.read_text()
    short = replayed(text)
    mixed = replayed(staying(text, MIXES[mix]))
    assert any(getattr(sim, "stays", False) for sim in mixed.clients.values())   # (IRC: none)
    assert seen(mixed) == seen(short)


def test_staying_clients_really_stay():
    """The mixed runs above carry their frames on staying connections, not short ones."""
    text = (SESSIONS[0].parent / "messages.txt").read_text()
    log = "\n".join(replayed(staying(text, {0, 1})).transcript)
    assert "logged in from 10.0.0.1:5000, staying connected" in log
    assert "logged in from 10.0.0.3:5000\n" in log          # the third is short


def test_staying_is_an_option_of_start():
    assert staying("start a\nstart b 10.0.0.9\nstart c\n", {1, 2}) == (
        "start a\nstart b 10.0.0.9 stay\nstart c stay\n")


def test_the_cut_session_is_sent_again_what_it_had_not_acknowledged_and_shows_it_once():
    world = World()
    pushed = []
    handle = world.server.handle

    def recording(event, now):
        actions = handle(event, now)
        for action in actions:
            if isinstance(action, DeliverEach) and "seq" in action.frame:     # stored ones
                pushed.extend(action.frame["text"] for _ in action.conns)
            elif isinstance(action, DeliverRun):        # sent again at the resume, together
                pushed.extend(frame["text"] for _ in action.conns for frame in action.frames)
            elif isinstance(action, Deliver) and action.conn is not None and "seq" in action.frame:
                pushed.append(action.frame["text"])     # sent again at the resume
        return actions
    world.server.handle = recording
    run_session((SESSIONS[0].parent / "stay_resume.txt").read_text(), world)
    assert pushed == ["one", "two", "one", "two", "three"]     # the acks of the first two were lost
    shown = [line.split("| ")[1] for line in world.transcript if " alice | seas: " in line]
    assert shown == ["seas: one", "seas: two", "seas: three"]
    assert world.store.count_waiting("columbia") == 0
