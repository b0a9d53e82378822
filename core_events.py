"""What both cores share: the event of a timer that fired and the actions to arm one, cancel
one, and write a log line.

A timer's key is a small frozen object of the core's own (server_events.py, client_events.py
name theirs); the glue keeps a pacing.KeyedTimers for them, so arming a key again replaces its
timer.
"""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Expired:
    """The timer armed with `Arm(key, at)` is due."""
    key: object


# Arm and Log are not frozen (a login makes one and a logout another, and the frozen
# dataclass's field setting was 0.16 us more each): values all the same, never changed once made.

@dataclass(slots=True)
class Arm:
    """Wake the core with Expired(key) at clock time `at`; the same key replaces the old timer."""
    key: object
    at: float


@dataclass(frozen=True, slots=True)
class Cancel:
    """Forget the timer armed with `key`."""
    key: object


@dataclass(slots=True)
class Log:
    """One diagnostic line: the server's log, or a client's standard error. Never a password
    or a message body. A line a flood could repeat has a `key`, (what, from whom): the first of
    a burst is said, the rest counted in one line a minute."""
    text: str
    key: tuple | None = None
