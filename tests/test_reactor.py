"""The reactor with real descriptors: writes, backpressure, input, connects, closes, signals."""
import _socket
import errno
import os
import select
import selectors
import signal
import socket
import struct

import pytest

import pacing
import reactor as reactor_module
from reactor import (ACCEPTS_PER_PASS, CLOSE_LINGER_S, CLOSES_HELD_MAX, EMFILE_PAUSE_S,
                     FRAME_TIME_S, Handler, Reactor)
from timers import RealClock, VirtualClock
from reactor_helpers import Recorder, drain, feed, pump, read_to_eof

HOST = "127.0.0.1"
SMALL_SNDBUF_BYTES = 4096       # the kernel takes little, so most output waits in the reactor


def free_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def small_sndbuf(conn):
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SNDBUF_BYTES)


class CountingSocket:
    """A socket that counts its send calls; everything else goes to the real one."""

    def __init__(self, sock):
        self._sock = sock
        self.sends = []

    def send(self, data):
        self.sends.append(len(data))
        return self._sock.send(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.fixture
def loop(logged):
    """A reactor on a virtual clock, with every socket a test opens closed afterwards."""
    reactor = Reactor(VirtualClock(), log=logged.append)
    reactor.opened = []
    yield reactor
    for sock in reactor.opened:
        sock.close()
    for conn in reactor.connections():
        conn.sock.close()
    reactor._selector.close()


def client_of(reactor, port):
    sock = socket.create_connection((HOST, port), timeout=5)
    reactor.opened.append(sock)
    return sock


# -- writes ---------------------------------------------------------------------------------

def test_partial_writes_arrive_whole_and_in_order(make_pair):
    reactor, conn, peer, rec = make_pair()
    small_sndbuf(conn)
    peer.setblocking(False)
    frames = [b"%05d " % i + b"w" * (i % 1500) + b"\n" for i in range(600)]
    later = frames[300:]
    for frame in frames[:300]:
        conn.send(frame)
    received = bytearray()
    saw_partial = False

    def read_slowly():
        nonlocal saw_partial, later
        saw_partial = saw_partial or conn.pending > 0
        try:
            received.extend(peer.recv(3000))
        except BlockingIOError:
            pass
        if later and received:          # more output while part of the first is still waiting
            for frame in later:
                conn.send(frame)
            later = []
    everything = b"".join(frames)
    pump(reactor, lambda: len(received) >= len(everything), between=read_slowly)
    assert bytes(received) == everything
    assert saw_partial and conn.pending == 0
    assert conn._mask == selectors.EVENT_READ     # write interest only while output waits


def test_frames_queued_in_one_pass_leave_in_one_send(logged):
    reactor = Reactor(VirtualClock(), log=logged.append)
    ours, peer = socket.socketpair()
    counting = CountingSocket(ours)

    class Echo3(Handler):
        def on_frame(self, conn, line):
            for n in range(3):
                conn.send(line + b" %d\n" % n)
    reactor.watch(counting, Echo3())
    feed(reactor, peer, b"a\nb\n")
    assert len(counting.sends) == 1
    assert peer.recv(1000) == b"a 0\na 1\na 2\nb 0\nb 1\nb 2\n"
    ours.close()
    peer.close()


def test_output_queued_between_passes_is_sent_without_waiting(make_pair):
    reactor, conn, peer, rec = make_pair()
    conn.send(b"one\n")
    conn.send(b"two\n")
    reactor.run_once()                  # no timeout: it must not block with output queued
    assert peer.recv(100) == b"one\ntwo\n"


def test_a_peer_over_the_soft_limit_is_not_read_until_it_drains(make_pair):
    reactor, conn, peer, rec = make_pair(soft_limit=20_000, hard_limit=10_000_000)
    small_sndbuf(conn)
    big = b"r" * 100_000 + b"\n"

    def on_frame(conn, line):
        rec.events.append(("frame", conn, line))
        if line == b"big":
            conn.send(big)
    rec.on_frame = on_frame
    feed(reactor, peer, b"big\n")
    assert conn.pending > 20_000
    for _ in range(3):
        peer.sendall(b"ping\n")
        reactor.run_once(timeout_s=0.01)
    assert rec.frames == [b"big"]       # the pings wait in the kernel
    peer.setblocking(False)
    received = bytearray()
    pump(reactor, lambda: len(rec.frames) == 4, between=lambda: received.extend(drain(peer)))
    assert rec.frames == [b"big", b"ping", b"ping", b"ping"]
    assert received == big


def test_a_paused_peer_is_still_read_a_chunk_every_paused_read_s(make_pair):
    """Its heartbeat must not wait for our output to drain: the session would time out."""
    reactor, conn, peer, rec = make_pair(soft_limit=20_000, hard_limit=10_000_000)
    small_sndbuf(conn)
    conn.send(b"d" * 100_000 + b"\n")               # deliveries the peer does not read
    reactor.run_once(timeout_s=0.01)
    assert not conn._mask & selectors.EVENT_READ      # paused
    peer.sendall(b"heartbeat\n")
    for _ in range(3):
        reactor.run_once(timeout_s=0.01)
    assert rec.frames == []                          # not before its time
    reactor.clock.advance(reactor_module.PAUSED_READ_S)
    reactor.run_once(timeout_s=0.01)
    assert rec.frames == [b"heartbeat"]
    assert not conn._mask & selectors.EVENT_READ      # and still paused
    peer.sendall(b"x" * (3 * reactor_module.READ_CHUNK_BYTES) + b"\n")
    reactor.clock.advance(reactor_module.PAUSED_READ_S)
    reactor.run_once(timeout_s=0.01)
    assert conn._inbuf is not None and len(conn._inbuf) == reactor_module.READ_CHUNK_BYTES
    peer.close()                                     # a peer gone is noticed, paused or not
    for _ in range(4):
        reactor.clock.advance(reactor_module.PAUSED_READ_S)
        reactor.run_once(timeout_s=0.01)
    assert conn.closed and rec.of("closed")
    assert reactor.next_deadline() is None           # and the paused reads stop with it


def test_reading_resumes_only_once_half_the_soft_limit_is_drained(make_pair):
    reactor, conn, peer, rec = make_pair(soft_limit=20_000, hard_limit=10_000_000)

    def reading():
        return bool(conn._mask & selectors.EVENT_READ)
    assert reading()
    conn.send(b"s" * 30_000 + b"\n")
    reactor._update_mask(conn)
    assert not reading() and conn._mask & selectors.EVENT_WRITE       # paused
    conn._out_bytes = 15_000                  # below the soft limit, above half of it
    reactor._update_mask(conn)
    assert not reading()
    conn._out_bytes = 10_000
    reactor._update_mask(conn)
    assert reading()
    conn._out_bytes = 15_000                  # and back above half: it reads on
    reactor._update_mask(conn)
    assert reading()


def test_a_peer_past_the_hard_limit_is_closed_as_a_slow_consumer(make_pair, logged):
    reactor, conn, peer, rec = make_pair(soft_limit=10_000, hard_limit=50_000)
    small_sndbuf(conn)
    for _ in range(20):                 # a broadcast the peer never reads
        conn.send(b"m" * 9_999 + b"\n")
        reactor.run_once(timeout_s=0)
        if rec.closed:
            break
    for _ in range(3):
        conn.send(b"more\n")
        reactor.run_once(timeout_s=0)
    assert rec.closed == ["slow consumer"]
    assert sum("slow consumer" in line for line in logged) == 1


class OrderedSocket(CountingSocket):
    """A socket that writes its name down in a log shared with others at each send."""

    def __init__(self, sock, name, log):
        super().__init__(sock)
        self.name, self.log = name, log

    def send(self, data):
        self.log.append(self.name)
        return super().send(data)


def test_sent_ahead_and_send_each_write_their_connections_before_those_only_queued_on():
    """A delivery leaves before the pass's replies (what a latency waits on goes first);
    within one connection the bytes keep the order they were queued in."""
    reactor = Reactor(VirtualClock())
    pairs = [socket.socketpair() for _ in range(4)]
    written = []
    conns = [reactor.watch(OrderedSocket(ours, f"p{n}", written), Recorder(), f"p{n}")
             for n, (ours, _) in enumerate(pairs)]
    conns[0].send(b"reply\n")
    conns[1].send(b"delivery\n", ahead=True)
    conns[3].send(b"reply\n")
    conns[3].send(b"delivery\n", ahead=True)   # already queued: keeps its place and order
    reactor.send_each([conns[2]], b"broadcast\n")
    conns[0].send(b"its own delivery\n", ahead=True)
    reactor.run_once(timeout_s=0)
    assert written == ["p1", "p2", "p0", "p3"]
    assert pairs[0][1].recv(100) == b"reply\nits own delivery\n"
    assert pairs[3][1].recv(100) == b"reply\ndelivery\n"
    assert pairs[1][1].recv(100) == b"delivery\n" and pairs[2][1].recv(100) == b"broadcast\n"
    conns[1].send(b"next\n", ahead=True)
    assert reactor.connections() and reactor._poll_timeout(None) == 0   # due this pass
    reactor.run_once(timeout_s=0)
    assert written[-1] == "p1" and pairs[1][1].recv(100) == b"next\n"
    for ours, peer in pairs:
        ours.close()
        peer.close()


def test_send_each_queues_the_same_bytes_on_each_open_connection_in_one_send(logged):
    reactor = Reactor(VirtualClock(), log=logged.append, hard_limit=50_000)
    pairs = [socket.socketpair() for _ in range(4)]
    recorders = [Recorder() for _ in pairs]
    conns = [reactor.watch(CountingSocket(ours), recorder, f"p{n}")
             for n, ((ours, _), recorder) in enumerate(zip(pairs, recorders))]

    class Link:
        """Anything else with a send (as an IRC link is): given its own send."""
        sent = []

        def send(self, data):
            self.sent.append(data)
    conns[2].close("leaving")                   # closing: nothing more is queued on it
    reactor.send_each([conns[0], conns[1], Link(), conns[2]], b"all\n")
    reactor.send_each(iter([conns[0], Link()]), b"two\n")
    reactor.send_each([conns[3]], b"x" * 60_000 + b"\n")     # past the hard limit
    reactor.run_once(timeout_s=0)
    assert pairs[0][1].recv(100) == b"all\ntwo\n" and len(conns[0].sock.sends) == 1
    assert pairs[1][1].recv(100) == b"all\n"
    assert Link.sent == [b"all\n", b"two\n"]
    assert pairs[2][1].recv(100) == b""          # closed, without the line
    assert recorders[3].closed == ["slow consumer"] and pairs[3][1].recv(100) == b""
    assert recorders[0].closed == recorders[1].closed == []
    for ours, peer in pairs:
        ours.close()
        peer.close()


# -- standard input -------------------------------------------------------------------------

def test_input_from_a_pipe_arrives_whole_then_one_eof():
    reactor = Reactor(VirtualClock())
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    data = bytes(range(256)) * 1000     # more than a pipe holds
    got, ended = [], []
    reactor.watch_input(read_fd, got.append, ended.append)
    written = 0

    def write_some():
        nonlocal written, write_fd
        if written < len(data):
            try:
                written += os.write(write_fd, data[written:written + 50_000])
            except BlockingIOError:
                pass
        elif write_fd is not None:
            os.close(write_fd)
            write_fd = None
    try:
        pump(reactor, lambda: ended, between=write_some)
        for _ in range(5):
            reactor.run_once(timeout_s=0)
        assert b"".join(got) == data
        assert ended == ["eof"]
    finally:
        os.close(read_fd)
        if write_fd is not None:
            os.close(write_fd)


def test_input_from_a_regular_file_arrives_whole_then_one_eof(tmp_path):
    path = tmp_path / "input.txt"
    data = b"line of typed input\n" * 20_000
    path.write_bytes(data)
    reactor = Reactor(VirtualClock())
    got, ended = [], []
    with open(path, "rb") as typed:
        reactor.watch_input(typed, got.append, ended.append)
        pump(reactor, lambda: ended, timeout_s=None)    # a file never blocks a pass
        for _ in range(5):
            reactor.run_once(timeout_s=0)
    assert b"".join(got) == data
    assert ended == ["eof"]


@pytest.mark.parametrize("kind", ["pipe", "file"])
def test_paused_input_is_not_read_until_resumed_and_then_ends_once(kind, tmp_path):
    reactor = Reactor(VirtualClock())
    got, ended = [], []
    if kind == "pipe":
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"first")
    else:
        (tmp_path / "input.txt").write_bytes(b"first")
        read_fd = os.open(tmp_path / "input.txt", os.O_RDONLY)
    source = reactor.watch_input(read_fd, got.append, ended.append)
    try:
        pump(reactor, lambda: got, timeout_s=0)
        reactor.pause_input(source)
        reactor.pause_input(source)                 # twice is once
        if kind == "pipe":
            os.write(write_fd, b"second")
            os.close(write_fd)
        for _ in range(5):
            reactor.run_once(timeout_s=0)
        assert got == [b"first"] and ended == []
        reactor.resume_input(source)
        reactor.resume_input(source)
        pump(reactor, lambda: ended, timeout_s=0)
        assert b"".join(got) == (b"firstsecond" if kind == "pipe" else b"first")
        assert ended == ["eof"]
        reactor.pause_input(source)                 # an ended input: nothing to pause
        reactor.resume_input(source)
        for _ in range(3):
            reactor.run_once(timeout_s=0)
        assert ended == ["eof"]
    finally:
        os.close(read_fd)


