"""Guaranteed delivery under a seeded, lossy network: every message shown exactly once, in order.

Four users chat through client cores and the server core (tests/world.py) while Faults lose,
repeat and delay requests, replies, deliveries and acknowledgements. Users whose session dies
(a lost heartbeat or three) log in again, as a person would. Then the network heals, time runs on,
and each screen is checked: every direct message typed is shown once to its recipient, and each
sender's messages appear in the order they were typed; broadcasts appear at most once, in order.
The same holds when some users stay connected and their connections are cut now and then.
"""
import re

import pytest

from client_events import Stage
from world import Faults, World

USERS = {"alice": ("columbia", "116bway"), "bob": ("seas", "summerisover"),
         "carol": ("google", "hasglasses"), "dave": ("facebook", "wastingtime")}
NAMES = {account: person for person, (account, _) in USERS.items()}
SHOWN = re.compile(r"^\s*[\d.]+ (\w+) \| (\w+)(?: \(while you were away[^)]*\))?: (\S+)$")


def log_in_whoever_is_asked(world):
    """Answer the username and password prompts, as a user would after a lost session."""
    for person, sim in world.clients.items():
        core = sim.core
        if core.waiting_for is not None or core.lines:
            continue
        if core.stage is Stage.USERNAME:
            world.type(person, USERS[person][0])
        elif core.stage is Stage.PASSWORD:
            world.type(person, USERS[person][1])


STAYING = ("alice", "carol")


def run_chat(seed, steps=150, staying=()):
    world = World(faults=Faults(seed), client_settings={"heartbeat_s": 10.0})
    for person in USERS:
        world.start(person, stays=person in staying)
    typed = {}                   # (sender, recipient) -> texts in the order typed
    broadcasts = {}              # sender -> texts in the order typed
    rng = world.faults.random
    for step in range(steps):
        log_in_whoever_is_asked(world)
        person = rng.choice(sorted(USERS))
        core = world.clients[person].core
        roll = rng.random()
        if roll < 0.3:
            world.advance(rng.choice([0.2, 1.0, 3.0, 8.0]))
        elif core.stage is Stage.LOGGED_IN and core.waiting_for is None and not core.lines:
            text = f"{person}-{step}"
            if roll < 0.85:
                to = rng.choice([p for p in sorted(USERS) if p != person])
                world.type(person, f"message {USERS[to][0]} {text}")
                typed.setdefault((person, to), []).append(text)
            else:
                world.type(person, f"broadcast {text}")
                broadcasts.setdefault(person, []).append(text)
    world.faults.on = False      # the network heals; retries and logins finish
    for _ in range(40):
        log_in_whoever_is_asked(world)
        world.advance(5.0)
    return world, typed, broadcasts


def screens(world):
    """recipient -> sender -> texts shown, in order."""
    shown = {}
    for line in world.transcript:
        match = SHOWN.match(line)
        if match and match.group(1) in USERS and match.group(2) in NAMES:
            recipient, sender = match.group(1), NAMES[match.group(2)]
            shown.setdefault(recipient, {}).setdefault(sender, []).append(match.group(3))
    return shown


@pytest.mark.parametrize("staying", [(), STAYING], ids=["short", "some staying"])
@pytest.mark.parametrize("seed", range(12))
def test_every_message_is_shown_exactly_once_and_in_order_despite_the_network(seed, staying):
    world, typed, broadcasts = run_chat(seed, staying=staying)
    shown = screens(world)
    assert sum(len(texts) for texts in typed.values()) > 40      # the test did chat
    for (sender, recipient), texts in typed.items():
        seen = [t for t in shown.get(recipient, {}).get(sender, []) if t in set(texts)]
        assert seen == texts, f"{sender} -> {recipient}"
    for sender, texts in broadcasts.items():
        for recipient in USERS:
            seen = [t for t in shown.get(recipient, {}).get(sender, []) if t in set(texts)]
            assert len(seen) == len(set(seen)), f"broadcast {sender} shown twice to {recipient}"
            assert seen == [t for t in texts if t in seen], f"broadcast order {sender} -> {recipient}"
    assert all(world.store.count_waiting(account) == 0 for account, _ in USERS.values())


def test_the_faults_really_happen():
    world, typed, _ = run_chat(seed=3)
    log = "\n".join(world.transcript)
    assert "could not deliver" in log                 # deliveries failed and were retried
    assert "Cannot reach the server" in log            # requests were lost
    assert "Your session has ended" in log or "will be retried" in log


def test_staying_connections_really_break_and_resume():
    world, typed, _ = run_chat(seed=3, staying=STAYING)
    log = "\n".join(world.transcript)
    assert log.count("staying connection closed") > 5
    assert log.count("resumed the session") > 5
    assert "Cannot reach the server (connection reset)." in log


def test_the_same_seed_gives_the_same_run():
    assert run_chat(seed=5, steps=60)[0].transcript == run_chat(seed=5, steps=60)[0].transcript
