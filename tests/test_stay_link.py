"""stay.py's StayLink on a real reactor and a fake server on 127.0.0.1, under a virtual clock:
ids and replies, pushed deliveries, held requests, loss, the no-reply time-out and reconnecting
with backoff. Also the client glue's routing and the command-line options for staying."""
import io
import os
import types

import pytest

import protocol
from client import facing, open_listener, parse_args, run as run_client
from client_events import LinkDown, LinkUp, Pushed, Replied, RequestFailed, SendRequest, SendTo
from client_glue import ClientGlue
from reactor import Handler, Reactor
from timers import VirtualClock
from reactor_helpers import pump
from stay import RECONNECT_FIRST_S, StayLink
from terminal import Terminal, TerminalScreen


class Server(Handler):
    """Accepts staying connections and remembers what each sent."""

    def __init__(self):
        self.conns = []
        self.frames = []

    def on_accepted(self, conn):
        self.conns.append(conn)

    def on_frame(self, conn, line):
        self.frames.append(protocol.decode(line))

    def send(self, *frames, raw=b""):
        for frame in frames:
            self.conns[-1].send(protocol.encode(frame))
        if raw:
            self.conns[-1].send(raw)


class Glue:
    """What StayLink needs of the client glue: a reactor and feed(); on_link_up is a hook."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.events = []
        self.on_link_up = lambda: None

    def feed(self, event):
        self.events.append(event)
        if isinstance(event, LinkUp):
            self.on_link_up()

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def world():
    clock = VirtualClock()
    reactor = Reactor(clock)
    server = Server()
    listener = reactor.listen("127.0.0.1", 0, server)
    glue = Glue(reactor)
    lines = []
    link = StayLink(glue, ("127.0.0.1", listener.port), log=lines.append)
    yield types.SimpleNamespace(clock=clock, reactor=reactor, server=server, glue=glue, link=link,
                                listener=listener, lines=lines)
    reactor.close_all()
    listener.close()


def opened(w):
    w.link.open()
    pump(w.reactor, lambda: w.glue.of(LinkUp) and w.server.conns)


def test_requests_carry_their_id_and_replies_come_back_by_it(world):
    opened(world)
    world.link.request(1, {"type": "check_user", "user": "alice"})
    pump(world.reactor, lambda: world.server.frames)
    assert world.server.frames == [{"type": "check_user", "user": "alice", "id": 1}]
    world.server.send({"type": "presence", "user": "bob", "online": True},
                      {"type": "ok", "id": 1}, {"type": "ok", "id": 77}, {"type": "x", "id": "s"},
                      raw=b"not json\n" + b"x" * 70_000 + b"\n")
    pump(world.reactor, lambda: len(world.glue.of(Pushed)) == 3)
    conn_id = world.link.conn.id
    assert world.glue.of(Replied) == [Replied(1, {"type": "ok", "id": 1})]
    pushed = world.glue.of(Pushed)
    assert pushed[0] == Pushed(conn_id, {"type": "presence", "user": "bob", "online": True})
    assert [p.frame["code"] for p in pushed[1:]] == ["bad_json", "too_long"]
    assert world.lines == ["reply to unknown request 77 ignored",
                           "reply to unknown request 's' ignored"]


@pytest.mark.parametrize("code", ["too_long", "slow_down"])
def test_the_servers_error_for_a_frame_it_could_not_read_answers_the_oldest_request(world, code):
    """(a re-attack's too_long, without the id the server could not read, was taken for a
    delivery, the link for dead after 10 s, and the same frame sent again and again; a long
    frame past its address's budget is answered slow_down unread)"""
    opened(world)
    world.link.request(1, {"type": "message", "to": "bob", "text": "big"})
    world.link.request(2, {"type": "message", "to": "bob", "text": "next"})
    pump(world.reactor, lambda: len(world.server.frames) == 2)
    world.server.send(protocol.error(code), {"type": "ok", "id": 2})
    pump(world.reactor, lambda: len(world.glue.of(Replied)) == 2)
    assert world.glue.of(Replied) == [Replied(1, protocol.error(code)),
                                      Replied(2, {"type": "ok", "id": 2})]
    world.link.request(3, {"type": "online"})
    pump(world.reactor, lambda: len(world.server.frames) == 3)
    world.server.send(raw=b"not json\n")            # one we cannot read: no answer of its
    pump(world.reactor, lambda: world.glue.of(Pushed))
    assert len(world.glue.of(Replied)) == 2 and 3 in world.link.in_flight


def test_a_first_answer_in_no_dialect_of_ours_is_another_program_at_the_port(world):
    opened(world)
    world.link.request(1, {"type": "check_user", "user": "alice"})
    world.server.send(raw=b"HTTP/1.0 400 Bad request\r\n")
    pump(world.reactor, lambda: world.glue.of(LinkDown))
    assert world.glue.of(RequestFailed) == [RequestFailed(1, protocol.NOT_OURS)]
    assert world.glue.of(LinkDown)[0].reason == protocol.NOT_OURS
    assert world.glue.of(Pushed) == []


def test_acks_go_only_on_the_connection_their_message_came_on(world):
    opened(world)
    world.link.send_on(world.link.conn.id + 100, {"type": "ack", "seq": 1})
    world.link.send_on(world.link.conn.id, {"type": "ack", "seq": 2})
    pump(world.reactor, lambda: world.server.frames)
    assert world.server.frames == [{"type": "ack", "seq": 2}]


def test_requests_asked_for_while_connecting_follow_link_ups_own(world):
    world.glue.on_link_up = lambda: world.link.request(1, {"type": "resume", "token": "t"})
    world.link.open()
    world.link.request(2, {"type": "message"})         # before the connection is open
    pump(world.reactor, lambda: len(world.server.frames) == 2)
    assert [f["type"] for f in world.server.frames] == ["resume", "message"]


def test_a_request_with_no_connection_fails_at_once(world):
    world.link.request(5, {"type": "online"})
    assert world.glue.events == [RequestFailed(5, "not connected")]


def test_a_request_while_the_server_refuses_the_link_says_refused(world):
    """(a trial's staying client, its server stopped, said "(not connected)" where the plain
    client says "(refused)")"""
    world.listener.close()                              # nothing listens there now
    world.link.open()
    pump(world.reactor, lambda: world.glue.of(LinkDown))
    assert world.glue.of(LinkDown)[0].reason == "refused"
    world.link.request(7, {"type": "check_user", "user": "alice"})
    assert world.glue.events[-1] == RequestFailed(7, "refused")


def test_a_lost_connection_fails_its_requests_and_is_made_again_with_backoff(world):
    opened(world)
    world.link.request(1, {"type": "online"})
    world.link.request(2, {"type": "heartbeat"})
    pump(world.reactor, lambda: len(world.server.frames) == 2)
    world.server.conns[-1].close("server says so")
    pump(world.reactor, lambda: world.glue.of(RequestFailed))
    assert world.glue.of(RequestFailed) == [
        RequestFailed(1, "the connection closed before a reply"),
        RequestFailed(2, "the connection closed before a reply")]
    # then the core hears the link is down, and when it is tried again
    assert world.glue.events[-1] == LinkDown("the connection closed before a reply",
                                             world.clock.now() + RECONNECT_FIRST_S)
    assert world.lines == ["lost the connection to the server (eof); trying again in 1 s"]
    world.link.request(3, {"type": "online"})          # nothing open: fails at once
    assert world.glue.events[-1] == RequestFailed(3, "not connected")
    world.clock.advance(RECONNECT_FIRST_S)
    pump(world.reactor, lambda: len(world.glue.of(LinkUp)) == 2)
    assert len(world.server.conns) == 2


def test_an_unused_connection_no_session_needs_closes_quietly_and_the_next_request_reopens(
        world):
    # at the login prompt: the server ends the connection after its frame time
    world.link.needed = lambda: False
    opened(world)
    world.server.conns[-1].close("no complete frame within 10 s")
    pump(world.reactor, lambda: world.link.conn is None)
    assert world.glue.of(LinkDown) == [] and world.glue.of(RequestFailed) == []   # no outage
    assert world.link.retry is None                    # nor a retry: nothing waits for it
    assert world.lines == ["the server ended the unused connection (eof); the next request "
                           "opens another"]
    world.link.request(1, {"type": "check_user", "user": "ann"})   # the typed name ...
    pump(world.reactor, lambda: world.server.frames)
    assert world.server.frames == [{"type": "check_user", "user": "ann", "id": 1}]  # ... goes
    assert len(world.server.conns) == 2 and len(world.glue.of(LinkUp)) == 2


def test_a_request_sent_as_the_server_ends_an_unused_connection_goes_again_on_the_next(world):
    """The server said too_slow (no whole frame in its frame time) and closes, reading nothing
    more: a name typed just then went on the closing connection, and came back as an outage
    ("Cannot reach the server"), a trial's under load."""
    world.link.needed = lambda: False
    opened(world)
    world.server.send({"type": "error", "code": "too_slow", "message": "no complete frame"})
    pump(world.reactor, lambda: world.glue.of(Pushed))
    world.link.request(1, {"type": "check_user", "user": "ann"})   # on the closing connection
    world.server.conns[-1].close("no complete frame within 10 s")  # (it reads no more)
    pump(world.reactor, lambda: world.server.frames)
    assert world.server.frames == [{"type": "check_user", "user": "ann", "id": 1}]
    assert len(world.server.conns) == 2                 # it went on the next connection
    assert world.glue.of(LinkDown) == [] and world.glue.of(RequestFailed) == []   # no outage
    world.server.send({"type": "ok", "id": 1})
    pump(world.reactor, lambda: world.glue.of(Replied))
    assert world.glue.of(Replied) == [Replied(1, {"type": "ok", "id": 1})]


def test_a_connection_a_session_needs_or_with_requests_on_it_is_an_outage_when_lost(world):
    opened(world)
    world.server.conns[-1].close("gone")               # logged in (needed): an outage
    pump(world.reactor, lambda: world.glue.of(LinkDown))
    world.link.needed = lambda: False
    world.clock.advance(RECONNECT_FIRST_S)
    pump(world.reactor, lambda: len(world.glue.of(LinkUp)) == 2)
    world.link.request(1, {"type": "check_user", "user": "ann"})
    pump(world.reactor, lambda: world.server.frames)
    world.server.conns[-1].close("gone")               # a request on it: an outage too
    pump(world.reactor, lambda: len(world.glue.of(LinkDown)) == 2)
    assert world.glue.of(RequestFailed) == [
        RequestFailed(1, "the connection closed before a reply")]
    assert world.link.retry is not None


@pytest.mark.parametrize("session, waits", [(False, (1, 2, 4, 8)), (True, (1, 2, 2, 2))])
def test_backoff_doubles_while_the_server_is_away_and_resets_once_it_answers(world, session,
                                                                              waits):
    """Up to 2 s while a session needs the link: tries at 1, 3, 7, 15 and 31 s let a trial's
    20 s outage outlast the server's 31 s time-out."""
    world.link.needed = lambda: session
    port = world.listener.port
    world.listener.close()                             # the server is away
    world.link.open()
    for tries, wait_s in enumerate(waits, 1):
        pump(world.reactor, lambda: world.link.retry is not None)
        assert world.lines[-1] == (f"could not connect to the server (refused); "
                                   f"trying again in {wait_s} s")
        assert world.glue.events[-1] == LinkDown("refused", world.clock.now() + wait_s)
        if tries < len(waits):
            world.clock.advance(wait_s)
    world.listener = world.reactor.listen("127.0.0.1", port, world.server)   # it is back
    world.clock.advance(waits[-1])
    pump(world.reactor, lambda: world.glue.of(LinkUp))
    assert world.link.backoff_s == waits[-1]           # until the server has answered
    world.link.request(1, {"type": "heartbeat"})
    pump(world.reactor, lambda: world.server.frames)
    world.server.send({"type": "ok", "id": 1})
    pump(world.reactor, lambda: world.glue.of(Replied))
    assert world.link.backoff_s == 0.0


def test_a_request_without_a_reply_in_10_s_drops_a_half_open_connection(world):
    opened(world)
    world.link.request(1, {"type": "heartbeat"})
    pump(world.reactor, lambda: world.server.frames)
    world.clock.advance(9.9)
    assert world.glue.of(RequestFailed) == []
    world.clock.advance(0.1)
    pump(world.reactor, lambda: world.glue.of(RequestFailed))
    assert world.glue.of(RequestFailed) == [RequestFailed(1, "no reply")]
    world.clock.advance(RECONNECT_FIRST_S)
    pump(world.reactor, lambda: len(world.glue.of(LinkUp)) == 2)


# -- the client glue and the command line -------------------------------------------------------

def test_the_glue_sends_requests_and_acks_through_the_link_when_staying():
    screen = TerminalScreen(Terminal(0, io.BytesIO(), io.BytesIO(), interactive=False), 0)
    glue = ClientGlue(Reactor(VirtualClock()), screen, ("127.0.0.1", 9))
    seen = []
    glue.stay = types.SimpleNamespace(request=lambda *a: seen.append(("request", *a)),
                                      send_on=lambda *a: seen.append(("send_on", *a)))
    glue._send_request(SendRequest(4, {"type": "online"}))
    glue._send_to(SendTo(12, {"type": "ack", "seq": 1}))
    assert seen == [("request", 4, {"type": "online"}), ("send_on", 12, {"type": "ack", "seq": 1})]


def test_staying_options():
    args = parse_args(["127.0.0.1", "4119", "--stay-connected", "--no-listen"])
    assert args.stay_connected and args.no_listen
    assert not parse_args(["127.0.0.1", "4119"]).stay_connected


def test_no_listen_needs_stay_connected_and_the_window_may_stay(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["127.0.0.1", "4119", "--no-listen"])
    assert exc.value.code == 2
    assert "--" in capsys.readouterr().err
    assert parse_args(["127.0.0.1", "4119", "--stay-connected", "--gui"]).gui


class NoPorts:
    def listen(self, host, port, handler):
        raise OSError(98, "Address already in use")


def test_a_staying_client_without_a_free_port_goes_on_without_one():
    lines = []
    args = types.SimpleNamespace(no_listen=False, stay_connected=True, address="127.0.0.1",
                                 port=4119)
    assert open_listener(args, NoPorts(), types.SimpleNamespace(listening=None), lines.append) is None
    assert lines == ["cannot open a listening port (Address already in use); no one can send "
                     "private messages to this client"]
    with pytest.raises(OSError):        # a short-connection client cannot do without one
        open_listener(types.SimpleNamespace(no_listen=False, stay_connected=False,
                                            address="127.0.0.1", port=4119), NoPorts(),
                      types.SimpleNamespace(listening=None), lines.append)
    assert open_listener(types.SimpleNamespace(no_listen=True), NoPorts(), None, lines.append) is None


def test_the_listening_port_of_a_client_of_a_server_on_this_machine_is_on_loopback_only():
    """(a trial's client of a server on 127.0.0.1 listened on every interface); a server
    elsewhere delivers to whatever address it sees now: every interface"""
    assert facing("127.0.0.1", 4119) == "127.0.0.1"
    assert facing("127.3.4.5", 4119) == "127.0.0.1"     # (loopback's own)
    assert facing("256.0.0.1", 4119) == "0.0.0.0"       # (cannot tell: every interface)
    assert facing("192.0.2.1", 4119) == "0.0.0.0"       # (a documentation address: no reply
                                                        # is sent, only the route asked)


class StayingServer(Handler):
    """Answers every request on the one connection it came on, and pushes a message after
    the login there, as the real server does for a staying client."""

    def __init__(self):
        self.seen = []
        self.accepted = 0

    def on_accepted(self, conn):
        self.accepted += 1

    def on_frame(self, conn, line):
        frame = protocol.decode(line)
        self.seen.append(frame)
        if frame["type"] == "ack":
            return
        if frame["type"] == "bye":          # the probe at the start
            conn.close("bye")
            return
        reply = {"type": "ok", "id": frame["id"]}
        if frame["type"] == "login":
            reply = {"type": "welcome", "user": "alice", "token": "t1", "proof": "p1",
                     "id": frame["id"]}
        elif frame["type"] == "online":
            reply = {"type": "online", "users": ["bob"], "id": frame["id"]}
        conn.send(protocol.encode(reply))
        if frame["type"] == "login":
            conn.send(protocol.encode({"type": "message", "from": "bob", "text": "waited",
                                       "seq": 3, "offline": True}))


def test_the_client_runs_on_one_staying_connection_without_a_port(loop):
    server = StayingServer()
    listener = loop.listen("127.0.0.1", 0, server)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"alice\npw\nonline\n")
    os.close(write_fd)
    out = io.BytesIO()
    screen = TerminalScreen(Terminal(read_fd, out, io.BytesIO(), interactive=False), read_fd)
    args = parse_args(["127.0.0.1", str(listener.port), "--stay-connected", "--no-listen"])
    try:
        assert run_client(args, screen, loop) == 0
    finally:
        os.close(read_fd)
        listener.close()
    assert "bob (while you were away): waited\n" in out.getvalue().decode()
    kinds = [f["type"] for f in server.seen]
    # the typed "online" may go before or after the ack: the welcome lets it go at once
    assert kinds[:3] == ["bye", "check_user", "login"] and kinds[-1] == "logout"
    assert sorted(kinds[3:5]) == ["ack", "online"]
    login = server.seen[2]
    assert login["stay"] is True and "port" not in login
    assert {"type": "ack", "seq": 3} in server.seen
    # one connection for everything, after the probe's that asks whether the port speaks TLS
    assert server.accepted == 2
