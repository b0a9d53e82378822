"""The server's log: one timestamped line per event, to standard error, never waited for.

A log that cannot be written (its reader gone, say `server.py 2>&1 | tee` stopped, or its disk
full) loses its lines and nothing else: the server goes on, and the next line that can be
written says how many were lost first. A log whose reader is there but does not read (Ctrl-S in
the server's terminal, a pager left open, an ssh session suspended) is not waited for: the one
thread would wait with it, and every user with it (an operator's trial froze the chat, and
SIGTERM too). Its lines wait in a backlog of at most BACKLOG_BYTES, go out once the reader reads
again (tried on the loop's timer: watch), and past the bound are lost and counted.

Not waiting takes a descriptor of our own that never blocks: a terminal or a pipe is opened
again, non-blocking, through /proc (the flag on standard error itself would be the shell's
too, which shares it); a socket is sent to with MSG_DONTWAIT. Asking select() first was not
enough: a terminal with a little room polls writable, and a blocking write then waits for all
of it (a re-attack froze the chat so, and SIGTERM, whose interrupted write Python restarts).
"""
import collections
import itertools
import os
import select
import socket
import stat
import time

BACKLOG_BYTES = 1 << 20     # lines held for a reader that does not read; past it, lost
PIECE_BYTES = 4096          # the most one write offers
RETRY_S = 0.5               # a backlog is tried again this often
DRAIN_S = 2.0               # at the end, how long the last lines wait for their reader


class Logger:
    """log(text) writes one line; log.many(texts) several, with one stamp."""

    def __init__(self, clock, stream=None, fd=2):
        self._clock = clock
        self._stream = stream       # a text stream (tests), written at once; else `fd`
        self._out = None if stream is not None else _Unwaited(fd)
        self._second = None         # the whole second of the last stamp, and the stamp: a
        self._stamp = ""            # pass's lines (a burst of logins) share one strftime
        self.lost = 0               # lines that could not be written since the last written
        # the backlog: (bytes, how many lines they stand for: 1 for a line, N for the note of
        # N lost, 0 for a newline that ends a line a failed write tore), oldest first
        self._waiting = collections.deque()
        self._waiting_bytes = 0
        self._sent = 0              # bytes of the oldest already written
        self._reactor = None        # watch(): where a backlog is tried again
        self._retry = None          # that try's Timer, while one is armed

    def __call__(self, text):
        """Write one line now."""
        self.many((text,))

    def many(self, texts):
        """Write lines, in order, all with the stamp of now (in one write when the backlog is
        empty and they fit in PIECE_BYTES)."""
        second = int(self._clock.wall())
        if second != self._second:
            self._second = second
            # local time with its offset from UTC: a log read elsewhere, or across a change
            # to summer time, says when each line was written all the same
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S%z", time.localtime(second))
        lines = [f"{self._stamp} {text}\n" for text in texts]
        if self._stream is not None:
            self._write_stream(lines)
            return
        for line in lines:
            data = line.encode("utf-8", "backslashreplace")
            if self._waiting_bytes + len(data) > BACKLOG_BYTES:
                self.lost += 1
                continue
            if self.lost:
                self._hold(self._lost_note().encode(), self.lost)
                self.lost = 0
            self._hold(data, 1)
        self._flush()

    def _lost_note(self):
        """The line that says how many lines before it were lost."""
        return f"{self._stamp} ({self.lost} log lines before this could not be written)\n"

    def _hold(self, data, stands_for):
        self._waiting.append((data, stands_for))
        self._waiting_bytes += len(data)

    def _write_stream(self, lines):
        if self.lost:
            lines.insert(0, self._lost_note())
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError):
            self.lost += len(lines) - (1 if self.lost else 0)
            return
        self.lost = 0

    def _flush(self, wait_s=0.0):
        """Write what the backlog holds while the log takes it without waiting (up to `wait_s`
        for each piece)."""
        waiting = self._waiting
        while waiting:
            piece = [waiting[0][0][self._sent:]]
            size = len(piece[0])
            for data, _ in itertools.islice(waiting, 1, None):     # (no copy of the deque)
                if size + len(data) > PIECE_BYTES:
                    break
                piece.append(data)
                size += len(data)
            try:
                written = self._out.write(b"".join(piece), wait_s)
            except (OSError, ValueError):
                self._lose_all()
                break
            if not written:
                break
            self._advance(written)
        if waiting and self._reactor is not None and self._retry is None:
            self._retry = self._reactor.call_later(RETRY_S, self._retried)

    def _advance(self, written):
        """`written` bytes of the backlog went out."""
        written += self._sent
        waiting = self._waiting
        while waiting and written >= len(waiting[0][0]):
            data, _ = waiting.popleft()
            written -= len(data)
            self._waiting_bytes -= len(data)
        self._sent = written

    def _lose_all(self):
        """The log failed (not full: failed): every line held is lost, and counted."""
        self.lost += sum(stands_for for _, stands_for in self._waiting)
        # torn now, or still: the newline that ends a torn line, itself not written yet (a
        # re-attack's full disk failed several writes in a row, and the next line was glued)
        torn = self._sent > 0 or (self._waiting and self._waiting[0] == (b"\n", 0))
        self._waiting.clear()
        self._waiting_bytes = self._sent = 0
        if torn:    # (its next line starts on a row of its own, not glued to a torn one)
            self._hold(b"\n", 0)

    def _retried(self):
        self._retry = None
        self._flush()

    def watch(self, reactor):
        """Try a backlog again on `reactor`'s timers (without one, at the next line)."""
        self._reactor = reactor

    def drain(self, wait_s):
        """At the end: what the backlog holds, waiting up to `wait_s` in all for its reader;
        what is left then is lost."""
        deadline = time.monotonic() + wait_s
        while self._waiting and time.monotonic() < deadline:
            self._flush(min(0.1, max(0.0, deadline - time.monotonic())))


class _Unwaited:
    """Descriptor `fd`, written without waiting for its reader."""

    def __init__(self, fd):
        self._fd = fd               # written as it is: a regular file (no reader to wait for)
        self._own = None            # a terminal or pipe opened again, non-blocking
        self._socket = None         # a socket (systemd's journal), sent to with MSG_DONTWAIT
        # select() asked first, but of a regular file (always writable: it was a select() a
        # pass, a fiftieth of a login in bench.py) or a descriptor of our own, non-blocking
        self._ask_first = True
        try:
            mode = os.fstat(fd).st_mode
            self._ask_first = not stat.S_ISREG(mode)
            if stat.S_ISSOCK(mode):
                self._socket = socket.socket(fileno=os.dup(fd))
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
                self._own = os.open(f"/proc/self/fd/{fd}",
                                    os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
                self._ask_first = False
        except OSError:
            pass            # (no /proc, say: then select() is asked first, as good as it gets)

    def write(self, data, wait_s=0.0):
        """-> how many bytes of `data` were written (0: the reader is not reading); OSError
        if the log cannot be written at all."""
        try:
            if self._socket is not None:
                if wait_s:
                    select.select([], [self._socket], [], wait_s)
                return self._socket.send(data, socket.MSG_DONTWAIT)
            fd = self._fd if self._own is None else self._own
            if (wait_s or self._ask_first) and not select.select([], [fd], [], wait_s)[1]:
                return 0
            return os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            return 0


def make_logger(clock, stream=None, fd=2):
    """A log writing one timestamped line per event to `stream`, else to descriptor `fd`
    (stderr's)."""
    return Logger(clock, stream, fd)