def test_input_that_fails_to_read_ends_with_the_error(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(b"x")
    reactor = Reactor(VirtualClock())
    ended = []
    typed = open(path, "rb")
    reactor.watch_input(typed, lambda data: None, ended.append)
    typed.close()
    reactor.run_once(timeout_s=0)
    assert ended == [os.strerror(errno.EBADF)]


def test_input_that_would_block_waits_and_a_failing_callback_is_logged(monkeypatch):
    logged = []
    reactor = Reactor(VirtualClock(), log=logged.append)
    read_fd, write_fd = os.pipe()
    got, ended = [], []

    def on_data(data):
        got.append(data)
        raise RuntimeError("handler bug")
    reactor.watch_input(read_fd, on_data, ended.append)
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: (_ for _ in ()).throw(BlockingIOError()))
    os.write(write_fd, b"typed")
    reactor.run_once(timeout_s=0)
    assert got == [] and ended == []
    monkeypatch.setattr(os, "read", real_read)
    reactor.run_once(timeout_s=0)
    os.close(write_fd)
    pump(reactor, lambda: ended)
    os.close(read_fd)
    assert got == [b"typed"] and ended == ["eof"]
    assert "handler bug" in logged[0]


# -- outgoing connections -------------------------------------------------------------------

def test_connect_to_a_closed_port_is_refused_exactly_once(loop):
    rec = Recorder()
    conn = loop.connect(HOST, free_port(), rec, timeout_s=1.0)
    pump(loop, lambda: rec.closed)
    loop.clock.advance(10.0)            # the connect time-out must be gone
    for _ in range(5):
        loop.run_once(timeout_s=0)
    assert rec.closed == ["refused"]
    assert rec.of("connected") == [] and conn.closed


