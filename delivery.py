"""The delivery window: which of a session's stored messages are on their way, in order.

Each stored message has a `seq`; a session's client acknowledges "everything up to N". At most
`window` messages (and `window_bytes`) are on their way before the acknowledgements; the rest
follow as those arrive, oldest first. Behind the window a session keeps a backlog in memory, in
order: messages read ahead from the store in chunks of READ_AHEAD (so each is read and encoded
once, and sending from a long backlog costs the same per message as from a short one) and new
messages kept while the window is full. The backlog is bounded (BACKLOG_MAX, BACKLOG_BYTES):
past it, what waits stays in the store only and is read back in order. The window is what
bounds the work one event does for one user (a long backlog goes out a window at a time, each
message read and encoded once), so one user's backlog never holds up a pass. A top-up fills all
the room an acknowledgement made: sending less (64 at a time, once) left a receiver acknowledging
hundreds at a time with a window that shrank to 64, and fan-in fell from 54k to 4k messages/s.
When a delivery fails, what was not acknowledged is sent again, from the oldest, after a
backoff; new messages wait behind it to keep the order.
"""
import bisect
from dataclasses import dataclass

import limits
import protocol

READ_AHEAD = 64               # messages read from the store at a time, behind the window
BACKLOG_MAX = 4096            # messages a session keeps in memory behind its window ...
BACKLOG_BYTES = 1024 * 1024   # ... and their bytes: a client that reads nothing costs no more


@dataclass(slots=True)
class Window:
    """One session's deliveries. Slots, and the empty tuple for an empty list until something
    goes in (three empty lists were 168 bytes of every idle user's 2.1 KB): ten thousand idle
    users cost memory here."""
    acked: int = 0              # the client has shown every message up to this seq
    sent: list = ()             # seqs sent since, ascending, not yet acked
    sent_sizes: list = ()       # their sizes on the wire
    sent_bytes: int = 0         # their sum
    backlog: list = ()          # what waits next, in order (Numbered)
    backlog_bytes: int = 0
    # True while the backlog holds everything that waits: a new message may join it. False:
    # the store may hold more after its last; they are read back as the backlog empties.
    complete: bool = False
    retrying: bool = False      # a redelivery is due; new messages wait to go with it, in order
    backoff_s: float = 0.0      # the wait before that redelivery; doubles until an ack arrives


def window_of(session):
    """`session`'s Window (anything with `window` and `acked`), made if it has none: a
    session whose client has taken everything sent holds no Window (`settle`), only the
    number acknowledged."""
    win = session.window
    if win is None:
        win = session.window = Window(session.acked, complete=True)
    return win


