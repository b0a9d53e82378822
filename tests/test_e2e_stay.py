"""End to end, staying connected: real server and clients on 127.0.0.1. The staying client
without a listening port talks to the server through a TCP relay in this test, so the test can
cut its connection the way a network does, and then watch it come back without losing or
repeating a message. Every wait is bounded; nothing sleeps."""
import selectors
import socket
import threading

import pytest

from realprocs import WAIT_S, PtyClient, login


class Relay:
    """127.0.0.1:port -> the server: each accepted connection gets its own to the server, and
    sever() closes every pair at once (both ends see the connection end)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._peers = {}                 # socket -> the socket it relays to
        self._severing = threading.Event()
        self._severed = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sever(self):
        """Cut every relayed connection; returns once they are closed."""
        self._severed.clear()
        self._severing.set()
        self._wake_out.send(b"x")
        assert self._severed.wait(WAIT_S), "the relay did not sever"

    def stop(self):
        self._stopping = True
        self._wake_out.send(b"x")
        self._thread.join(WAIT_S)
        for sock in (self.listener, self._wake_in, self._wake_out):
            sock.close()

    def _run(self):
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_in, selectors.EVENT_READ, "wake")
        while not self._stopping:
            for key, _ in self._selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._wake_in.recv(64)
                    if self._severing.is_set():
                        self._severing.clear()
                        for sock in list(self._peers):
                            self._drop(sock)
                        self._severed.set()
                else:
                    self._pass_on(key.fileobj)
        for sock in list(self._peers):
            self._drop(sock)

    def _accept(self):
        client, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=WAIT_S)
        self.accepted += 1
        for sock, other in ((client, upstream), (upstream, client)):
            self._peers[sock] = other
            self._selector.register(sock, selectors.EVENT_READ, "data")

    def _pass_on(self, sock):
        try:
            data = sock.recv(65536)
            if data:
                self._peers[sock].sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock):
        other = self._peers.pop(sock, None)
        if other is None:
            return
        self._peers.pop(other, None)
        for each in (sock, other):
            self._selector.unregister(each)
            each.close()


@pytest.fixture
def relay(server):
    relay = Relay(server.port)
    yield relay
    relay.stop()


def test_a_staying_client_without_a_port_chats_and_resumes_after_a_cut(
        server, clients, relay, tmp_path):
    alice = PtyClient(relay.port, "--stay-connected", "--no-listen")
    try:
        login(alice, "columbia")
        server.wait_log(r"columbia logged in from 127\.0\.0\.1, staying connected")
        bob = clients()
        login(bob, "seas")
        alice.expect("seas has logged in.")              # presence, on alice's own connection
        alice.type("message seas hello from behind a NAT")
        bob.expect("columbia: hello from behind a NAT")
        bob.type("message columbia hi back")
        alice.expect("seas: hi back")

        # consent: alice asks, bob agrees, the address comes back on alice's connection; alice
        # can dial bob, but no one can be given alice's address: she has no port
        alice.type("getaddress seas")
        bob.expect("Do you agree to have a private talk with columbia? Y columbia/N columbia")
        bob.type("Y columbia")
        alice.expect("got address!")
        alice.type("private seas psst")
        alice.expect("This client has no listening port, so it cannot take private messages")
        bob.expect("columbia (private): psst")
        # alice, with no port, is still asked; agreeing gives no address, and both are told why
        bob.type("getaddress columbia")
        alice.expect("Do you agree to have a private talk with seas? Y seas/N seas")
        alice.type("Y seas")
        alice.expect("You agreed, but this client has no listening port, so seas cannot reach it")
        bob.expect("columbia agreed, but their client has no listening port, so it cannot take "
                   "private messages. Use message columbia <text> instead.")

        # a consent question reaches a staying client (this one listens, for peers)
        carol = clients("--stay-connected")
        login(carol, "google")
        bob.type("getaddress google")
        carol.expect("Do you agree to have a private talk with seas? Y seas/N seas")
        carol.type("N seas")
        bob.expect("google refused to give you their address.")

        # the cut: one message races it, three follow while alice is away, and alice types one
        bob.type("message columbia racing the cut")
        relay.sever()
        server.wait_log("columbia's staying connection closed")
        for n in range(1, 4):
            bob.type(f"message columbia while away {n}")
        alice.type("message seas typed while away")
        server.wait_log("columbia resumed the session on connection")
        for n in range(1, 4):
            alice.expect(f"seas: while away {n}")
        bob.expect("columbia: typed while away")
        alice.type("online")                              # a round trip after everything
        alice.expect("google")
        for line in ["seas: racing the cut", "seas: while away 1", "seas: while away 2",
                     "seas: while away 3", "seas: hi back"]:
            assert alice.output.count(line) == 1, alice.output
        assert bob.output.count("columbia: typed while away") == 1
        assert relay.accepted == 2                        # the first connection, and the new one
        alice.press(b"\x03")                              # Ctrl-C: logs out on it, then exits
        assert alice.wait_exit() == 0
        server.wait_log("columbia logged out")
        carol.expect("columbia has logged out.")
    finally:
        alice.kill()