def test_connect_to_a_full_backlog_times_out_exactly_once(loop):
    server = socket.socket()
    loop.opened.append(server)
    server.bind((HOST, 0))
    server.listen(0)
    address = server.getsockname()
    for _ in range(32):                 # fill the accept queue until a SYN goes unanswered
        filler = socket.socket()
        loop.opened.append(filler)
        filler.setblocking(False)
        filler.connect_ex(address)
        if not select.select([], [filler], [], 0.2)[1]:
            break
    else:
        pytest.skip("the listener never stopped accepting handshakes")
    rec = Recorder()
    conn = loop.connect(*address, rec, timeout_s=0.5)
    conn.send(b"never sent\n")
    for _ in range(10):
        loop.run_once(timeout_s=0.01)
    assert rec.events == []
    loop.clock.advance(0.4)
    assert rec.events == []
    loop.clock.advance(0.2)
    for _ in range(5):
        loop.run_once(timeout_s=0)
    assert rec.closed == ["timed out"]
    assert rec.of("connected") == []


def test_connect_delivers_what_was_queued_while_connecting(loop):
    server_rec, client_rec = Recorder(), Recorder()
    listener = loop.listen(HOST, 0, server_rec)
    conn = loop.connect(HOST, listener.port, client_rec, timeout_s=1.0)
    conn.send(b"hello\n")
    conn.send(b"again\n")
    pump(loop, lambda: len(server_rec.frames) == 2)
    assert server_rec.frames == [b"hello", b"again"]
    assert client_rec.of("connected") == [None] and not conn.connecting
    loop.clock.advance(5.0)             # the connect time-out was cancelled
    loop.run_once(timeout_s=0)
    assert client_rec.closed == []
    listener.close()


def test_close_while_connecting_sends_the_queued_output_then_closes(loop):
    server_rec, client_rec = Recorder(), Recorder()
    listener = loop.listen(HOST, 0, server_rec)
    conn = loop.connect(HOST, listener.port, client_rec)
    conn.send(b"last words\n")
    conn.close("done")
    pump(loop, lambda: server_rec.closed)
    assert server_rec.frames == [b"last words"] and server_rec.closed == ["eof"]
    assert client_rec.closed == ["done"]
    listener.close()


class Answerer(Recorder):
    """Answers each frame on its connection."""

    def on_frames(self, conn, lines):
        super().on_frames(conn, lines)
        for line in lines:
            conn.send(b"re: " + line + b"\n")


def test_a_last_frame_ended_by_the_peers_end_counts_and_is_answered(loop):
    """(`printf '{...}' | nc` sends no newline, then its end: the frame was dropped unread)"""
    rec = Answerer()
    listener = loop.listen(HOST, 0, rec)
    peer = client_of(loop, listener.port)
    peer.sendall(b"first\nlast words")
    peer.shutdown(socket.SHUT_WR)           # half-closed: it still reads
    pump(loop, lambda: rec.closed)
    assert rec.frames == [b"first", b"last words"] and rec.closed == ["eof"]
    assert read_to_eof(peer) == b"re: first\nre: last words\n"
    listener.close()


def test_close_while_connecting_with_nothing_queued_closes_at_once(loop):
    rec = Recorder()
    listener = loop.listen(HOST, 0, Recorder())
    loop.connect(HOST, listener.port, rec).close("changed my mind")
    loop.run_once(timeout_s=0)
    assert rec.closed == ["changed my mind"] and rec.of("connected") == []
    listener.close()


@pytest.mark.parametrize("server_reads", [True, False])
def test_close_while_connecting_lingers_for_output_the_kernel_cannot_take(loop, server_reads):
    server_rec, client_rec = Recorder(), Recorder()
    listener = loop.listen(HOST, 0, server_rec)
    conn = loop.connect(HOST, listener.port, client_rec)
    small_sndbuf(conn)
    frames = [b"%05d " % i + b"z" * 1000 for i in range(2000)]
    for frame in frames:
        conn.send(frame + b"\n")
    conn.close("done")
    if server_reads:
        pump(loop, lambda: server_rec.closed)
        assert server_rec.frames == frames and client_rec.closed == ["done"]
    else:
        pump(loop, lambda: server_rec.of("accepted"))
        accepted = server_rec.events[0][1]
        loop._set_mask(accepted, 0)         # the server side stops reading
        for _ in range(20):
            loop.run_once(timeout_s=0.01)
        assert client_rec.closed == [] and conn.pending > 0
        loop.clock.advance(CLOSE_LINGER_S)
        assert client_rec.closed == ["done (peer did not take its last output)"]
    listener.close()


