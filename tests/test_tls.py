"""TLS inside the reactor: non-blocking handshakes, then frames as on plain TCP."""
import socket
import ssl
import time

import pytest

from certs import make_certificate
from reactor import Handler, Reactor
from timers import RealClock


class Recorder(Handler):
    def __init__(self, reply=None):
        self.reply = reply
        self.events = []

    def on_accepted(self, conn):
        self.events.append("accepted")

    def on_connected(self, conn):
        self.events.append("connected")

    def on_frame(self, conn, line):
        self.events.append(line)
        if self.reply:
            conn.send(self.reply(line))

    def on_closed(self, conn, reason):
        self.events.append(("closed", reason))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


def server_context(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def pump(reactor, done, timeout_s=5.0):
    """Run passes until done() or the time-out; a bounded wait, no sleeps."""
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        reactor.run_once(timeout_s=0.05)
    assert done(), "timed out"


def test_frames_cross_a_tls_connection_both_ways(certificate):
    reactor = Reactor(RealClock())
    server = Recorder(reply=lambda line: line.upper() + b"\n")
    listener = reactor.listen("127.0.0.1", 0, server, tls=server_context(certificate))
    client = Recorder()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    conn = reactor.connect("127.0.0.1", listener.port, client, tls=context)
    conn.send(b"hello\nworld\n")                    # queued until the handshake is done
    pump(reactor, lambda: b"WORLD" in client.events)
    assert client.events == ["connected", b"HELLO", b"WORLD"]
    assert server.events == ["accepted", b"hello", b"world"]
    assert isinstance(conn.sock, ssl.SSLSocket) and conn.sock.version().startswith("TLS")
    big = b"x" * 60000 + b"\n"                      # several TLS records in one frame
    conn.send(big)
    pump(reactor, lambda: len(client.events) == 4)
    assert client.events[-1] == b"X" * 60000
    conn.close("done")
    pump(reactor, lambda: ("closed", "done") in client.events)


def test_an_untrusted_certificate_ends_in_one_close(certificate):
    reactor = Reactor(RealClock())
    listener = reactor.listen("127.0.0.1", 0, Recorder(), tls=server_context(certificate))
    client = Recorder()
    reactor.connect("127.0.0.1", listener.port, client, tls=ssl.create_default_context())
    pump(reactor, lambda: client.events)
    assert len(client.events) == 1
    assert client.events[0][0] == "closed" and client.events[0][1].startswith("tls: ")
    assert "CERTIFICATE_VERIFY_FAILED" in client.events[0][1]


def test_a_plain_client_on_a_tls_port_is_closed_and_the_listener_goes_on(certificate):
    reactor = Reactor(RealClock())
    server = Recorder(reply=lambda line: b"ok\n")
    listener = reactor.listen("127.0.0.1", 0, server, tls=server_context(certificate))
    plain = socket.create_connection(("127.0.0.1", listener.port))
    plain.sendall(b'{"type":"check_user","user":"columbia"}\n')
    pump(reactor, lambda: any(isinstance(e, tuple) for e in server.events))
    closed = [e for e in server.events if isinstance(e, tuple)]
    assert closed[0][1].startswith("tls: ")
    assert not any(isinstance(e, bytes) for e in server.events)    # never taken as a frame
    plain.close()
    client = Recorder()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    conn = reactor.connect("127.0.0.1", listener.port, client, tls=context)
    conn.send(b"again\n")
    pump(reactor, lambda: b"ok" in client.events)


def test_the_certificate_must_name_the_host(certificate):
    reactor = Reactor(RealClock())
    listener = reactor.listen("127.0.0.1", 0, Recorder(), tls=server_context(certificate))
    client = Recorder()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    reactor.connect("127.0.0.1", listener.port, client, tls=context, server_hostname="example.org")
    pump(reactor, lambda: client.events)
    assert client.events[0][0] == "closed" and client.events[0][1].startswith("tls: ")
