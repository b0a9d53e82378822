"""The client's outbox: messages and broadcasts the server has not yet acknowledged.

Each gets an id (`mid`) made of the client's random per-run id and a counter, so a message sent
again after a lost reply is recognised by the server, never stored twice. They go one at a time,
oldest first, so the server takes them in the order typed; a failed try is repeated after 1 s,
2 s, 4 s ... up to 30 s (limits.next_backoff), and a slow_down waits as long as the server says.
Pure state: the core says what the user sees.
"""
from collections import deque
from dataclasses import dataclass

import limits
from commands import Command

RETRY_FIRST_S = 1.0         # a message the server did not take is sent again after this,
RETRY_MAX_S = 30.0          # doubling up to this, until the server acknowledges it


@dataclass(frozen=True)
class Outgoing:
    """A message or broadcast waiting for the server's acknowledgement."""
    mid: str                    # our id for it: a retry is recognised, never stored twice
    user: str                   # who typed it: it is sent only in that user's session
    command: Command

    def frame(self, token):
        """The request that sends it in the session with `token`."""
        frame = {"type": self.command.name, "token": token, "mid": self.mid,
                 "text": self.command.text}
        if self.command.name == "message":
            frame["to"] = self.command.user
        return frame


class Outbox:
    """Outgoing messages in the order typed; only the oldest is ever in flight."""

    def __init__(self, client_id):
        self._client_id = client_id     # random per run (64 bits): ids not repeated across runs
        self._count = 0
        self.entries = deque()          # Outgoing, oldest first (to read; changed only here)
        self.sending = None             # request id of the oldest in flight, if any
        self.retry_s = 0.0              # the wait before the next try; doubles per failure
        # the oldest went out and got no answer (or is out now): the server may have taken it
        self.unanswered = False

    def add(self, user, command):
        """Queue a message `user` typed -> its Outgoing (send it now if it is the only one)."""
        self._count += 1
        entry = Outgoing(f"{self._client_id}-{self._count}", user, command)
        self.entries.append(entry)
        return entry

    def head(self):
        """The oldest waiting message, if none is in flight; else None."""
        if self.sending is not None or not self.entries:
            return None
        return self.entries[0]

    def taken(self):
        """The server answered the one in flight (it stored or refused it): it leaves."""
        self.sending = None
        self.retry_s = 0.0
        self.unanswered = False
        return self.entries.popleft()

    def failed(self):
        """The one in flight got no answer: the seconds until it is tried again."""
        self.sending = None
        self.retry_s = limits.next_backoff(self.retry_s, RETRY_FIRST_S, RETRY_MAX_S)
        return self.retry_s

    def lost_on_the_way(self):
        """The one in flight went out and its answer did not come (not a connection refused),
        or was `unavailable` (the server holds the write until its disk takes it): the server
        may have taken it."""
        self.unanswered = True

    def slowed(self, seconds):
        """The server said slow_down: kept, and tried again after `seconds` (bounded)."""
        self.sending = None
        return limits.asked_wait(seconds, RETRY_FIRST_S, RETRY_MAX_S)

    def kept(self):
        """The one in flight stays for later (its session ended): nothing is in flight."""
        self.sending = None

    def fresh_start(self):
        """A new chance (a login, a new connection): the next failure waits RETRY_FIRST_S."""
        self.retry_s = 0.0

    def drop_all(self):
        """Forget every waiting message -> them, oldest first, and whether the server may have
        taken the oldest (it went out and no answer came)."""
        entries = list(self.entries)
        unanswered = bool(entries) and (self.unanswered or self.sending is not None)
        self.entries.clear()
        self.sending = None
        self.unanswered = False
        return entries, unanswered