def test_on_connected_may_queue_output(loop):
    server_rec = Recorder()

    class Greeter(Recorder):
        def on_connected(self, conn):
            conn.send(b"hello from on_connected\n")
    listener = loop.listen(HOST, 0, server_rec)
    loop.connect(HOST, listener.port, Greeter())
    pump(loop, lambda: server_rec.frames)
    assert server_rec.frames == [b"hello from on_connected"]
    listener.close()


def test_a_failing_on_connected_aborts_and_drops_the_queued_output(loop, logged):
    server_rec = Recorder()

    class Broken(Recorder):
        def on_connected(self, conn):
            raise RuntimeError("bad glue")
    client_rec = Broken()
    listener = loop.listen(HOST, 0, server_rec)
    loop.connect(HOST, listener.port, client_rec).send(b"must not leave\n")
    pump(loop, lambda: server_rec.closed)
    assert client_rec.closed == ["internal error"]
    assert server_rec.frames == [] and server_rec.closed == ["eof"]
    assert "bad glue" in logged[0]
    listener.close()


@pytest.mark.parametrize("failure, reason", [
    (OSError(errno.ENETUNREACH, "unreachable"), "unreachable"),
    (socket.gaierror(-2, "Name or service not known"), "unknown host"),
    (errno.EHOSTUNREACH, "unreachable"),
    (errno.EACCES, os.strerror(errno.EACCES)),
])
def test_a_connect_that_fails_at_once_reports_why(loop, monkeypatch, failure, reason):
    def connect_ex(self, address):
        if isinstance(failure, int):
            return failure
        raise failure
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    rec = Recorder()
    loop.connect("peer.invalid", 4119, rec)
    loop.run_once(timeout_s=0)
    assert rec.closed == [reason]


# -- one way out ----------------------------------------------------------------------------

def end_by_eof(sock):
    sock.close()


def end_by_reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def end_by_handler_error(sock):
    sock.sendall(b"boom\n")


class Server(Recorder):
    """Echoes each frame; raises on b"boom"."""

    def on_frame(self, conn, line):
        super().on_frame(conn, line)
        if line == b"boom":
            raise RuntimeError("handler bug")
        conn.send(line + b"\n")


@pytest.mark.parametrize("end, reason", [
    (end_by_eof, "eof"), (end_by_reset, "reset"), (end_by_handler_error, "internal error")])
def test_each_way_out_closes_once_and_the_loop_serves_on(loop, logged, end, reason):
    rec = Server()
    listener = loop.listen(HOST, 0, rec)
    first = client_of(loop, listener.port)
    first.sendall(b"hi\n")
    pump(loop, lambda: rec.frames == [b"hi"])
    assert first.recv(100) == b"hi\n"
    end(first)
    pump(loop, lambda: rec.closed)
    for _ in range(5):
        loop.run_once(timeout_s=0)
    assert rec.closed == [reason]
    assert (reason == "internal error") == any("handler bug" in line for line in logged)
    second = client_of(loop, listener.port)
    second.sendall(b"still there?\n")
    pump(loop, lambda: b"still there?" in rec.frames)
    assert second.recv(100) == b"still there?\n"
    assert len(rec.of("accepted")) == 2
    listener.close()


def test_one_pass_accepts_a_bounded_number_of_connections(loop):
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    for _ in range(ACCEPTS_PER_PASS + 6):
        client_of(loop, listener.port)
    loop.run_once(timeout_s=1.0)
    assert len(rec.of("accepted")) == ACCEPTS_PER_PASS
    pump(loop, lambda: len(rec.of("accepted")) == ACCEPTS_PER_PASS + 6)
    listener.close()


class Refuser(Recorder):
    """A listener's handler at its cap: every connection it takes is closed at once."""

    def on_accepted(self, conn):
        super().on_accepted(conn)
        conn.abort("at the cap")


def test_a_pass_stops_accepting_while_closes_hold_descriptors_to_its_end(loop):
    """Each refused connection holds its descriptor until the pass ends: at a low descriptor
    limit a trial's reconnecting flood ran the server out of them, and accepts paused."""
    rec = Refuser()
    listener = loop.listen(HOST, 0, rec)
    for _ in range(3 * CLOSES_HELD_MAX):
        client_of(loop, listener.port)
    loop.run_once(timeout_s=1.0)
    assert len(rec.of("accepted")) == CLOSES_HELD_MAX == len(rec.closed)
    pump(loop, lambda: len(rec.closed) == 3 * CLOSES_HELD_MAX)
    assert len(rec.of("accepted")) == 3 * CLOSES_HELD_MAX
    listener.close()


class CountingSelector:
    """The reactor's selector, with its register, modify and unregister calls written down."""

    def __init__(self, selector):
        self._selector = selector
        self.changes = []

    def register(self, fileobj, events, data=None):
        self.changes.append(("register", fileobj))
        return self._selector.register(fileobj, events, data)

    def modify(self, fileobj, events, data=None):
        self.changes.append(("modify", fileobj))
        return self._selector.modify(fileobj, events, data)

    def unregister(self, fileobj):
        self.changes.append(("unregister", fileobj))
        return self._selector.unregister(fileobj)

    def __getattr__(self, name):
        return getattr(self._selector, name)


class AnswerAndClose(Recorder):
    """A short connection's server: each frame is answered, and the connection closed."""

    def on_frame(self, conn, line):
        super().on_frame(conn, line)
        conn.send(b"re: " + line + b"\n")
        conn.close("answered")


def test_a_connection_answered_and_closed_in_its_first_pass_never_enters_the_poll(loop):
    rec = AnswerAndClose()
    listener = loop.listen(HOST, 0, rec)
    counting = loop._selector = CountingSelector(loop._selector)
    client = client_of(loop, listener.port)
    client.sendall(b"hello\n")          # here before the accept, as a short client's request is
    pump(loop, lambda: rec.closed)
    assert rec.frames == [b"hello"] and rec.closed == ["answered"]
    assert read_to_eof(client) == b"re: hello\n"
    assert counting.changes == []       # read at the accept, written and closed at the flush
    listener.close()


def test_an_accepted_connection_with_nothing_to_read_yet_waits_in_the_poll(loop):
    rec = AnswerAndClose()
    listener = loop.listen(HOST, 0, rec)
    counting = loop._selector = CountingSelector(loop._selector)
    client = client_of(loop, listener.port)
    pump(loop, lambda: rec.of("accepted"))
    conn = rec.events[0][1]
    assert counting.changes == [("register", conn.sock)] and conn._mask == selectors.EVENT_READ
    client.sendall(b"later\n")
    pump(loop, lambda: rec.closed)
    assert read_to_eof(client) == b"re: later\n"
    assert counting.changes == [("register", conn.sock), ("unregister", conn.sock)]
    listener.close()


