"""The server's glue with staying clients, on a real reactor under a virtual clock: pushes go
hello-free on the client's own connection, acks there become Acked, a closed connection becomes
Closed, and one that heartbeats is never closed as idle."""
import pathlib
import types

import pytest

import protocol
from reactor import Handler, Reactor, VirtualClock
from replay import counting_secrets
from server import ChatServer, Deliver, ServerGlue
from storage import Store, load_credentials
from test_client_core import pump

CREDENTIALS = pathlib.Path(__file__).resolve().parent.parent / "credential.txt"


class Client(Handler):
    """One staying client's socket: what it received, and whether it is still open."""

    def __init__(self, reactor, port):
        self.frames = []
        self.closed = None
        self.conn = reactor.connect("127.0.0.1", port, self)

    def on_frame(self, conn, line):
        self.frames.append(protocol.decode(line))

    def on_closed(self, conn, reason):
        self.closed = reason

    def send(self, frame):
        self.conn.send(protocol.encode(frame))

    def of(self, kind):
        return [f for f in self.frames if f["type"] == kind]


@pytest.fixture
def world():
    clock = VirtualClock()
    reactor = Reactor(clock)
    store = Store(":memory:")
    core = ChatServer(load_credentials(CREDENTIALS), store, make_secret=counting_secrets())
    lines = []
    glue = ServerGlue(reactor, core, store, lines.append)
    listener = reactor.listen("127.0.0.1", 0, glue)
    w = types.SimpleNamespace(clock=clock, reactor=reactor, store=store, glue=glue, lines=lines,
                              port=listener.port)
    yield w
    reactor.close_all()
    listener.close()


def logged_in(w, user, password):
    client = Client(w.reactor, w.port)
    client.send({"type": "login", "user": user, "password": password, "stay": True, "id": 1})
    pump(w.reactor, lambda: client.of("welcome"))
    return client, client.of("welcome")[0]["token"]


def test_pushes_go_hello_free_on_the_clients_connection_and_its_acks_count(world):
    alice, _ = logged_in(world, "columbia", "116bway")
    bob, bob_token = logged_in(world, "seas", "summerisover")
    pump(world.reactor, lambda: alice.of("presence"))
    bob.send({"type": "message", "token": bob_token, "to": "columbia", "text": "hi", "id": 2})
    pump(world.reactor, lambda: alice.of("message"))
    assert alice.of("hello") == []
    assert alice.of("message") == [{"type": "message", "from": "seas", "text": "hi", "seq": 1}]
    assert world.store.count_waiting("columbia") == 1
    bob.send({"type": "ack", "seq": 1})                 # nothing was pushed to bob: no effect
    alice.send({"type": "ack", "seq": "1"})             # not a number: no effect
    alice.send({"type": "heartbeat", "token": "nope", "id": 3})
    pump(world.reactor, lambda: any(f.get("id") == 3 for f in alice.frames))
    assert world.store.count_waiting("columbia") == 1
    alice.send({"type": "ack", "seq": 1})
    alice.send({"type": "heartbeat", "token": "nope", "id": 4})
    pump(world.reactor, lambda: any(f.get("id") == 4 for f in alice.frames))
    assert world.store.count_waiting("columbia") == 0


def test_a_closed_staying_connection_detaches_its_session(world):
    alice, _ = logged_in(world, "columbia", "116bway")
    alice.conn.close("gone")
    pump(world.reactor, lambda: any("staying connection closed" in line for line in world.lines))
    assert "columbia's staying connection closed; the session waits for a resume" in world.lines


def test_a_push_for_a_connection_already_gone_is_dropped(world):
    world.glue.apply([Deliver(("127.0.0.1", None), "p", {"type": "presence"}, conn=999)])
    assert world.lines == []


def test_a_staying_connection_that_heartbeats_is_never_idle_and_a_silent_one_is(world):
    alice, token = logged_in(world, "columbia", "116bway")
    silent = Client(world.reactor, world.port)
    pump(world.reactor, lambda: len(world.glue.conns) == 2)
    for beat in range(8):                               # 240 s, a heartbeat every 30 s
        world.clock.advance(30.0)
        alice.send({"type": "heartbeat", "token": token, "id": 10 + beat})
        pump(world.reactor, lambda: any(f.get("id") == 10 + beat for f in alice.frames))
    pump(world.reactor, lambda: silent.closed)
    assert alice.closed is None and silent.closed == "eof"
