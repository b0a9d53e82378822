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
backoff; new messages wait behind it to keep the order, in the store only. Until the client
acknowledges again, its window is a small one (PROBE_WINDOW, PROBE_BYTES): each retry to a port
that takes connections and never answers re-read a full window from the store, and a trial's
100 such sessions, sent 600 broadcasts of 4,000 characters, held 529 MB in copies of them.
"""
import bisect
import itertools
import sys
from dataclasses import dataclass

import limits
import protocol

READ_AHEAD = 64               # messages read from the store at a time, behind the window
BACKLOG_MAX = 4096            # messages a session keeps in memory behind its window ...
BACKLOG_BYTES = 1024 * 1024   # ... and their bytes: a client that reads nothing costs no more
PROBE_WINDOW = 16             # messages in flight after a failed delivery, until an ack ...
PROBE_BYTES = 64 * 1024       # ... and their bytes
READ_BACK_BYTES = 4 * 1024 * 1024   # messages read back from the store, shared (Deliveries) ...
READ_BACK_COPY_BYTES = 560          # ... each counted as its line, its decoded text and this
                                    # much besides (a trial's soak held 27 MB under "4 MiB" of
                                    # lines of 115 bytes; a re-attack's texts with one emoji,
                                    # 4 bytes a character decoded, 4.8 times what a line counted)


@dataclass(slots=True)
class Window:
    """One session's deliveries. Slots, and the empty tuple for an empty list until something
    goes in (three empty lists were 168 bytes of every idle user's 2.1 KB): ten thousand idle
    users cost memory here."""
    acked: int = 0              # the client has shown every message up to this seq
    sent: list = ()             # seqs sent since, ascending, not yet acked
    sent_sizes: list = ()       # their sizes on the wire
    # At least their sum: exact after a count (_counted), and only added to in between. An
    # acknowledgement of some leaves it as it is (a sum at each was a tenth of a broadcast
    # delivery's cost); a decision it would make differently from the exact sum counts first.
    sent_bytes: int = 0
    backlog: list = ()          # what waits next, in order (Numbered)
    backlog_bytes: int = 0
    # True while the backlog holds everything that waits: a new message may join it. False:
    # the store may hold more after its last; they are read back as the backlog empties.
    complete: bool = False
    retrying: bool = False      # a redelivery is due; new messages wait to go with it, in order
    backoff_s: float = 0.0      # the wait before that redelivery; doubles until an ack arrives
    probing: bool = False       # a delivery failed, and no ack has come since: a small window


def window_of(session):
    """`session`'s Window (anything with `window` and `acked`), made if it has none: a
    session whose client has taken everything sent holds no Window (`settle`), only the
    number acknowledged."""
    win = session.window
    if win is None:
        win = session.window = Window(session.acked, complete=True)
    return win


def _counted(win):
    """win.sent_bytes made the exact sum of what is on its way, and returned."""
    win.sent_bytes = sum(win.sent_sizes)
    return win.sent_bytes


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
        # seq -> the message lately read back from the store: a message has one number and
        # one line for all its recipients, so those reading it back share one decoded copy
        # (a copy each was 450 MB for 3,000 sessions retrying 2 KB broadcasts). Let go of
        # all at once past READ_BACK_BYTES: what windows hold stays theirs.
        self._read_back = {}
        self._read_back_bytes = 0

    def restart(self, win, on_own_connection=False):
        """Everything unacknowledged is to be sent again, read from the store, oldest first;
        on the client's own (staying) connection, with the whole window again: that
        connection is the client's, and proven."""
        if on_own_connection:
            win.probing = False
        win.sent = win.sent_sizes = win.backlog = ()
        win.sent_bytes = win.backlog_bytes = 0
        win.complete = False
        win.retrying = False

    def top_up(self, user, win):
        """The next waiting messages that fit the window, oldest first, counted as sent. Taken
        off the backlog a slice at a time: as many as the window's room by count and by bytes
        lets go (each while the window is not full), not a look at each."""
        if win.retrying or (win.complete and not win.backlog):
            return []                   # nothing waits (an ack of the last one sent, say)
        taken = []
        window, window_bytes = self._window, self._window_bytes
        if win.probing:
            window, window_bytes = min(window, PROBE_WINDOW), min(window_bytes, PROBE_BYTES)
        while len(win.sent) < window and (win.sent_bytes < window_bytes
                                          or _counted(win) < window_bytes):
            backlog = win.backlog
            if not backlog:
                if not self._read_ahead(user, win):
                    break
                backlog = win.backlog
            last = win.sent[-1] if win.sent else win.acked
            skipped = 0                 # acknowledged before they were even sent (the front)
            while skipped < len(backlog) and backlog[skipped]["seq"] <= last:
                skipped += 1
            room = window - len(win.sent)
            sizes = [len(frame.wire) for frame in backlog[skipped:skipped + room]]
            before = list(itertools.accumulate(sizes, initial=0))
            # (stopped by a bound over the sum, the loop's test counts, and goes on)
            count = bisect.bisect_left(before, window_bytes - win.sent_bytes, 0, len(sizes))
            going = backlog[skipped:skipped + count]
            win.sent = [*win.sent, *[frame["seq"] for frame in going]]
            win.sent_sizes = [*win.sent_sizes, *sizes[:count]]
            win.sent_bytes += before[count]
            win.backlog_bytes -= before[count] + sum(len(frame.wire)
                                                     for frame in backlog[:skipped])
            win.backlog = backlog[skipped + count:] or ()
            taken += going              # (the window is full, or the backlog empty)
        return taken

    def _read_ahead(self, user, win):
        """Fill the empty backlog from the store -> False if nothing more waits there."""
        if win.complete:
            return False
        after = win.sent[-1] if win.sent else win.acked
        rows = self._store.waiting(user, after,
                                   limit=PROBE_WINDOW if win.probing else READ_AHEAD)
        if rows and not win.backlog:
            win.backlog = []
        read_back = self._read_back
        for seq, wire in rows:
            numbered = read_back.get(seq)
            if numbered is None:
                numbered = protocol.numbered_line(wire)
                if self._read_back_bytes > READ_BACK_BYTES:
                    read_back.clear()
                    self._read_back_bytes = 0
                read_back[seq] = numbered
                self._read_back_bytes += (len(wire) + sys.getsizeof(numbered.get("text", ""))
                                          + READ_BACK_COPY_BYTES)
            win.backlog.append(numbered)
            win.backlog_bytes += len(numbered.wire)
        # all that waits is in memory now; while probing, new messages stay in the store only
        win.complete = len(rows) < READ_AHEAD and not win.probing
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
            if (win.complete and not win.backlog and not win.retrying and len(win.sent) < window
                    and (win.sent_bytes < window_bytes or _counted(win) < window_bytes)):
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
        -> [(the frames that go out now, the targets they go to)]: for each target a first
        part of the run goes (all of it, usually), and the rest waits. A window with room for
        all of it takes the run in two list extends; one with room for some, a slice of it."""
        seqs = [frame["seq"] for frame in frames]
        sizes = [len(frame.wire) for frame in frames]
        size = sum(sizes)
        count = len(frames)
        window = self._window - count       # room for the last: it may just fit
        window_bytes = self._window_bytes - (size - sizes[-1])
        together, going = [], {}            # going: how many go -> to whom, for the others
        before = None                       # the bytes before each message of the run
        for target in targets:
            win = target.window
            if win is None:     # (window_of, inline)
                win = target.window = Window(target.acked, complete=True)
            if (win.complete and not win.backlog and not win.retrying and len(win.sent) <= window
                    and (win.sent_bytes < window_bytes or _counted(win) < window_bytes)):
                if win.sent:
                    win.sent += seqs
                    win.sent_sizes += sizes
                else:
                    win.sent, win.sent_sizes = seqs[:], sizes[:]
                win.sent_bytes += size
                together.append(target)
                continue
            if before is None:
                before = list(itertools.accumulate(sizes[:-1], initial=0))
            gone = 0
            if win.complete and not win.backlog and not win.retrying:
                # as each would be offered: they go while the window has room, by count
                # and by bytes (the first while it is not full), and the rest wait
                room = self._window - len(win.sent)
                gone = bisect.bisect_left(before, self._window_bytes - win.sent_bytes)
                if gone < min(room, len(before)):   # (stopped by the bytes: by their sum)
                    gone = bisect.bisect_left(before, self._window_bytes - _counted(win))
                gone = max(0, min(room, gone))
                if gone:
                    win.sent = [*win.sent, *seqs[:gone]]
                    win.sent_sizes = [*win.sent_sizes, *sizes[:gone]]
                    win.sent_bytes += before[gone - 1] + sizes[gone - 1]
                    going.setdefault(gone, []).append(target)
            if win.complete:
                self._wait_all(win, frames[gone:], sizes[gone:])
        runs = [(frames, together)] if together else []
        return runs + [(frames[:gone], them) for gone, them in going.items()]

    @staticmethod
    def _wait_all(win, frames, sizes):
        """_wait for each of `frames` in turn (their `sizes`), in one slice: as many join the
        backlog as it has room for, by count and by bytes, and the rest stay in the store."""
        room = BACKLOG_MAX - len(win.backlog)
        upto = list(itertools.accumulate(sizes[:room]))     # the bytes up to each, itself too
        joining = bisect.bisect_right(upto, BACKLOG_BYTES - win.backlog_bytes)
        if joining:
            win.backlog = [*win.backlog, *frames[:joining]]
            win.backlog_bytes += upto[joining - 1]
        if joining < len(frames):
            win.complete = False        # read back in order as the backlog empties

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
        """The client has shown everything up to `seq`: False if that is old news. A client
        acknowledges only what it was sent: a number past the last one sent counts as that
        one (a higher number, hostile or confused, would pass messages it was never sent:
        they would never come, nor be kept past a restart), and with nothing out there is
        nothing to acknowledge."""
        if seq <= win.acked or not win.sent:
            return False
        if seq > win.sent[-1]:
            seq = win.sent[-1]
        self._store.acknowledge(user, seq)
        win.acked = seq
        win.backoff_s = 0.0
        win.probing = False
        done = bisect.bisect_right(win.sent, seq)
        if done == len(win.sent):
            win.sent = win.sent_sizes = ()      # all acknowledged: the lists go
            win.sent_bytes = 0
        else:
            del win.sent[:done], win.sent_sizes[:done]      # (sent_bytes: see Window)
        return True

    def failed(self, win):
        """A delivery with messages on it failed: the seconds until they are sent again, or
        None when a retry is already due."""
        if win.retrying:
            return None
        win.retrying = True
        win.probing = True
        # what waits is read back from the store at the retry (restart): none of it is kept
        # in memory meanwhile
        win.backlog, win.backlog_bytes, win.complete = (), 0, False
        win.backoff_s = limits.next_backoff(win.backoff_s, self._retry_first_s,
                                            self._retry_max_s)
        return win.backoff_s