def test_a_frame_begun_before_the_accept_is_timed_from_it(loop):
    rec = AnswerAndClose()
    listener = loop.listen(HOST, 0, rec)
    client = client_of(loop, listener.port)
    client.sendall(b"a frame that does not en")
    pump(loop, lambda: rec.of("accepted"))
    conn = rec.events[0][1]
    assert rec.frames == [] and conn._mask == selectors.EVENT_READ
    loop.clock.advance(FRAME_TIME_S - 0.1)
    loop.run_once(timeout_s=0)
    assert rec.closed == []
    loop.clock.advance(0.2)
    assert rec.closed == [f"no complete frame within {FRAME_TIME_S:g} s"]
    listener.close()


def test_a_connection_that_ends_before_its_accept_is_closed_in_that_pass(loop):
    rec = AnswerAndClose()
    listener = loop.listen(HOST, 0, rec)
    counting = loop._selector = CountingSelector(loop._selector)
    client = client_of(loop, listener.port)
    client.sendall(b"bye now\n")
    client.shutdown(socket.SHUT_WR)
    pump(loop, lambda: rec.closed)
    assert rec.frames == [b"bye now"] and rec.closed == ["answered"]
    assert read_to_eof(client) == b"re: bye now\n" and counting.changes == []
    silent = client_of(loop, listener.port)
    silent.shutdown(socket.SHUT_WR)
    pump(loop, lambda: len(rec.closed) == 2)
    assert rec.closed[1] == "eof" and counting.changes == []
    listener.close()


class Noted:
    """A socket whose sends and (first) close are written down, by name, in one list."""

    def __init__(self, sock, name, notes):
        self._sock, self._name, self._notes = sock, name, notes

    def send(self, data):
        self._notes.append(("send", self._name))
        return self._sock.send(data)

    def close(self):
        if self._sock.fileno() != -1:
            self._notes.append(("close", self._name))
        self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_a_closing_connection_ends_as_soon_as_its_last_output_is_out(loop):
    """Its FIN follows its last bytes, not the pass's other sends: a short client then reads
    the reply and the end in one wake-up. on_closed still comes at the end of the pass."""
    notes = []

    class Noting(AnswerAndClose):
        def on_accepted(self, conn):
            super().on_accepted(conn)
            conn.sock = Noted(conn.sock, len(self.of("accepted")), notes)

        def on_closed(self, conn, reason):
            super().on_closed(conn, reason)
            notes.append(("on_closed", conn.sock._name))
    rec = Noting()
    listener = loop.listen(HOST, 0, rec)
    clients = [client_of(loop, listener.port) for _ in range(2)]
    for client in clients:
        client.sendall(b"hi\n")
    pump(loop, lambda: len(rec.closed) == 2)
    assert notes == [("send", 1), ("close", 1), ("send", 2), ("close", 2),
                     ("on_closed", 1), ("on_closed", 2)]
    assert [read_to_eof(client) for client in clients] == [b"re: hi\n"] * 2
    listener.close()


def test_connections_from_one_host_share_its_address_string(loop):
    """10,000 users behind one address hold one copy of it, not one each."""
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    for _ in range(2):
        client_of(loop, listener.port)
    pump(loop, lambda: len(rec.events) == 2)
    first, second = [conn for _, conn, _ in rec.events]
    assert first.host == HOST and first.host is second.host
    # the port is asked of the socket, for a log line: nothing is kept for it
    assert first.peer[0] == HOST and first.peer[1] != second.peer[1]
    listener.close()


def test_a_failing_on_accepted_closes_only_that_connection(loop, logged):
    class Picky(Recorder):
        def on_accepted(self, conn):
            super().on_accepted(conn)
            if len(self.of("accepted")) == 1:
                raise RuntimeError("first one fails")
    rec = Picky()
    listener = loop.listen(HOST, 0, rec)
    first = client_of(loop, listener.port)
    pump(loop, lambda: rec.closed)
    assert rec.closed == ["internal error"]
    assert first.recv(10) == b""
    second = client_of(loop, listener.port)
    second.sendall(b"ok\n")
    pump(loop, lambda: rec.frames)
    assert rec.frames == [b"ok"] and rec.closed == ["internal error"]
    listener.close()


def test_a_failing_on_oversize_closes_the_connection(make_pair, logged):
    reactor, conn, peer, rec = make_pair(max_frame_bytes=10)
    rec.on_oversize = lambda conn: 1 / 0
    feed(reactor, peer, b"x" * 20 + b"\n")
    assert rec.closed == ["internal error"]


def test_a_failing_on_closed_is_logged(make_pair, logged):
    reactor, conn, peer, rec = make_pair()
    rec.on_closed = lambda conn, reason: 1 / 0
    peer.close()
    reactor.run_once(timeout_s=1.0)
    assert conn.closed and "ZeroDivisionError" in logged[0]


def test_a_send_to_a_peer_that_stopped_reading_is_a_broken_pipe(make_pair):
    reactor, conn, peer, rec = make_pair()
    peer.shutdown(socket.SHUT_RD)
    conn.send(b"nobody listens\n")
    reactor.run_once(timeout_s=0)
    assert rec.closed == ["broken pipe"]


# -- closing --------------------------------------------------------------------------------

def test_close_flushes_queued_output_and_a_second_close_is_a_no_op(make_pair):
    reactor, conn, peer, rec = make_pair()
    conn.send(b"last\n")
    conn.close("bye")
    conn.close("again")
    conn.send(b"too late\n")
    reactor.run_once(timeout_s=0)
    conn.close("after the end")
    reactor.run_once(timeout_s=0)
    assert peer.recv(100) == b"last\n"
    assert peer.recv(100) == b""
    assert rec.closed == ["bye"]


def test_close_waits_for_a_slow_reader_to_take_the_last_output(make_pair):
    reactor, conn, peer, rec = make_pair()
    small_sndbuf(conn)
    peer.setblocking(False)
    last = b"z" * 300_000 + b"\n"
    conn.send(last)
    conn.close("bye")
    received = bytearray()
    pump(reactor, lambda: rec.closed, between=lambda: received.extend(drain(peer)))
    received.extend(drain(peer))
    assert received == last and rec.closed == ["bye"]


def test_close_drops_a_peer_that_never_takes_its_last_output(make_pair):
    reactor, conn, peer, rec = make_pair()
    small_sndbuf(conn)
    conn.send(b"z" * 300_000 + b"\n")
    conn.close("bye")
    reactor.run_once(timeout_s=0)
    reactor.clock.advance(CLOSE_LINGER_S - 0.1)
    assert rec.closed == []
    reactor.clock.advance(0.1)
    assert rec.closed == ["bye (peer did not take its last output)"]