def settle(session):
    """Let go of `session`'s Window once it holds nothing: everything sent acknowledged,
    nothing waiting in memory or in the store, no retry due. The idle user's usual state:
    a Window for each was 104 bytes of every idle user's 1 KB. (None stands for a Window of
    `acked` in that state.)"""
    win = session.window
    if (win is not None and win.complete and not win.sent and not win.backlog
            and not win.retrying and not win.backoff_s):
        session.acked = win.acked
        session.window = None


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
        win.sent = win.sent_sizes = win.backlog = ()
        win.sent_bytes = win.backlog_bytes = 0
        win.complete = False
        win.retrying = False

    def top_up(self, user, win):
        """The next waiting messages that fit the window, oldest first, counted as sent."""
        if win.retrying or (win.complete and not win.backlog):
            return []                   # nothing waits (an ack of the last one sent, say)
        taken = []
        used = 0                        # backlog entries taken off its front
        while self._has_room(win):
            if used == len(win.backlog):
                win.backlog = ()
                used = 0
                if not self._read_ahead(user, win):
                    break
            frame = win.backlog[used]
            used += 1
            win.backlog_bytes -= len(frame.wire)
            if frame["seq"] <= (win.sent[-1] if win.sent else win.acked):
                continue                # acknowledged before it was even sent
            self._count_sent(win, frame)
            taken.append(frame)
        if used:                        # one slice, not a pop from the front per message
            win.backlog = win.backlog[used:] or ()
        return taken

    def _read_ahead(self, user, win):
        """Fill the empty backlog from the store -> False if nothing more waits there."""
        if win.complete:
            return False
        after = win.sent[-1] if win.sent else win.acked
        rows = self._store.waiting(user, after, limit=READ_AHEAD)
        if rows and not win.backlog:
            win.backlog = []
        for _, wire in rows:
            numbered = protocol.numbered_line(wire)
            win.backlog.append(numbered)
            win.backlog_bytes += len(numbered.wire)
        win.complete = len(rows) < READ_AHEAD     # all that waits is in memory now
        return bool(rows)

    def offer_each(self, targets, numbered):
        """A new stored message for each of `targets` (sessions: see window_of)
        -> those it goes out to now (counted as sent); for the others it waits (in the
        backlog, or in the store only). One call for a broadcast's recipients: the usual case,
        a window with room and nothing waiting before it, is inline here, with no call per
        recipient (a call each was most of a broadcast delivery's cost)."""
        going = []
        seq = numbered["seq"]
        size = len(numbered.wire)
        window, window_bytes = self._window, self._window_bytes
        for target in targets:
            win = target.window
            if win is None:     # (window_of, inline) settled: everything else was taken
                win = target.window = Window(target.acked, complete=True)
            if (win.complete and not win.backlog and not win.retrying
                    and len(win.sent) < window and win.sent_bytes < window_bytes):
                # (_has_room and _count_sent, inline)
                if win.sent:
                    win.sent.append(seq)
                    win.sent_sizes.append(size)
                else:
                    win.sent, win.sent_sizes = [seq], [size]
                win.sent_bytes += size
                going.append(target)
            elif win.complete:
                self._wait(win, numbered, size)
        return going

    def offer_run(self, targets, frames):
        """offer_each of each of `frames` (new stored messages, in order) to all of `targets`
        -> (the targets all of them go out to now, [(target, frame)] that go out now to the
        others). The usual case, a window with room for all of them and nothing waiting before
        it, takes the run in two list extends, not a look per message."""
        seqs = [frame["seq"] for frame in frames]
        sizes = [len(frame.wire) for frame in frames]
        size = sum(sizes)
        window = self._window - len(frames)         # room for the last: it may just fit
        window_bytes = self._window_bytes - (size - sizes[-1])
        together, apart = [], []
        for target in targets:
            win = target.window
            if win is None:     # (window_of, inline)
                win = target.window = Window(target.acked, complete=True)
            if (win.complete and not win.backlog and not win.retrying
                    and len(win.sent) <= window and win.sent_bytes < window_bytes):
                if win.sent:
                    win.sent += seqs
                    win.sent_sizes += sizes
                else:
                    win.sent, win.sent_sizes = seqs[:], sizes[:]
                win.sent_bytes += size
                together.append(target)
            else:               # as each would have been offered: some go, some wait
                apart += [(target, frame) for frame in frames
                          if self.offer_each((target,), frame)]
        return together, apart

    @staticmethod
    def _wait(win, numbered, size):
        """`numbered` waits behind the window: in the backlog while it has room, else in the
        store only (read back in order as the backlog empties)."""
        if len(win.backlog) < BACKLOG_MAX and win.backlog_bytes + size <= BACKLOG_BYTES:
            if not win.backlog:
                win.backlog = []
            win.backlog.append(numbered)
            win.backlog_bytes += size
        else:
            win.complete = False        # a client far behind reads from the store

    def acknowledge(self, user, win, seq):
        """The client has shown everything up to `seq`: False if that is old news."""
        if seq <= win.acked:
            return False
        self._store.acknowledge(user, seq)
        win.acked = seq
        win.backoff_s = 0.0
        done = bisect.bisect_right(win.sent, seq)
        if done == len(win.sent):
            win.sent = win.sent_sizes = ()      # all acknowledged: the lists go
            win.sent_bytes = 0
        else:
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
        if win.sent:
            win.sent.append(frame["seq"])
            win.sent_sizes.append(size)
        else:
            win.sent, win.sent_sizes = [frame["seq"]], [size]
        win.sent_bytes += size
