"""The one-thread event loop: sockets, standard input and timers, and nothing about chat.

A `Reactor` owns one `selectors` selector. Every descriptor lives in it: listening sockets,
accepted and outgoing connections (non-blocking connect with a time-out), standard input and the
signal wakeup pipe. Connections are framed: bytes in are split on b"\\n" and handed to a `Handler`
one frame at a time; frames out are queued and flushed once per pass, so the frames of one pass
leave in as few `send` calls as possible.

Connections may speak TLS (`ssl`, non-blocking): the handshake runs inside the loop like any
other wait, and a connection counts as open only once it is done.

One pass of the loop: poll until the next timer is due, handle ready descriptors, fire due timers
in (deadline, scheduling order), flush queued output, and close what was asked to close.
Work scheduled during a pass runs on the next one. A connection just accepted is read at once
and enters the poll only at the flush, if it stays open: a short connection (a request, its
reply, the close) is served in the pass that accepts it, and never enters the poll at all.

Time comes only from a clock object (timers.py): `RealClock` in production, `VirtualClock` in
tests, whose `advance(seconds)` fires every due timer in order without waiting.
"""
import _socket
import errno
import os
import selectors
import signal
import socket
import ssl
import struct
import sys
import traceback

from pacing import RepeatedLines
from protocol import MAX_FRAME_BYTES    # the one fact of the wire framing needs
from timers import RealClock, TimerWheel
SOFT_LIMIT_BYTES = 256 * 1024        # queued output above this pauses reading from that peer
HARD_LIMIT_BYTES = 4 * 1024 * 1024   # queued output above this closes the peer as a slow consumer
PAUSED_READ_S = 0.25                 # a paused peer is still read, one chunk this often: its
                                     # heartbeat must not wait for our output to drain (a
                                     # session times out 1 s after its client's heartbeat is due)
READ_CHUNK_BYTES = 8 * 1024          # one recv, at most one per peer per pass, so a pass stays
                                     # short (a handler may take more: Handler.read_bytes); and
                                     # what a peer paused for backpressure is read
SEND_CHUNK_BYTES = 256 * 1024        # at most this much queued output is joined for one send
CONNECT_TIMEOUT_S = 5.0
CLOSE_LINGER_S = 5.0                 # a closing peer that does not take its last output is dropped
ACCEPTS_PER_PASS = 256              # so one busy listener cannot starve established connections;
                                     # short requests accepted in one pass share its commit (a
                                     # disk sync: 1-2 ms of this machine's CPU), and with 64 a
                                     # pass it was a third of a short direct message's cost
EMFILE_PAUSE_S = 0.5                 # out of descriptors: stop accepting for this long, no busy loop
CLOSES_HELD_MAX = 16                 # a pass stops accepting once this many closes wait for its
                                     # end, each holding its descriptor (_accept)
FRAME_TIME_S = 10.0                  # a frame begun must end (newline) within this, or the peer is
                                     # closed: a slowloris cannot hold a connection with a byte a second
LISTEN_BACKLOG = 4096                # bursts of short connections must not overflow the accept
                                     # queue (the kernel caps it at net.core.somaxconn)
_LINGER_NONE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: a close resets (Connection.reset)
PARTIAL_BYTES_MAX = 64 * 1024 * 1024  # frames begun and not yet ended, held in all: each is at
                                     # most a frame, but 10,000 connections each holding 64 KiB
                                     # (a trial's slowloris, refreshed within the frame time)
                                     # would be 640 MB; past it, the frames of the address
                                     # holding the most are dropped first (_shed_partials)


class Handler:
    """What a connection reports to. One object may serve many connections; all no-ops here."""

    read_bytes = READ_CHUNK_BYTES       # the most one read of a connection takes
    cr_ends_lines = False               # True: a CR alone ends a line too (IRC's clients)

    def on_accepted(self, conn):
        """A listener accepted `conn`."""

    def on_connected(self, conn):
        """An outgoing connect finished; queued output is flushed next."""

    def on_frame(self, conn, line):
        """One frame, as bytes without its b"\\n"."""

    def on_frames(self, conn, lines):
        """Every complete frame one read brought, in order (bytes without their b"\\n"); each
        goes to on_frame until the connection begins to close. A handler on a hot path takes
        them at once instead (server_glue.Accepted): one call a read, not one a frame."""
        for line in lines:
            if conn.closing_reason is not None or conn.closed:
                return
            self.on_frame(conn, line)

    def on_oversize(self, conn):
        """A frame longer than the limit was discarded (its bytes up to the next newline too)."""

    def on_frame_timeout(self, conn):
        """A frame begun frame_time_s ago has not ended; the reactor closes `conn` right after
        (flushing what this queues, an error frame say)."""

    def on_idle(self, conn):
        """`conn` was silent past the limit its owner set (not the reactor's: the glue's quiet
        limits), and is closed right after, flushing what this queues."""

    def frame_time(self, conn, frame_time_s):
        """Seconds a frame begun on `conn` may take to end: the reactor's frame_time_s (None:
        forever), unless the handler knows better of this connection."""
        return frame_time_s

    def on_closed(self, conn, reason):
        """The connection is gone; called exactly once, with why."""


class _Discarding:
    """A connection's `_inbuf` while it drops an oversize frame's bytes up to its newline.
    True, as a frame begun is: the frame timer runs for it too."""

    def __repr__(self):
        return "DISCARDING"


DISCARDING = _Discarding()