def test_abort_drops_queued_output(make_pair):
    reactor, conn, peer, rec = make_pair()
    conn.send(b"secret\n")
    conn.abort("kicked")
    reactor.run_once(timeout_s=0)
    assert peer.recv(100) == b""
    assert rec.closed == ["kicked"]


def test_abort_of_a_closing_connection_ends_it_now(make_pair):
    reactor, conn, peer, rec = make_pair()
    small_sndbuf(conn)
    conn.send(b"z" * 300_000 + b"\n")
    conn.close("bye")
    reactor.run_once(timeout_s=0)
    conn.abort("shutdown")
    reactor.run_once(timeout_s=0)
    assert rec.closed == ["shutdown"]


def test_abort_after_close_still_reports_the_end_once(make_pair):
    reactor, conn, peer, rec = make_pair()
    conn.close("bye")
    conn.abort("kicked")
    for _ in range(3):
        reactor.run_once(timeout_s=0)
    assert rec.closed == ["kicked"]
    assert repr(conn) == "<Connection 1 pair>"


def test_connections_are_every_one_not_yet_closed(logged):
    reactor = Reactor(VirtualClock(), log=logged.append)
    pairs = [socket.socketpair() for _ in range(3)]
    conns = [reactor.watch(ours, Recorder()) for ours, _ in pairs]
    conns[0].close("bye")                   # nothing to write: closed at the end of the pass
    conns[1].send(b"last\n")
    conns[1].close("bye")                   # closed once its last line is written
    assert sorted(conn.id for conn in reactor.connections()) == [1, 2, 3]
    reactor.run_once(timeout_s=0)
    assert reactor.connections() == [conns[2]]
    assert pairs[1][1].recv(100) == b"last\n"
    reactor.close_all()
    for ours, peer in pairs:
        peer.close()


def test_close_all_flushes_and_closes_every_connection(logged):
    reactor = Reactor(VirtualClock(), log=logged.append)
    rec = Recorder()
    pairs = [socket.socketpair() for _ in range(3)]
    conns = [reactor.watch(ours, rec) for ours, _ in pairs]
    conns[0].send(b"goodbye\n")
    reactor.close_all("shutdown")
    assert rec.closed == ["shutdown"] * 3
    assert pairs[0][1].recv(100) == b"goodbye\n"
    assert reactor.connections() == []
    for ours, peer in pairs:
        peer.close()


# -- signals --------------------------------------------------------------------------------

@pytest.fixture
def restore_signals():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    reactors = []
    yield reactors
    signal.set_wakeup_fd(-1)
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    for reactor in reactors:
        for sock in reactor._wakeup:
            sock.close()


def test_a_signal_reaches_the_loop_and_stop_ends_run(restore_signals):
    reactor = Reactor(RealClock())
    restore_signals.append(reactor)
    seen = []

    def on_signal(signum):
        seen.append(signum)
        reactor.stop()
    reactor.on_signals(on_signal)
    os.kill(os.getpid(), signal.SIGINT)
    reactor.run_once(timeout_s=5.0)
    assert seen == [signal.SIGINT]
    safety_net = reactor.call_later(5.0, reactor.stop)   # so a broken stop cannot hang the test
    os.kill(os.getpid(), signal.SIGTERM)
    reactor.run()
    assert seen == [signal.SIGINT, signal.SIGTERM]
    assert safety_net.active


def test_a_second_on_signals_replaces_the_callback_of_the_signals_it_names(restore_signals):
    reactor = Reactor(VirtualClock())
    restore_signals.append(reactor)
    first, second = [], []
    reactor.on_signals(first.append)
    reactor.on_signals(second.append, signals=(signal.SIGTERM,))
    os.kill(os.getpid(), signal.SIGTERM)
    reactor.run_once(timeout_s=5.0)
    assert (first, second) == ([], [signal.SIGTERM])
    os.kill(os.getpid(), signal.SIGINT)                 # still the first one's
    reactor.run_once(timeout_s=5.0)
    assert (first, second) == ([signal.SIGINT], [signal.SIGTERM])


def test_a_signal_with_another_handler_is_not_the_callbacks(restore_signals):
    """The wakeup pipe carries every signal with a Python handler; a SIGUSR1 meant for a
    profiler must not stop a server listening for SIGINT and SIGTERM."""
    reactor = Reactor(VirtualClock())
    restore_signals.append(reactor)
    seen, other = [], []
    saved = signal.signal(signal.SIGUSR1, lambda signum, frame: other.append(signum))
    try:
        reactor.on_signals(seen.append)
        os.kill(os.getpid(), signal.SIGUSR1)
        reactor.run_once(timeout_s=5.0)
        os.kill(os.getpid(), signal.SIGTERM)
        reactor.run_once(timeout_s=5.0)
    finally:
        signal.signal(signal.SIGUSR1, saved)
    assert (other, seen) == ([signal.SIGUSR1], [signal.SIGTERM])


def test_stop_from_a_timer_ends_run_after_that_pass():
    reactor = Reactor(VirtualClock())
    passes = []
    reactor.call_soon(lambda: passes.append("stopping") or reactor.stop())
    reactor.call_soon(lambda: passes.append("same pass"))
    reactor.run()
    assert passes == ["stopping", "same pass"]


def test_wake_without_signals_and_with_a_full_pipe_does_nothing(restore_signals):
    reactor = Reactor(VirtualClock())
    reactor.wake()
    restore_signals.append(reactor)
    reactor.on_signals(lambda signum: None)
    writer = reactor._wakeup[1]
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SNDBUF_BYTES)
    for _ in range(100_000):
        try:
            writer.send(b"\0" * 1024)
        except BlockingIOError:
            break
    reactor.wake()                      # must not raise
    reactor.run_once(timeout_s=0)


# -- running out of descriptors -------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.EMFILE, errno.EINVAL])
def test_a_listener_out_of_descriptors_pauses_then_resumes(loop, logged, monkeypatch, code):
    """(EINVAL: a listening socket something shut down under us, which a trial's client met,
    and which raised at every pass)"""
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    calls = []

    def out_of_descriptors(self):
        calls.append(self)
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(socket.socket, "_accept", out_of_descriptors)
    client_of(loop, listener.port)
    pump(loop, lambda: calls)
    for _ in range(10):                 # the waiting connection must not make the loop spin
        loop.run_once(timeout_s=0.01)
    assert len(calls) == 1
    assert sum("cannot accept" in line for line in logged) == 1
    monkeypatch.undo()
    loop.clock.advance(EMFILE_PAUSE_S - 0.01)
    loop.run_once(timeout_s=0.01)
    assert rec.of("accepted") == []
    loop.clock.advance(0.01)
    pump(loop, lambda: rec.of("accepted"))
    assert sum("cannot accept" in line for line in logged) == 1
    listener.close()


