"""Helpers for tests that drive a real Reactor: a handler that writes everything down, and a
bounded pump that runs passes until an awaited event happens (never a sleep)."""
import select
import socket
import time

import pytest

from reactor import Handler

PASS_TIMEOUT_S = 0.01       # one poll inside pump(); the loop ends as soon as the event arrives
WATCHDOG_S = 10.0           # a test on real time fails after this long instead of hanging


class Recorder(Handler):
    """A handler that writes down everything, in order, as (what, conn, detail)."""

    def __init__(self):
        self.events = []

    def on_accepted(self, conn):
        self.events.append(("accepted", conn, None))

    def on_connected(self, conn):
        self.events.append(("connected", conn, None))

    def on_frame(self, conn, line):
        self.events.append(("frame", conn, line))

    def on_oversize(self, conn):
        self.events.append(("oversize", conn, None))

    def on_closed(self, conn, reason):
        self.events.append(("closed", conn, reason))

    def of(self, what):
        """The details of every event of one kind."""
        return [detail for kind, _, detail in self.events if kind == what]

    @property
    def frames(self):
        return self.of("frame")

    @property
    def closed(self):
        return self.of("closed")


def pump(reactor, done, passes=5000, within_s=10.0, timeout_s=PASS_TIMEOUT_S, between=None):
    """Run passes until done() is true, bounded by a pass count and a real-time deadline."""
    give_up_at = time.monotonic() + within_s
    for _ in range(passes):
        if done():
            return
        reactor.run_once(timeout_s=timeout_s)
        if between is not None:
            between()
        if time.monotonic() > give_up_at:
            break
    assert done(), "the awaited event did not happen"


def drain(sock):
    """Every byte a non-blocking socket has ready now."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def read_to_eof(sock, timeout_s=5):
    """Everything `sock` receives until the other end closes (a blocking read, bounded)."""
    sock.settimeout(timeout_s)
    received = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return received
        received += data


def feed(reactor, peer, chunk):
    """Send one chunk and let one pass read it (a socketpair delivers it at once)."""
    peer.sendall(chunk)
    reactor.run_once(timeout_s=1.0)


def hung_listener():
    """A port whose SYNs go unanswered (a firewall; here a full accept queue) -> (its socket,
    the sockets that fill it: close them all afterwards). Skips the test where the kernel
    keeps accepting handshakes."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(0)
    fillers = []
    for _ in range(32):                 # fill its accept queue until a SYN goes unanswered
        filler = socket.socket()
        fillers.append(filler)
        filler.setblocking(False)
        filler.connect_ex(hung.getsockname())
        if not select.select([], [filler], [], 0.2)[1]:
            return hung, fillers
    for sock in [hung, *fillers]:
        sock.close()
    pytest.skip("the listener never stopped accepting handshakes")
