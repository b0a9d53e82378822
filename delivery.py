"""The delivery window: which of a session's stored messages are on their way, in order.

Each stored message has a `seq`; a session's client acknowledges "everything up to N". At most
`window` messages (and `window_bytes`) are on their way before the acknowledgements; the rest
follow as those arrive, oldest first. A session keeps the messages waiting behind a full window
in memory (up to QUEUED_MAX), so a fast sender's messages are not read back from the store; a
client further behind reads from the store. When a delivery fails, what was not acknowledged is
sent again, from the oldest, after a backoff; new messages wait behind it to keep the order.
"""
import bisect
from dataclasses import dataclass, field

import limits
import protocol

QUEUED_MAX = 4096             # messages a session keeps in memory behind its window; past it
                              # they are only in the store, read back as the window opens


@dataclass(slots=True)
class Window:
    """One session's deliveries. Slots and lists (an empty deque is 760 bytes): ten thousand
    idle users cost memory here."""
    acked: int = 0              # the client has shown every message up to this seq
    sent: list = field(default_factory=list)    # seqs sent since, ascending, not yet acked
    sent_sizes: list = field(default_factory=list)   # their sizes on the wire
    sent_bytes: int = 0                              # their sum
    # Stored messages waiting behind a full window, in order, or None: unknown, read the store.
    queued: list | None = None
    retrying: bool = False      # a redelivery is due; new messages wait to go with it, in order
    backoff_s: float = 0.0      # the wait before that redelivery; doubles until an ack arrives


class Deliveries:
    """The rules every session's Window follows; the store holds what the windows refer to."""

    def __init__(self, store, window, window_bytes, retry_first_s, retry_max_s):
        self._store = store
        self._window = window
        self._window_bytes = window_bytes
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s

    def restart(self, win):
        """Everything unacknowledged is to be sent again, read from the store, oldest first."""
        win.sent.clear()
        win.sent_sizes.clear()
        win.sent_bytes = 0
        win.queued = None       # what was sent is not queued: read it all from the store
        win.retrying = False

    def top_up(self, user, win):
        """The next waiting messages that fit the window, oldest first, counted as sent: from
        the window's queue when it holds them all, else from the store."""
        room = self._window - len(win.sent)
        if room <= 0 or win.retrying:
            return []
        after = win.sent[-1] if win.sent else win.acked
        queued = win.queued
        if queued is None:
            rows = self._store.waiting(user, after, limit=room)
            frames = [protocol.Numberer(frame)(seq, offline) for seq, frame, offline in rows]
        else:
            skip = 0
            while skip < len(queued) and queued[skip]["seq"] <= after:
                skip += 1               # acknowledged before it was even sent
            frames = queued[skip:skip + room]
            del queued[:skip]
        taken = 0
        while taken < len(frames) and self._has_room(win):
            self._count_sent(win, frames[taken])
            taken += 1
        if queued is not None:
            del queued[:taken]
        elif taken == len(frames) < room:
            win.queued = []             # all sent: from now on, what waits is queued
        return frames[:taken]

    def offer(self, win, numbered):
        """A new stored message for the session: True if it goes out now (counted as sent),
        False if it waits (queued, or in the store only)."""
        queued = win.queued
        # with nothing queued and room in the window, everything older is already sent
        if queued == [] and not win.retrying and self._has_room(win):
            self._count_sent(win, numbered)
            return True
        if queued is not None:
            queued.append(numbered)
            if len(queued) > QUEUED_MAX:
                win.queued = None       # a client far behind reads from the store
        return False

    def acknowledge(self, user, win, seq):
        """The client has shown everything up to `seq`: False if that is old news."""
        if seq <= win.acked:
            return False
        self._store.acknowledge(user, seq)
        win.acked = seq
        win.backoff_s = 0.0
        done = bisect.bisect_right(win.sent, seq)
        win.sent_bytes -= sum(win.sent_sizes[:done])
        del win.sent[:done], win.sent_sizes[:done]
        return True

    def failed(self, win):
        """A delivery with messages on it failed: the seconds until they are sent again, or
        None when a retry is already due."""
        if win.retrying:
            return None
        win.retrying = True
        win.backoff_s = limits.next_backoff(win.backoff_s, self._retry_first_s,
                                            self._retry_max_s)
        return win.backoff_s

    def _has_room(self, win):
        """True while the window takes one more message (the first always fits)."""
        return len(win.sent) < self._window and win.sent_bytes < self._window_bytes

    @staticmethod
    def _count_sent(win, frame):
        size = len(frame.wire)
        win.sent.append(frame["seq"])
        win.sent_sizes.append(size)
        win.sent_bytes += size