def test_pauses_of_accepts_are_logged_once_a_minute_then_counted(loop, logged, monkeypatch):
    """A trial's bursts at a low descriptor limit wrote a line each pause, two a second."""
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    monkeypatch.setattr(socket.socket, "_accept",
                        lambda self: (_ for _ in ()).throw(OSError(errno.EMFILE, "too many")))
    client_of(loop, listener.port)
    for _ in range(20):                 # 20 pauses, each ended by the clock
        loop.run_once(timeout_s=0.01)
        loop.clock.advance(EMFILE_PAUSE_S)
    loop.clock.advance(60.0)
    for _ in range(3):
        loop.run_once(timeout_s=0.01)
    assert [line for line in logged if "accept" in line][:2] == [
        f"cannot accept (too many); pausing accepts for {EMFILE_PAUSE_S} s",
        "accepts paused (too many): 19 more like it in the last 60 s"]
    listener.close()


def test_a_listener_closed_while_paused_stays_closed(loop, monkeypatch):
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    monkeypatch.setattr(socket.socket, "_accept",
                        lambda self: (_ for _ in ()).throw(OSError(errno.ENFILE, "full")))
    client_of(loop, listener.port)
    pump(loop, lambda: len(loop._wheel))
    listener.close()
    loop.clock.advance(EMFILE_PAUSE_S)
    loop.run_once(timeout_s=0)
    assert rec.of("accepted") == [] and listener.sock.fileno() == -1


