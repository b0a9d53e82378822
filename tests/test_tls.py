"""TLS inside the reactor: non-blocking handshakes, then frames as on plain TCP."""
import os
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
    # in words: CERTIFICATE_VERIFY_FAILED alone named no cause (a trial's expired, wrong-host
    # and unknown-issuer certificates all said only that)
    assert client.events[0][1] == "tls: self-signed certificate"


class Greeter(Recorder):
    """A plain server that speaks first (as the chat's listening ports do: a challenge)."""

    def on_accepted(self, conn):
        conn.send(b'{"type":"challenge","nonce":"n"}\n')


def test_a_tls_client_on_a_plain_port_is_told_the_other_end_may_not_speak_tls():
    reactor = Reactor(RealClock())
    listener = reactor.listen("127.0.0.1", 0, Greeter())
    client = Recorder()
    reactor.connect("127.0.0.1", listener.port, client, tls=ssl.create_default_context())
    pump(reactor, lambda: client.events)
    assert client.events[-1] == ("closed", "tls: WRONG_VERSION_NUMBER (the other end does not "
                                           "speak TLS?)")


def test_a_plain_client_on_a_tls_port_is_told_so_in_plain_text_and_the_listener_goes_on(
        certificate):
    reactor = Reactor(RealClock())
    server = Recorder(reply=lambda line: b"ok\n")
    listener = reactor.listen("127.0.0.1", 0, server, tls=server_context(certificate),
                              plaintext_reply=b"this port speaks TLS\n")
    plain = socket.create_connection(("127.0.0.1", listener.port))
    plain.sendall(b'{"type":"check_user","user":"columbia"}\n')
    pump(reactor, lambda: any(isinstance(e, tuple) for e in server.events))
    closed = [e for e in server.events if isinstance(e, tuple)]
    assert closed[0][1] == "tls: not a TLS handshake (plain text at the TLS port)"
    assert not any(isinstance(e, bytes) for e in server.events)    # never taken as a frame
    # the words, then the end: OpenSSL alone would have reset it, the client reading nothing
    plain.settimeout(5)
    assert read_to_end(plain) == b"this port speaks TLS\n"
    plain.close()
    client = Recorder()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    conn = reactor.connect("127.0.0.1", listener.port, client, tls=context)
    conn.send(b"again\n")
    pump(reactor, lambda: b"ok" in client.events)


def test_an_accepted_connection_whose_wrap_fails_leaves_no_stale_descriptor_behind():
    """A reviewer's client sent a handshake's first byte and reset: the wrap closed the
    descriptor itself, its key stayed in the selector, and every connection accepted on that
    number after it failed, on every port, until the first one's time was up."""
    errors = []
    reactor = Reactor(RealClock(), log=errors.append)

    class FailingWrap:
        def wrap_socket(self, sock, **options):
            os.close(sock.detach())         # (as ssl does: closed, then raised)
            raise ssl.SSLError(0, "Closed before TLS handshake with data in recv buffer.")
    server = Recorder()
    tls = reactor.listen("127.0.0.1", 0, server, tls=FailingWrap())
    plain = reactor.listen("127.0.0.1", 0, Recorder(reply=lambda line: b"pong\n"))
    doomed = socket.create_connection(("127.0.0.1", tls.port))
    doomed.sendall(b"\x16\x03\x01")
    pump(reactor, lambda: any(isinstance(e, tuple) for e in server.events))
    doomed.close()
    for _ in range(3):                      # (the next accepts take the freed number)
        client = Recorder()
        conn = reactor.connect("127.0.0.1", plain.port, client)
        conn.send(b"ping\n")
        pump(reactor, lambda: b"pong" in client.events)
        conn.close("done")
    assert errors == []


def test_a_connection_reset_as_it_is_wrapped_for_tls_is_closed_without_a_traceback():
    """(wrap_socket asks the socket for its peer: a trial's cutting proxy reset it there, and
    the client wrote "error in callback" with a traceback)"""
    errors = []
    reactor = Reactor(RealClock(), log=errors.append)
    listener = reactor.listen("127.0.0.1", 0, Recorder())

    class Resetting:
        def wrap_socket(self, sock, **options):
            raise ConnectionResetError(104, "Connection reset by peer")
    client = Recorder()
    reactor.connect("127.0.0.1", listener.port, client, tls=Resetting())
    pump(reactor, lambda: client.events)
    assert client.events == [("closed", "reset")] and errors == []


def test_the_certificate_must_name_the_host(certificate):
    reactor = Reactor(RealClock())
    listener = reactor.listen("127.0.0.1", 0, Recorder(), tls=server_context(certificate))
    client = Recorder()
    context = ssl.create_default_context(cafile=str(certificate[0]))
    reactor.connect("127.0.0.1", listener.port, client, tls=context, server_hostname="example.org")
    pump(reactor, lambda: client.events)
    assert client.events[0][0] == "closed" and client.events[0][1].startswith("tls: ")


def read_to_end(sock):
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_a_plain_client_at_a_tls_port_without_words_for_it_is_closed_and_told_nothing(
        certificate):
    reactor = Reactor(RealClock())
    server = Recorder()
    listener = reactor.listen("127.0.0.1", 0, server, tls=server_context(certificate))
    plain = socket.create_connection(("127.0.0.1", listener.port))
    plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
    pump(reactor, lambda: any(isinstance(e, tuple) for e in server.events))
    plain.settimeout(5)
    assert read_to_end(plain) == b""
    plain.close()


class Impatient(Recorder):
    """Closes an accepted connection that has sent no frame after `wait_s`, with a last
    word, as the server's glue does at its frame time."""

    def __init__(self, reactor, wait_s):
        super().__init__()
        self.reactor, self.wait_s = reactor, wait_s

    def on_accepted(self, conn):
        super().on_accepted(conn)

        def lapse():
            if not self.events[-1:] or self.events[-1] == "accepted":
                conn.send(b'{"type":"error","code":"too_slow"}\n')
                conn.close("no complete frame")
        self.reactor.call_later(self.wait_s, lapse)


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
                         ids=["nothing", "half a ClientHello"])
def test_a_tls_handshake_that_stalls_is_closed_when_its_time_is_up(certificate, sent):
    # its last word cannot go before the handshake, which may never end: it goes unsaid
    reactor = Reactor(RealClock())
    server = Impatient(reactor, 0.2)
    listener = reactor.listen("127.0.0.1", 0, server, tls=server_context(certificate))
    stalled = socket.create_connection(("127.0.0.1", listener.port))
    stalled.sendall(sent)
    try:
        pump(reactor, lambda: ("closed", "no complete frame") in server.events)
        stalled.settimeout(5.0)
        assert stalled.recv(100) == b""                 # closed: nothing in clear, no TLS
    finally:
        stalled.close()
        listener.close()