class Connection:
    """A framed, non-blocking socket. `data` is free for the owner's own state."""

    # slots: a server holds one per staying user (10,000 idle users: RSS 4.6 -> 3.7 KB each,
    # with the Session slots); and no empty buffers: the input buffer and the output list are
    # None while empty (an idle connection's were 112 of its bytes). The other end is kept as
    # its host alone (one string for every connection from it): the port only ever went into
    # a log line, and a (host, port) tuple with its port number was 88 bytes of each user.
    # Three states share a slot with another (16 slots take a 160-byte block, 19 took 192):
    # `connecting` holds what a dialled connection's connect needs, `_inbuf` says when an
    # oversize frame is being dropped, and the pause for backpressure is read off the mask.
    __slots__ = ("id", "sock", "handler", "host", "data", "connecting", "closed",
                 "closing_reason", "_reactor", "_inbuf", "_out", "_out_bytes", "_dirty",
                 "_mask", "_timer", "_frame_timer")

    def __init__(self, reactor, sock, handler, host, dialled=False):
        # an id, and no map of them: every open connection is in the selector's (a map of
        # our own was 37 bytes of each idle user)
        reactor._ids += 1
        self.id = reactor._ids
        self.sock = sock
        self.handler = handler
        self.host = host                # the other end's host, or None (a socketpair)
        self.data = None
        # not open yet (TCP connect or TLS handshake in progress): False once open; an
        # accepted TLS connection's Listener until its first byte is read, then True for its
        # handshake; a dialled one's (SSLContext or None, server_hostname) until it is open
        self.connecting = (None, None) if dialled else False
        self.closed = False
        self.closing_reason = None
        self._reactor = reactor
        # a frame begun and not ended (bytearray), DISCARDING inside an oversize frame (bytes
        # are dropped up to the next newline), else None
        self._inbuf = None
        self._out = None                # output queued (a list of bytes), else None
        self._out_bytes = 0
        self._dirty = False             # in the reactor's list of connections to write this pass
        self._mask = 0
        self._timer = None              # connect time-out, then close linger
        self._frame_timer = None        # the frame begun must end by then (frame_time_s)

    @property
    def peer(self):
        """(host, port) of the other end, for log lines (the port asked of the socket: None
        once it is closed or before it connects); None if the host is not known."""
        if self.host is None:
            return None
        try:
            port = self.sock.getpeername()[1]
        except (OSError, AttributeError, IndexError, TypeError):
            port = None
        return (self.host, port)

    @property
    def pending(self):
        """Bytes queued but not yet sent."""
        return self._out_bytes

    def send(self, data, ahead=False):
        """Queue bytes (whole frames); they leave at the end of this pass. `ahead`: this pass
        writes the connection ahead of those only queued on, for what someone's latency waits
        on (a delivery) before what only confirms (a reply); within the connection the bytes
        keep the order queued."""
        if self.closed or self.closing_reason is not None:
            return
        # (the queueing itself, here rather than in a call to the reactor: every reply and
        # delivery comes this way)
        if self._out is None:
            self._out = [data]
        else:
            self._out.append(data)
        self._out_bytes += len(data)
        reactor = self._reactor
        if self._out_bytes > reactor.hard_limit:
            reactor._slow_consumer(self)
        elif not self._dirty:
            self._dirty = True
            (reactor._ahead if ahead else reactor._dirty).append(self)

    def close(self, reason="closed"):
        """Flush what is queued, then close; a second call is a no-op."""
        self._reactor._close(self, reason, flush=True)

    def abort(self, reason):
        """Close now, dropping queued output."""
        self._reactor._close(self, reason, flush=False)

    def reset(self, reason):
        """Close now with a reset (RST): queued output, and what the system still holds for a
        peer that does not read, are dropped at once, not kept while the system tries on."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NONE)
        except (OSError, AttributeError):
            pass                # (closed already, or no socket yet: nothing is held)
        self.abort(reason)

    def __repr__(self):
        return f"<Connection {self.id} {self.host}>"


class Listener:
    """A listening socket; accepted connections report to `handler` (which may be set after
    listen(), before the first pass: nothing is accepted until then)."""

    def __init__(self, reactor, sock, handler, tls=None, plaintext_reply=None):
        self.sock = sock
        self.handler = handler
        self.tls = tls
        self.plaintext_reply = plaintext_reply
        self.port = sock.getsockname()[1]
        self.family, self.type = int(sock.family), int(sock.type)   # plain ints: see _accept
        # the listener's TCP_NODELAY passes to what it accepts where the system does so
        # (Linux), and saves each a system call; the first accepted tells (None until then)
        _nodelay(sock)
        self.inherits_nodelay = None
        self._reactor = reactor

    def close(self):
        self._reactor._unregister(self.sock)
        self.sock.close()


class Reactor:
    """The loop. See the module docstring for what one pass does."""

    def __init__(self, clock=None, max_frame_bytes=MAX_FRAME_BYTES, soft_limit=SOFT_LIMIT_BYTES,
                 hard_limit=HARD_LIMIT_BYTES, log=None, frame_time_s=FRAME_TIME_S,
                 partial_limit=PARTIAL_BYTES_MAX):
        self.clock = clock or RealClock()
        self.max_frame_bytes = max_frame_bytes
        self.partial_limit = partial_limit
        self.partial_bytes = 0              # bytes of frames begun, held in all connections
        self._partials = set()              # the connections that hold them
        self.frame_time_s = frame_time_s    # None: a frame may take forever
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        self.log = log or _log_to_stderr
        self._pauses = None             # RepeatedLines for accepts paused, once one is
        self._selector = selectors.DefaultSelector()
        self._wheel = TimerWheel(self.clock.now())
        self._ids = 0
        self._dirty = []                # connections with output queued this pass
        self._ahead = []                # ... and those written first (send's `ahead`)
        self._before_flush = []         # run each pass before any output leaves
        self._to_finish = []            # connections to close at the end of this pass
        self._tls_ends = set()          # TLS connections closing, not aborted: TLS's end first
        self._ending = []               # ... and to close once this pass's output is out
        self._unread = set()            # connections paused for backpressure (_read_paused)
        self._paused_timer = None
        self._always_ready = []         # inputs the selector refuses (regular files): read each pass
        self._running = False
        self._wakeup = None
        self._on_signal = {}            # signal number -> the callback on_signals gave it
        # an error in a callback that every input repeats must not flood the log
        self._errors = RepeatedLines(self, self.log)
        if hasattr(self.clock, "attach"):
            self.clock.attach(self)

    def connections(self):
        """Every connection not yet closed, in no particular order. While open, each is
        registered with the selector (for reading, or writing what it still owes), but for
        one accepted this pass, which waits for the flush (it was read at once), and one
        closing with nothing left to write, at the end of this pass."""
        found = {key.data.id: key.data for key in self._selector.get_map().values()
                 if type(key.data) is Connection}
        for conn in (*self._ahead, *self._dirty, *self._to_finish):
            if not conn.closed:
                found.setdefault(conn.id, conn)
        return list(found.values())

    # -- timers ---------------------------------------------------------------------------

    def call_at(self, when, fn, *args):
        """Run fn(*args) at clock time `when`, never inside the pass that scheduled it.

        Arguments, not a closure: a server keeps a timer or two per idle user, and a
        lambda for each was 170 bytes more.
        """
        return self._wheel.schedule(when, fn, args)

    def call_later(self, delay_s, fn, *args):
        return self._wheel.schedule(self.clock.now() + delay_s, fn, args)

    def call_soon(self, fn, *args):
        return self._wheel.schedule(self.clock.now(), fn, args)

    def next_deadline(self):
        return self._wheel.next_deadline()

    def before_flush(self, fn):
        """Run fn() in every pass after the events and timers, before any output is written.

        The server commits its storage here: everything one pass decided is durable before
        any of that pass's acknowledgements leave (group commit, one sync per pass).
        """
        self._before_flush.append(fn)

    def fire_timers(self):
        """Fire every timer due now; ones they schedule wait for the next pass."""
        for timer in self._wheel.pop_due(self.clock.now()):
            fn, args = timer.fn, timer.args
            if fn is not None:          # cancelled by an earlier callback of this pass
                # a fired timer lets go of its arguments: a connection that holds its own
                # timer would otherwise be a cycle, freed only by the cycle collector
                timer.fn, timer.args = None, ()
                self._guarded(fn, *args)

    def timer_pass(self):
        """A pass with no polling: fire due timers, flush, close (what VirtualClock.advance runs)."""
        self.fire_timers()
        self._flush_dirty()
        self._finish_closes()

    # -- sockets --------------------------------------------------------------------------

    def listen(self, host, port, handler, backlog=LISTEN_BACKLOG, tls=None,
               plaintext_reply=None):
        """Listen on (host, port); port 0 picks a free one (see .port).

        tls: a server-side ssl.SSLContext to speak TLS on every accepted connection.
        plaintext_reply: with tls, the bytes written, unencrypted, to a connection whose first
        byte cannot begin a TLS handshake (a client that forgot TLS), before it is closed.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        listener = Listener(self, sock, handler, tls, plaintext_reply)
        self._selector.register(sock, selectors.EVENT_READ, lambda mask: self._accept(listener))
        return listener

    def connect(self, host, port, handler, timeout_s=CONNECT_TIMEOUT_S, tls=None, server_hostname=None):
        """Start a non-blocking connect; failures end in handler.on_closed with the reason.

        tls: a client-side ssl.SSLContext; the time-out then covers the handshake too, and
        server_hostname (default: host) is the name the certificate must carry.
        """
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            # out of descriptors, say: a failed connect like any other, never an exception
            conn = Connection(self, None, handler, host, dialled=True)
            self._close(conn, _reason_of_error(exc), flush=False)
            return conn
        sock.setblocking(False)
        conn = Connection(self, sock, handler, host, dialled=True)
        if tls is not None:
            conn.connecting = (tls, server_hostname or host)
        try:
            err = sock.connect_ex((host, port))
        except socket.gaierror:         # its errno is a resolver code, not an errno
            self._close(conn, "unknown host", flush=False)
            return conn
        except (OverflowError, TypeError):      # a port or host no socket takes
            self._close(conn, "bad address", flush=False)
            return conn
        except OSError as exc:
            err = exc.errno or errno.EINVAL
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._close(conn, _reason_of(err), flush=False)
            return conn
        conn._timer = self.call_later(timeout_s, self._close, conn, "timed out", False)
        self._set_mask(conn, selectors.EVENT_WRITE)
        return conn

    def watch(self, sock, handler, host=None):
        """Adopt a connected socket (accepted, or one end of a socketpair) as a Connection;
        `host` is the other end's, if known."""
        sock.setblocking(False)
        conn = Connection(self, sock, handler, host)
        self._set_mask(conn, selectors.EVENT_READ)
        return conn

    def watch_input(self, fileobj, on_data, on_end):
        """Read raw chunks of a terminal, pipe or regular file; on_end(reason) once at the end."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        source = _Input(fd, on_data, on_end)
        self._read_on(source)
        return source

    def pause_input(self, source):
        """Read no more of `source` until resume_input: its reader has enough to do (a file
        piped into the client, read at once, had held a million lines in memory)."""
        if source.paused or source.ended:
            return
        source.paused = True
        if source in self._always_ready:
            self._always_ready.remove(source)
        else:
            self._unregister(source.fd)

    def resume_input(self, source):
        if source.paused and not source.ended:
            source.paused = False
            self._read_on(source)

    def _read_on(self, source):
        try:
            self._selector.register(source.fd, selectors.EVENT_READ,
                                    lambda mask: self._read_input(source))
        except (PermissionError, ValueError, OSError):
            # epoll refuses regular files (EPERM): they are always readable, so read one chunk a pass
            self._always_ready.append(source)

    def on_signals(self, fn, signals=(signal.SIGINT, signal.SIGTERM)):
        """Call fn(signum) from the loop, between passes, when one of `signals` arrives."""
        # a later call replaces the callback of the signals it names (the client's screen
        # adds SIGWINCH to the glue's SIGINT and SIGTERM); the wakeup pipe carries every
        # signal that has a Python handler (SIGUSR1 for a profiler, say): only these are ours
        self._on_signal.update(dict.fromkeys(signals, fn))
        if self._wakeup is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._wakeup = (reader, writer)
            signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            self._selector.register(reader, selectors.EVENT_READ,
                                    lambda mask: self._read_wakeup())
        for signum in signals:
            signal.signal(signum, _note_signal)

    def wake(self):
        """Make a blocked poll return (safe to call from a signal handler)."""
        if self._wakeup is not None:
            try:
                self._wakeup[1].send(b"\0")
            except OSError:
                pass

    # -- the loop -------------------------------------------------------------------------

    def run(self):
        """Run passes until stop()."""
        self._running = True
        while self._running:
            self.run_once()

    def stop(self):
        """End run() after the current pass."""
        self._running = False
        self.wake()

    def fileno(self):
        """The selector's descriptor: readable whenever a pass has sockets to handle, so that
        another event loop (Tk's, in gui_tk.py) can wait on it instead of polling."""
        return self._selector.fileno()

    def wait_s(self):
        """How long the next pass may wait: 0 with work queued, None with nothing scheduled."""
        return self._poll_timeout(None)

    def run_once(self, timeout_s=None):
        """One pass: poll, handle ready descriptors, fire due timers, flush, close."""
        timeout = self._poll_timeout(timeout_s)
        events = self._selector.select(timeout)
        if not events and timeout:
            # A wait that ends with nothing may have been stopped (Ctrl-Z, SIGSTOP) past its
            # end: Python retries an interrupted select() only while time is left (PEP 475),
            # so what arrived meanwhile is looked for once more before the timers fire (a
            # trial's server, stopped 2 s over its users' heartbeats, timed them all out)
            events = self._selector.select(0)
        for key, mask in events:
            data = key.data
            if type(data) is Connection:
                try:                            # (_guarded, inline: every read comes this way)
                    if mask == selectors.EVENT_READ and not data.connecting and not data.closed:
                        self._read(data)        # (_on_event's usual case, inline)
                    else:
                        self._on_event(data, mask)
                except Exception as exc:
                    self.report(exc)
            else:
                self._guarded(data, mask)       # a listener, an input, the wakeup pipe
        if self._always_ready:
            for source in list(self._always_ready):
                self._read_input(source)
        self.fire_timers()
        self._flush_dirty()
        if self._ending:
            ending, self._ending = self._ending, []
            for conn in ending:         # (their answers, the pass's output, are written)
                self._close(conn, "eof", flush=True)
        if self._to_finish:
            self._finish_closes()

    def _poll_timeout(self, timeout_s):
        if self._always_ready or self._dirty or self._ahead or self._to_finish:
            return 0
        deadline = self._wheel.next_deadline()
        timeout = None if deadline is None else self.clock.poll_timeout(deadline)
        if timeout_s is not None:
            timeout = timeout_s if timeout is None else min(timeout, timeout_s)
        return timeout

    def close_all(self, reason="shutdown"):
        """Close every connection, flushing what the kernel takes now; the rest is dropped."""
        for conn in self.connections():
            conn.close(reason)
        self._flush_dirty()
        self._finish_closes()

    # -- internals ------------------------------------------------------------------------

    def _guarded(self, fn, *args, conn=None):
        """Run a callback; an exception is logged and ends only the connection involved."""
        try:
            fn(*args)
        except Exception as exc:
            self.report(exc, conn)

    def report(self, exc, conn=None):
        """A callback raised `exc`: logged (once per place, in a burst), and `conn` ends."""
        where = traceback.extract_tb(exc.__traceback__)[-1]
        key = (type(exc).__name__, where.filename, where.lineno)
        self._errors.say(key, "error in callback: " + traceback.format_exc().rstrip(),
                         f"error in callback: {key[0]} at {where.filename}:{where.lineno}")
        if conn is not None:
            self._close(conn, "internal error", flush=False)

    def _accept(self, listener):
        for _ in range(ACCEPTS_PER_PASS):
            if len(self._to_finish) >= CLOSES_HELD_MAX:
                # the rest next pass, once these are closed: at a cap, each accept refused or
                # shed holds a descriptor to the pass's end, and at `ulimit -n 256` a trial's
                # 3,000 reconnecting idle connections ran the server out of them in each pass,
                # accepts paused, and everyone's connections waited seconds in the queue
                return
            try:
                # socket.accept() without its wrapper, which turns the listener's family and
                # type into enums for each connection: 1.6 us of the 4 an accept took
                fd, peer = listener.sock._accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                # out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), or a listener broken
                # under us (EINVAL once something shut it down): to accept again at once, each
                # pass, would spin the loop at a full core
                self._pause_listener(listener, exc)
                return
            if listener.tls is None:
                # the C socket alone: socket.socket's Python layer (an __init__, and a close
                # through two more Python calls) gives a plain connection nothing it uses
                sock = _socket.socket(listener.family, listener.type, 0, fd)
            else:
                sock = socket.socket(listener.family, listener.type, 0, fd)     # (to wrap)
            inherits = listener.inherits_nodelay
            if inherits is None:
                inherits = listener.inherits_nodelay = _has_nodelay(sock)
            if not inherits:
                _nodelay(sock)
            # one string for every connection from a host, not one each (58 bytes a user)
            sock.setblocking(False)
            conn = Connection(self, sock, listener.handler, sys.intern(peer[0]))
            if listener.tls is not None:
                # wrapped at its first byte, once that says it is a handshake (_sniff_tls)
                conn.connecting = listener
                self._set_mask(conn, selectors.EVENT_READ)
            else:
                # Read at once (below), before the socket enters epoll: a short connection's
                # request is usually here by now, and one answered and closed within this pass
                # never enters it (no register and unregister: two epoll_ctl calls and 11
                # Python calls saved). The flush registers what stays open, for what it waits
                # for; until then the connection waits in the dirty list, where connections()
                # finds it.
                conn._dirty = True              # (_mark_dirty, inline)
                self._dirty.append(conn)
            try:                                # (_guarded, inline)
                listener.handler.on_accepted(conn)
            except Exception as exc:
                self.report(exc, conn)
            if conn.connecting or conn.closing_reason is not None:
                continue
            try:                                # (_guarded, inline, as in run_once)
                self._read(conn)
            except Exception as exc:
                self.report(exc, conn)

    def _pause_listener(self, listener, exc):
        why = exc.strerror or os.strerror(exc.errno)
        # once a minute per cause, then a count: a trial's bursts at a low descriptor limit
        # wrote a line every pause, two a second
        if self._pauses is None:
            self._pauses = RepeatedLines(self, self.log)
        self._pauses.say(("cannot accept", why), f"cannot accept ({why}); pausing accepts for "
                         f"{EMFILE_PAUSE_S} s", f"accepts paused ({why})")
        self._unregister(listener.sock)

        def resume():
            if listener.sock.fileno() >= 0:
                self._selector.register(listener.sock, selectors.EVENT_READ,
                                        lambda mask: self._accept(listener))
        self.call_later(EMFILE_PAUSE_S, resume)

    def _on_event(self, conn, mask):
        if conn.closed:
            return
        if conn.connecting:
            self._finish_connect(conn)
            return
        if mask & selectors.EVENT_WRITE:
            self._mark_dirty(conn)      # written at the end of the pass, after before_flush
        if mask & selectors.EVENT_READ and not conn.closed:
            self._read(conn)

    def _finish_connect(self, conn):
        """Move a connection that is not open yet along: TCP connect, then TLS handshake."""
        if type(conn.connecting) is Listener and not self._sniff_tls(conn):
            return
        if not isinstance(conn.sock, ssl.SSLSocket):
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._close(conn, _reason_of(err), flush=False)
                return
            _nodelay(conn.sock)
            context, hostname = conn.connecting       # (a dialled connection's)
            if context is not None:
                try:
                    conn.sock = context.wrap_socket(conn.sock, server_hostname=hostname,
                                                    do_handshake_on_connect=False)
                except OSError as exc:
                    # (reset as it was wrapped: wrap_socket asks the socket for its peer, a
                    # trial's cutting proxy made that a traceback on standard error)
                    self._close(conn, _reason_of_error(exc), flush=False)
                    return
        if isinstance(conn.sock, ssl.SSLSocket):
            try:
                conn.sock.do_handshake()
            except ssl.SSLWantReadError:
                self._set_mask(conn, selectors.EVENT_READ)
                return
            except ssl.SSLWantWriteError:
                self._set_mask(conn, selectors.EVENT_WRITE)
                return
            except OSError as exc:
                self._close(conn, _reason_of_error(exc), flush=False)
                return
        self._opened(conn)

    def _sniff_tls(self, conn):
        """An accepted TLS connection's first byte, peeked: a handshake's record (22) wraps
        it for the handshake (-> True). Anything else is a client that does not speak TLS, told
        so in plain text where the listener has words for it, and closed: OpenSSL would reset
        it, and a client that forgot TLS read nothing (a trial's `nc` and client.py alike)."""
        listener = conn.connecting
        try:
            first = conn.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._close(conn, _reason_of(exc.errno), flush=False)
            return False
        if first == b"\x16":
            # out of the selector while its socket changes: a wrap that fails closes the
            # descriptor itself (reset meanwhile, with bytes unread), and its stale key made
            # every connection accepted on that number fail, on every port (a reviewer's)
            self._set_mask(conn, 0)
            try:
                conn.sock = listener.tls.wrap_socket(conn.sock, server_side=True,
                                                     do_handshake_on_connect=False)
            except (OSError, ValueError) as exc:
                self._close(conn, _reason_of_error(exc), flush=False)
                return False
            conn.connecting = True      # open once the handshake is done
            return True
        if first:
            try:
                # what it sent is read first: a socket closed with bytes unread resets the
                # connection, and the client's system may drop the words with it
                conn.sock.recv(READ_CHUNK_BYTES)
                if listener.plaintext_reply:
                    conn.sock.send(listener.plaintext_reply)    # (a line: the buffer takes it)
            except OSError:
                pass
        self._close(conn, "tls: not a TLS handshake (plain text at the TLS port)" if first
                    else "eof", flush=False)
        return False

    def _opened(self, conn):
        dialled = type(conn.connecting) is tuple    # (True: an accepted TLS handshake)
        conn.connecting = False
        if dialled:
            conn._timer.cancel()
            conn._timer = None
            if conn.closing_reason is None:     # closed while connecting: only its last output is owed
                self._guarded(conn.handler.on_connected, conn, conn=conn)
        if conn.closing_reason is not None and conn._out:
            self._linger(conn)
        self._mark_dirty(conn)
        self._update_mask(conn)

    def _read(self, conn, size=None):
        try:
            data = conn.sock.recv(size or conn.handler.read_bytes)
            # TLS may hold decrypted bytes the selector cannot see: take them now
            while isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
                data += conn.sock.recv(conn.sock.pending())
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError as exc:
            self._close(conn, _reason_of_error(exc), flush=False)
            return
        if not data:
            if type(conn._inbuf) is bytearray and conn.closing_reason is None:
                # a last frame the peer ended with its end instead of a newline (`printf
                # '{...}' | nc`): it counts, and its answer may still reach a half-closed
                # peer. The connection closes once the pass's output is out: a handler may
                # answer at the pass's end (the server's replies wait for its commit)
                self._split_frames(conn, b"\n")
                if conn.closing_reason is None:
                    self._ending.append(conn)
                return
            self._close(conn, "eof", flush=False)
            return
        if conn.closing_reason is None:
            if conn.handler.cr_ends_lines:
                # (a CR split from its LF across two reads makes an empty line: a reader of
                # such lines skips empty ones)
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            self._split_frames(conn, data)

    def _split_frames(self, conn, data):
        """Hand every complete frame in the buffer to the handler; discard oversize ones."""
        if (data[-1:] == b"\n" and not conn._inbuf
                and len(data) < self.max_frame_bytes):
            # the usual read: whole frames, none too long, nothing left over (nor before)
            lines = data.split(b"\n")
            lines.pop()                      # the nothing after the last newline
            try:                             # (_guarded, inline: every read comes this way)
                conn.handler.on_frames(conn, lines)
            except Exception as exc:
                self.report(exc, conn)
            if conn._frame_timer is not None:
                self._time_frame(conn, True)
            return
        ended = False                        # a frame (or a discarded one) ended in this chunk
        held = len(conn._inbuf) if type(conn._inbuf) is bytearray else 0   # (partial_bytes)
        if conn._inbuf is DISCARDING:
            newline = data.find(b"\n")
            if newline < 0:
                self._time_frame(conn, ended)
                return
            data = data[newline + 1:]
            conn._inbuf = None
            ended = True
        buf = conn._inbuf
        if buf is None:
            buf = data                       # nothing held over: the chunk itself
        else:
            buf += data
        limit = self.max_frame_bytes - 1     # the newline counts toward the limit
        handler = conn.handler
        start = 0
        lines = []                           # complete frames, handed over together
        while True:
            newline = buf.find(b"\n", start)
            if newline < 0:
                break
            if newline - start > limit:
                if lines:
                    self._guarded(handler.on_frames, conn, lines, conn=conn)
                    lines = []
                if conn.closing_reason is not None or conn.closed:
                    break
                self._guarded(handler.on_oversize, conn, conn=conn)
            else:
                lines.append(bytes(buf[start:newline]))
            start = newline + 1
        if lines and conn.closing_reason is None and not conn.closed:
            self._guarded(handler.on_frames, conn, lines, conn=conn)
        if start == len(buf):
            conn._inbuf = None               # the read ended with a frame: nothing held
        elif len(buf) - start > limit and conn.closing_reason is None and not conn.closed:
            conn._inbuf = DISCARDING
            self._guarded(handler.on_oversize, conn, conn=conn)
        elif buf is data:
            conn._inbuf = bytearray(memoryview(data)[start:])
        else:
            del buf[:start]
            conn._inbuf = buf
        holds = len(conn._inbuf) if type(conn._inbuf) is bytearray else 0
        self.partial_bytes += holds - held
        if holds:
            self._partials.add(conn)
        elif held:
            self._partials.discard(conn)
        if holds > held and self.partial_bytes > self.partial_limit and not conn.closed:
            self._shed_partials()
        if conn._inbuf or conn._frame_timer is not None:
            self._time_frame(conn, ended or start > 0)      # (else nothing to time)

    def _shed_partials(self):
        """Frames begun hold more than they may in all: frames are dropped as too long (their
        connections go on) until they hold an eighth less, so many connections cannot fill
        memory with them. First those of the address that holds the most, biggest first;
        then the next address's. Not the frame that grew: an attacker's thousand frames of
        64 KiB held, the next user's 3 KB message, in two packets as any longer than one is,
        was the one refused (a hostile trial's); nor the biggest frame alone: ten addresses'
        frames of 6.7 KB each made another user's 16 KB one the biggest (a re-attack's). Down
        to an eighth below the bound, so the scan of every holder (a few ms with 10,000) comes
        once per 8 MiB taken in, not once per frame that grows (a review's)."""
        goal = self.partial_limit - self.partial_limit // 8
        by_host = {}
        for conn in self._partials:
            by_host.setdefault(conn.host, []).append(conn)
        held = {host: sum(len(conn._inbuf) for conn in conns) for host, conns in by_host.items()}
        for host in sorted(by_host, key=held.__getitem__, reverse=True):
            for conn in sorted(by_host[host], key=lambda conn: len(conn._inbuf), reverse=True):
                if self.partial_bytes <= goal:
                    return
                self._partials.discard(conn)
                self.partial_bytes -= len(conn._inbuf)
                conn._inbuf = DISCARDING
                self._guarded(conn.handler.on_oversize, conn, conn=conn)

    def _time_frame(self, conn, ended):
        """Keep the deadline of the frame in progress: set when one begins, gone when none is."""
        if conn.closed or conn.closing_reason is not None:
            return
        partial = bool(conn._inbuf)         # (DISCARDING is true, as a frame begun is)
        if not partial or ended:
            if conn._frame_timer is not None:
                conn._frame_timer.cancel()
                conn._frame_timer = None
        if partial and conn._frame_timer is None:
            allowed_s = conn.handler.frame_time(conn, self.frame_time_s)
            if allowed_s is not None:
                conn._frame_timer = self.call_later(allowed_s, self._frame_late, conn)

    def _frame_late(self, conn):
        conn._frame_timer = None
        if conn.closed or conn.closing_reason is not None:
            return
        self._guarded(conn.handler.on_frame_timeout, conn, conn=conn)
        allowed_s = conn.handler.frame_time(conn, self.frame_time_s)
        self._close(conn, f"no complete frame within {allowed_s:g} s", flush=True)

    def send_each(self, conns, data, lines=None):
        """Queue the same bytes (whole frames) on each of `conns`: a broadcast's recipients in
        one call. For a Connection this is its send with `ahead`, inline: a call per recipient was
        most of a broadcast delivery's cost. Anything else in `conns` (an IRC link, which words
        each line its own way) gets its own send of each line: `lines`, when `data` is several
        joined."""
        size = len(data)
        hard_limit = self.hard_limit
        ahead = self._ahead
        for conn in conns:
            if type(conn) is not Connection:
                for line in lines or (data,):
                    conn.send(line)
            elif not conn.closed and conn.closing_reason is None:
                if conn._out is None:
                    conn._out = [data]
                else:
                    conn._out.append(data)
                conn._out_bytes += size
                if conn._out_bytes > hard_limit:
                    self._slow_consumer(conn)
                elif not conn._dirty:
                    conn._dirty = True
                    ahead.append(conn)

    def _slow_consumer(self, conn):
        """`conn` holds more output than hard_limit: closed, and said once per burst."""
        host = conn.host or "?"
        self._errors.say(("slow consumer", host),
                         f"closing connection {conn.id} {conn.peer}: slow consumer "
                         f"({conn._out_bytes} bytes waiting)", f"slow consumers at {host}")
        self._close(conn, "slow consumer", flush=False)

    def _mark_dirty(self, conn):
        if not conn._dirty:
            conn._dirty = True
            self._dirty.append(conn)

    def _flush_dirty(self):
        for hook in self._before_flush:
            try:                                # (_guarded, inline: every pass)
                hook()
            except Exception as exc:
                self.report(exc)
        dirty, self._dirty = self._dirty, []
        if self._ahead:
            dirty[:0], self._ahead = self._ahead, []
        for conn in dirty:
            conn._dirty = False
            if not conn.closed and not conn.connecting:
                self._flush(conn)
                if conn.closing_reason is not None:
                    if not conn._out:
                        # all out (the flush has closed its socket, a short connection's usual
                        # end) or nothing was owed: the end of the pass takes it out of epoll
                        continue
                    if conn._timer is None:
                        self._linger(conn)  # closed this pass, and the peer did not take all
                self._update_mask(conn)

    def _flush(self, conn):
        """One send of what is queued: the frames of a pass go together, but never more than
        SEND_CHUNK_BYTES are joined, so a long backlog costs what is sent, not its whole size."""
        out = conn._out
        if not out:
            return
        if len(out) == 1:                   # (most passes: one reply)
            taken, data = 1, out[0]
        elif conn._out_bytes <= SEND_CHUNK_BYTES:
            # all of it (the queue's bytes are counted as it grows): no walk to find where
            # the chunk ends, which was two len calls per frame, four per direct message
            taken, data = len(out), b"".join(out)
        else:
            taken, size = 0, 0
            while taken < len(out) and size < SEND_CHUNK_BYTES:
                size += len(out[taken])
                taken += 1
            data = out[0] if taken == 1 else b"".join(out[:taken])
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError as exc:
            self._close(conn, _reason_of_error(exc), flush=False)
            return
        # a view, not a copy: what the kernel did not take waits without being copied again
        rest = memoryview(data)[sent:] if sent < len(data) else None
        if rest is None and taken == len(out):
            conn._out = None
        else:
            conn._out = ([rest] if rest is not None else []) + out[taken:]
        conn._out_bytes -= sent
        if not conn._out and conn.closing_reason is not None:
            # its last bytes are out: the socket closes now, so its FIN follows them at once
            # (a short client reads both in one wake-up; closed at the end of the pass, after
            # the pass's other sends, a client often woke up for the reply alone). The rest of
            # the close, on_closed with it, waits for the end of the pass.
            if conn._mask:
                self._set_mask(conn, 0)
            if self._tls_ends:          # (a call only while TLS connections close)
                self._say_tls_end(conn)
            conn.sock.close()
            self._to_finish.append(conn)

    def _update_mask(self, conn):
        if conn.closed:
            return
        if conn.connecting:
            return      # _finish_connect sets what the connect or handshake waits for
        mask = 0
        if conn.closing_reason is None:
            # backpressure: stop reading a peer we cannot write to; resume once half drained.
            # Paused is a registered mask without READ (a new connection's 0 is not paused)
            paused = conn._mask and not conn._mask & selectors.EVENT_READ
            if conn._out_bytes <= (self.soft_limit // 2 if paused else self.soft_limit):
                mask = selectors.EVENT_READ
            elif conn not in self._unread:
                self._unread.add(conn)
                if self._paused_timer is None:
                    self._paused_timer = self.call_later(PAUSED_READ_S, self._read_paused)
        if conn._out:
            mask |= selectors.EVENT_WRITE
        if mask != conn._mask:
            self._set_mask(conn, mask)

    def _read_paused(self):
        """One chunk from each connection still paused for backpressure. A peer that does
        not read its output is still heard, slowly (READ_CHUNK_BYTES each PAUSED_READ_S): a
        client whose deliveries pile up behind a slow link keeps its session with its
        heartbeats, one that sends and never reads reaches the hard limit, and one that has
        gone is noticed by its end of file."""
        self._paused_timer = None
        for conn in list(self._unread):
            if (conn.closed or conn.closing_reason is not None
                    or conn._mask & selectors.EVENT_READ):
                self._unread.discard(conn)      # closed, or reading again
            else:
                self._guarded(self._read, conn, READ_CHUNK_BYTES, conn=conn)
        if self._unread:
            self._paused_timer = self.call_later(PAUSED_READ_S, self._read_paused)

    def _set_mask(self, conn, mask):
        if mask == conn._mask:
            return
        # the key's data is the connection, not a callback made for it: a closure per
        # connection (and one per modify) was 150 bytes for each of 10,000 idle users
        if conn._mask == 0:
            self._selector.register(conn.sock, mask, conn)
        elif mask == 0:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, mask, conn)
        conn._mask = mask

    def _close(self, conn, reason, flush):
        if conn.closed or (conn.closing_reason is not None and flush):
            return
        conn.closing_reason = reason
        if flush and not conn.connecting and isinstance(conn.sock, ssl.SSLSocket):
            self._tls_ends.add(conn)
        # abort: nothing queued may leave, not even this pass. An accepted TLS handshake not
        # done is closed so too: nothing can be written before it ends, and it may never end
        # (a stalled one held its descriptor, and its address's share of the cap, for ever)
        if not flush or (conn.connecting and type(conn.connecting) is not tuple):
            conn._out = None
            conn._out_bytes = 0
        elif conn._out:
            # still connecting: it flushes on connect, bounded by the time-out; to be written
            # this pass: the flush decides (most short connections end so: a linger timer and
            # an epoll change each cost them 4% of their time)
            if not conn.connecting and not conn._dirty:
                self._linger(conn)
                self._update_mask(conn)
            return
        self._to_finish.append(conn)

    def _linger(self, conn):
        """Keep writing a closing connection's last output, but not forever."""
        if conn._timer is not None:
            conn._timer.cancel()
        reason = conn.closing_reason + " (peer did not take its last output)"
        conn._timer = self.call_later(CLOSE_LINGER_S, self._close, conn, reason, False)

    def _say_tls_end(self, conn):
        """Before its socket closes, a TLS connection closed, not aborted, says TLS's own end
        (close_notify), not waiting for the other side's: without it, the client reads the
        end as a cut (irssi, after the server's ERROR line: "SSL read error: unexpected eof";
        WeeChat: "The TLS connection was non-properly terminated")."""
        if conn in self._tls_ends:
            self._tls_ends.discard(conn)
            try:
                conn.sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass    # (said, the other side's not waited for; or closed at its last send)

    def _finish_closes(self):
        while self._to_finish:
            finishing, self._to_finish = self._to_finish, []
            for conn in finishing:
                if conn.closed:
                    continue
                conn.closed = True
                for timer in (conn._timer, conn._frame_timer):
                    if timer is not None:
                        timer.cancel()
                conn._timer = conn._frame_timer = None
                if conn._mask:                  # (most short connections never were in epoll)
                    self._set_mask(conn, 0)
                if type(conn._inbuf) is bytearray:  # (a frame begun: no longer held)
                    self.partial_bytes -= len(conn._inbuf)
                    self._partials.discard(conn)
                    conn._inbuf = None
                # None: the socket could not even be made; -1: closed at its last send (_flush)
                if self._tls_ends:
                    self._say_tls_end(conn)
                if conn.sock is not None and conn.sock.fileno() != -1:
                    conn.sock.close()
                conn._out = None
                conn._out_bytes = 0
                try:                            # (_guarded, inline: every connection ends so)
                    conn.handler.on_closed(conn, conn.closing_reason)
                except Exception as exc:
                    self.report(exc)

    def _unregister(self, fileobj):
        try:
            self._selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def _read_input(self, source):
        if source.paused:
            return          # (paused by a callback earlier in this pass)
        try:
            data = os.read(source.fd, READ_CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._end_input(source, os.strerror(exc.errno))
            return
        if not data:
            self._end_input(source, "eof")
            return
        self._guarded(source.on_data, data)

    def _end_input(self, source, reason):
        source.ended = True
        if source in self._always_ready:
            self._always_ready.remove(source)
        else:
            self._unregister(source.fd)
        self._guarded(source.on_end, reason)

    def _read_wakeup(self):
        try:
            data = self._wakeup[0].recv(512)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum in self._on_signal:
                self._guarded(self._on_signal[signum], signum)


class _Input:
    __slots__ = ("fd", "on_data", "on_end", "paused", "ended")

    def __init__(self, fd, on_data, on_end):
        self.fd, self.on_data, self.on_end = fd, on_data, on_end
        self.paused = self.ended = False


def _note_signal(signum, frame):
    """The real work happens in the loop: set_wakeup_fd already wrote the signal number."""


def _nodelay(sock):
    # small frames must not wait for the 40 ms delayed-ACK timer
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _has_nodelay(sock):
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except OSError:
        return False


_REASONS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.ETIMEDOUT: "timed out",
    errno.EPIPE: "broken pipe",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
}


def _reason_of(err):
    return _REASONS.get(err) or (os.strerror(err) if err else "error")


def _reason_of_error(exc):
    """An exception from a socket call -> a short reason; TLS failures say so, a certificate
    refused in words (expired, another host's, an unknown issuer: all CERTIFICATE_VERIFY_FAILED
    to the reason), and one end that speaks TLS to one that does not with a hint."""
    if isinstance(exc, ssl.SSLCertVerificationError) and getattr(exc, "verify_message", None):
        return f"tls: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = str(getattr(exc, "reason", None) or exc)     # (ssl's own may have none)
        if reason == "WRONG_VERSION_NUMBER":
            return "tls: WRONG_VERSION_NUMBER (the other end does not speak TLS?)"
        if reason == "UNEXPECTED_EOF_WHILE_READING":    # (a plain server closes a handshake)
            return "tls: the other end closed the handshake (does it speak TLS?)"
        return "tls: " + reason
    return _reason_of(exc.errno)


def _log_to_stderr(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