def _nodelay_of(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_accepted_connections_send_small_frames_at_once(loop):
    # TCP_NODELAY on every accepted socket, whether it came from the listener or was set
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    for _ in range(3):
        client_of(loop, listener.port)
    pump(loop, lambda: len(rec.of("accepted")) == 3)
    assert [_nodelay_of(conn.sock) for _, conn, _ in rec.events] == [1, 1, 1]
    assert _nodelay_of(listener.sock)
    listener.close()


def test_a_plain_accepted_connection_is_the_c_socket_alone(loop):
    # socket.socket's Python layer is three Python calls a short connection does not need
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    client = client_of(loop, listener.port)
    pump(loop, lambda: len(rec.of("accepted")) == 1)
    [(_, conn, _)] = rec.events
    assert type(conn.sock) is _socket.socket and not conn.sock.getblocking()
    client.sendall(b"hi\n")
    pump(loop, lambda: rec.of("frame"))
    conn.send(b"back\n")
    conn.close("done")
    pump(loop, lambda: rec.of("closed"))
    assert read_to_eof(client) == b"back\n" and conn.sock.fileno() == -1
    listener.close()


def test_where_accepted_sockets_do_not_inherit_nodelay_each_sets_its_own(loop, monkeypatch):
    set_on = []
    real_nodelay = reactor_module._nodelay
    monkeypatch.setattr(reactor_module, "_has_nodelay", lambda sock: False)
    monkeypatch.setattr(reactor_module, "_nodelay",
                        lambda sock: set_on.append(sock) or real_nodelay(sock))
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    for _ in range(2):
        client_of(loop, listener.port)
    pump(loop, lambda: len(rec.of("accepted")) == 2)
    assert set_on[1:] == [conn.sock for _, conn, _ in rec.events]
    listener.close()


def test_an_aborted_handshake_is_skipped(loop, monkeypatch):
    rec = Recorder()
    listener = loop.listen(HOST, 0, rec)
    real_accept = socket.socket._accept
    failures = [OSError(errno.ECONNABORTED, "aborted")]

    def accept(self):
        if failures:
            raise failures.pop()
        return real_accept(self)
    monkeypatch.setattr(socket.socket, "_accept", accept)
    client_of(loop, listener.port)
    pump(loop, lambda: rec.of("accepted"))
    assert len(rec.of("accepted")) == 1
    listener.close()


def test_an_unexpected_accept_error_is_logged(loop, logged, monkeypatch):
    listener = loop.listen(HOST, 0, Recorder())
    monkeypatch.setattr(socket.socket, "_accept",
                        lambda self: (_ for _ in ()).throw(OSError(errno.EINVAL, "odd")))
    client_of(loop, listener.port)
    pump(loop, lambda: logged)
    assert "odd" in logged[0]
    listener.close()


def test_listen_on_a_taken_port_raises(loop):
    listener = loop.listen(HOST, 0, Recorder())
    with pytest.raises(OSError):
        loop.listen(HOST, listener.port, Recorder())
    listener.close()


def test_reasons_name_the_common_errors():
    assert reactor_module._reason_of(errno.ECONNRESET) == "reset"
    assert reactor_module._reason_of(errno.ENOENT) == os.strerror(errno.ENOENT)
    assert reactor_module._reason_of(0) == "error"


def test_the_default_log_goes_to_stderr(capsys):
    reactor = Reactor(VirtualClock())
    reactor.call_at(0.0, lambda: 1 / 0)
    reactor.clock.advance(0.0)
    assert "error in callback" in capsys.readouterr().err


def test_before_flush_runs_before_any_output_of_the_pass_leaves(make_pair):
    reactor, conn, peer, recorder = make_pair(soft_limit=1 << 23, hard_limit=1 << 24)
    peer.setblocking(False)
    seen_by_peer_at_hook = []
    reactor.before_flush(lambda: seen_by_peer_at_hook.append(drain(peer)))
    conn.send(b"ack\n")
    reactor.run_once(timeout_s=0)
    assert seen_by_peer_at_hook == [b""]            # nothing had left when the hook ran
    assert drain(peer) == b"ack\n"
    # a connection that becomes writable later is also written only after the hook
    big = b"y" * 3_000_000 + b"\n"
    conn.send(big)
    reactor.run_once(timeout_s=0)
    received = bytearray(drain(peer))
    conn.send(b"late\n")
    seen_by_peer_at_hook.clear()
    for _ in range(1000):
        if received.endswith(b"late\n"):
            break
        reactor.run_once(timeout_s=0.01)
        received += drain(peer)
    assert received.endswith(b"y\nlate\n")
    assert all(b"late" not in chunk for chunk in seen_by_peer_at_hook)


def test_a_long_backlog_is_sent_in_bounded_pieces_and_arrives_whole(logged):
    """Each send joins at most SEND_CHUNK_BYTES of the queue (a backlog costs what is sent,
    not its whole size each time), and every byte still arrives in order."""
    reactor = Reactor(VirtualClock(), log=logged.append, soft_limit=1 << 24, hard_limit=1 << 25)
    ours, peer = socket.socketpair()
    counting = CountingSocket(ours)
    conn = reactor.watch(counting, Handler())
    frames = [b"%05d" % n + b"y" * 4000 + b"\n" for n in range(2000)]     # about 8 MB
    for frame in frames:
        conn.send(frame)
    peer.setblocking(False)
    received = bytearray()
    for _ in range(20000):
        if len(received) == sum(map(len, frames)):
            break
        reactor.run_once(timeout_s=0.01)
        received += drain(peer)
    assert bytes(received) == b"".join(frames)
    assert max(counting.sends) <= reactor_module.SEND_CHUNK_BYTES + len(frames[0])
    assert len(counting.sends) > 1 and conn.pending == 0
    ours.close()
    peer.close()


class StingySocket(CountingSocket):
    """A socket whose every send takes at most 7 bytes: each flush leaves a piece behind."""

    def send(self, data):
        self.sends.append(len(data))
        return self._sock.send(bytes(data[:7]))


def test_a_short_queue_is_sent_in_one_join_and_what_a_send_leaves_goes_first(logged):
    """Under SEND_CHUNK_BYTES the whole queue goes to one send (its size is counted as it
    grows); a piece the kernel did not take goes before frames queued after it, in order."""
    reactor = Reactor(VirtualClock(), log=logged.append)
    ours, peer = socket.socketpair()
    stingy = StingySocket(ours)
    conn = reactor.watch(stingy, Handler())
    frames = [b"frame %d\n" % n for n in range(5)]
    for frame in frames[:3]:
        conn.send(frame)
    reactor.run_once(timeout_s=0)
    assert stingy.sends == [sum(map(len, frames[:3]))]      # one send of all three
    for frame in frames[3:]:
        conn.send(frame)
    peer.setblocking(False)
    received = bytearray()
    for _ in range(100):
        reactor.run_once(timeout_s=0.01)
        received += drain(peer)
        if len(received) == sum(map(len, frames)):
            break
    assert bytes(received) == b"".join(frames) and conn.pending == 0
    # each later send offered all that was left: the piece first, then the frames behind it
    assert stingy.sends[1] == sum(map(len, frames)) - 7
    ours.close()
    peer.close()


def test_a_connection_accepted_this_pass_is_among_the_connections(loop):
    """It is read at once and enters epoll at the flush; until then the reactor still counts
    it (close_all, at a shutdown in that pass, must close it too)."""
    seen = []

    class Asking(Recorder):
        def on_accepted(self, conn):
            super().on_accepted(conn)
            seen.append(conn in loop.connections())
    listener = loop.listen(HOST, 0, Asking())
    client_of(loop, listener.port)
    pump(loop, lambda: seen)
    assert seen == [True]
    listener.close()


def test_repeated_lines_forget_each_key_when_its_period_ends():
    """What a count line would say is kept per key only while its period is open: a trickle
    from one address kept the tally busy, and every other address's entry with it (a trial's
    20,000 addresses, 560 bytes each)."""
    loop = Reactor(VirtualClock())
    said = []
    lines = pacing.RepeatedLines(loop, said.append, quiet_s=60.0)
    for n in range(100):
        lines.say(("refused", f"10.0.0.{n}"), f"refused 10.0.0.{n}", f"refused from 10.0.0.{n}")
    lines.say(("refused", "10.0.0.0"), "again", "refused from 10.0.0.0")    # one repeat
    loop.clock.advance(10.0)
    lines.say(("refused", "10.9.9.9"), "trickle", "refused from 10.9.9.9")   # open until 70 s
    loop.clock.advance(50.0)
    loop.run_once(timeout_s=0)          # 60 s: the hundred's periods end, the trickle's not
    assert said[-1] == "refused from 10.0.0.0: 1 more like it in the last 60 s"
    assert list(lines._about) == [("refused", "10.9.9.9")]


def test_repeated_lines_past_their_bound_in_a_period_are_counted_in_one_line():
    """One line per key per minute, but keys were not bounded in number: a flood from many
    addresses wrote a line for each (a trial's note)."""
    loop = Reactor(VirtualClock())
    said = []
    lines = pacing.RepeatedLines(loop, said.append, quiet_s=60.0, max_lines=5)
    for n in range(8):
        lines.say(("refused", f"10.0.0.{n}"), f"refused 10.0.0.{n}", f"refused from 10.0.0.{n}")
    assert said == [f"refused 10.0.0.{n}" for n in range(5)]
    loop.clock.advance(60.0)
    loop.run_once(timeout_s=0)
    assert said[5:] == ["3 more log lines of floods from many sources were not written in the "
                        "last 60 s (past 5 in that time)"]
    lines.say(("refused", "10.0.0.9"), "refused 10.0.0.9", "refused from 10.0.0.9")
    assert said[-1] == "refused 10.0.0.9"        # a new period: said again


def test_state_lines_say_a_held_change_when_flushed_at_a_stop_and_nothing_twice():
    """A store that committed again within the minute of its last recovery, then stopped:
    the log's last word was its failure."""
    loop = Reactor(VirtualClock())
    said = []
    state = pacing.StateLines(loop, said.append, "fine again", quiet_s=60.0)
    state.went_good()                       # (good already: nothing to say)
    state.went_bad("broken")
    state.went_bad("broken worse")          # (bad already: its words kept, nothing said)
    state.went_good()
    state.went_bad("broken")
    state.went_good()                       # within the minute: held
    assert said == ["broken", "fine again", "broken"]
    state.flush()
    assert said[3:] == ["fine again (after 1 change of state since the last line on it)"]
    loop.clock.advance(60.0)
    loop.run_once(timeout_s=0)
    state.flush()
    assert len(said) == 4                   # nothing is said twice


def test_repeated_lines_say_their_counts_at_once_when_flushed_at_a_stop():
    """A wrong password folded in the minute before a SIGTERM never reached the log (an
    operator's trial)."""
    loop = Reactor(VirtualClock())
    said = []
    lines = pacing.RepeatedLines(loop, said.append, quiet_s=60.0, max_lines=1)
    for host in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        lines.say(("refused", host), f"refused {host}", f"refused from {host}")
    lines.flush()
    assert said == ["refused 10.0.0.1", "refused from 10.0.0.1: 1 more like it before the stop",
                    "1 more log lines of floods from many sources were not written before the "
                    "stop (past 1 in that time)"]
    loop.clock.advance(60.0)
    loop.run_once(timeout_s=0)
    assert len(said) == 3                   # nothing is said twice
