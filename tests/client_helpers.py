"""Helpers for the client's tests: a core driven by hand, what its actions show and ask, a
stand-in core for the glue, and a fake server for the glue on real sockets."""
import io
import os

import protocol
from protocol import DELIVERY_CLIENT_LABEL, DELIVERY_SERVER_LABEL
from chat_client import ChatClient, Settings
from client import parse_args, run
from client_events import (Accepted, AskConsent, ConsentLapsed, Incoming, LineIn, Probe, Prompt,
                           Replied, RequestFailed, SendRequest, SendTo, Show, ShowFate, ShowOnline,
                           ShowSending, Started, TagLines)
from client_glue import ClientGlue
from line_tags import LineTags
from terminal import screen_lines
from reactor import Handler, Reactor
from timers import VirtualClock
from terminal import Terminal, TerminalScreen

WELCOME = {"type": "welcome", "user": "alice", "token": "t1", "proof": "p1"}
OK = {"type": "ok"}


def ack(conn, seq):
    """The acknowledgement of message `seq` on connection `conn`, once it is drawn."""
    return SendTo(conn, {"type": "ack", "seq": seq}, acknowledges=True)


def err(code, **fields):
    return {"type": "error", "code": code, "message": f"server says {code}", **fields}


def hello(conn, key="p1", user="alice", head=0):
    """The hello the server's delivery connection `conn` sends once our listener challenged it
    with the nonce Run gives it (f"n{conn}"): it proves the session `key` (PROTOCOL.md)."""
    return {"type": "hello", "user": user, "nonce": "s", "head": head,
            "mac": protocol.mac(key, DELIVERY_SERVER_LABEL, user, f"n{conn}", "s", str(head))}


def proof_back(conn, key="p1"):
    """What our listener answers a good hello(conn, key): the session's key proved back."""
    return SendTo(conn, {"type": "ok",
                         "mac": protocol.mac(key, DELIVERY_CLIENT_LABEL, f"n{conn}", "s")})


def proven(conn, key="p1"):
    """Everything our listener does for a good hello(conn, key): the key proved back, and
    every line after it tagged (line_tags.py) with the key and both nonces."""
    return [proof_back(conn, key), TagLines(conn, key, f"n{conn}", "s")]


class Run:
    """A client core, a clock moved by hand, and the requests still waiting for replies.
    Every connection a frame comes in on was accepted first, as by the glue, with the
    challenge nonce f"n{conn}"."""

    def __init__(self, **settings):
        self.client = ChatClient(Settings(listen_port=5000, **{"client_id": "c", **settings}))
        self.now = 0.0
        self.open = {}          # request id -> frame, in the order they were sent
        self.accepted = set()
        self.probes = []        # the ids of the probes still waiting, in the order they went

    def do(self, event):
        if isinstance(event, Accepted):
            self.accepted.add(event.conn)
        elif isinstance(event, Incoming) and event.conn not in self.accepted:
            self.accepted.add(event.conn)
            self.client.handle(Accepted(event.conn, f"n{event.conn}"), self.now)
        actions = self.client.handle(event, self.now)
        for action in actions:
            if isinstance(action, SendRequest):
                assert "id" not in action.frame   # the glue adds it
                self.open[action.request_id] = action.frame
            elif isinstance(action, Probe):         # (a short connection with a bye)
                self.probes.append(action.request_id)
        return actions

    def type(self, text):
        return self.do(LineIn(text))

    def last(self, kind=None):
        """The id of the newest open request (of frame type `kind`)."""
        ids = [rid for rid, f in self.open.items() if kind is None or f["type"] == kind]
        return ids[-1]

    def reply(self, frame, kind=None):
        rid = self.last(kind)
        del self.open[rid]
        return self.do(Replied(rid, frame))

    def fail(self, reason="refused", kind=None):
        rid = self.last(kind)
        del self.open[rid]
        return self.do(RequestFailed(rid, reason))

    def answer_probe(self, frame=None):
        """The newest probe's answer: the server closed it after our bye (or said `frame`)."""
        return self.do(Replied(self.probes.pop(), frame or {}))

    def login(self, welcome=WELCOME):
        self.do(Started())
        self.type("alice")
        self.reply(OK)
        self.type("pw")
        return self.reply(welcome)


def logged_in(**settings):
    run = Run(**settings)
    run.login()
    return run


_SHOWN = (Show, Prompt, AskConsent, ConsentLapsed, ShowOnline, ShowSending, ShowFate)


def printed(actions):
    """The lines a terminal prints for these actions."""
    return [line for a in actions if isinstance(a, _SHOWN) for line in screen_lines(a)]


def requests(actions):
    return [a.frame for a in actions if isinstance(a, SendRequest)]


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


class StandIn:
    """A core that records (event, now) and answers with `script(event)`."""

    def __init__(self, script=lambda event: []):
        self.seen = []
        self.script = script

    def handle(self, event, now):
        self.seen.append((event, now))
        return self.script(event)

    def events(self, kind):
        return [e for e, _ in self.seen if isinstance(e, kind)]


def glue_with(core):
    """A ClientGlue on a virtual clock around `core`, printing to a terminal screen in memory
    -> (glue, clock, what it printed)."""
    clock = VirtualClock()
    reactor = Reactor(clock)
    out = io.BytesIO()
    screen = TerminalScreen(Terminal(0, out, io.BytesIO(), interactive=False), 0)
    glue = ClientGlue(reactor, screen, ("127.0.0.1", 9))
    glue.core = core
    return glue, clock, out


class FakeServer(Handler):
    """Answers requests like the real server would, and delivers one stored message at login."""

    def __init__(self, reactor, answers):
        self.reactor = reactor
        # request type -> reply frame (None: hang up instead), or a list of them, one a request
        # in turn, the last repeated
        self.answers = answers
        self.seen = []

    def on_frame(self, conn, line):
        frame = protocol.decode(line)
        self.seen.append(frame)
        if frame["type"] == "bye":
            conn.close("done")          # the accepting side closes first
            return
        reply = self.answers.get(frame["type"], {"type": "ok"})
        if type(reply) is list:
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if reply is None:
            conn.close("hang up")
            return
        conn.send(protocol.encode({**reply, "id": frame["id"]}))
        if frame["type"] == "login" and reply["type"] == "welcome":
            self.deliver(frame["port"], [{"type": "message", "from": "bob", "text": "stored \x1b!",
                                          "offline": True}, {"type": "bye"}])

    def deliver(self, port, frames):
        """A delivery connection to `port`, as the server makes one: the handshake that proves
        the session both ways (alice's, key p1), then `frames`."""
        self.reactor.connect("127.0.0.1", port, _FakeDelivery(frames))


class _FakeDelivery(Handler):
    def __init__(self, frames):
        self.frames = frames
        self.tags = None        # once the listener has proven the key

    def on_frame(self, conn, line):
        if self.tags is not None:
            line = self.tags.untag(line)
            assert line is not None, "the listener's line did not carry its tag"
        frame = protocol.decode(line)
        if frame["type"] == "challenge":
            self.nonce = frame["nonce"]
            head = 0
            mac = protocol.mac("p1", DELIVERY_SERVER_LABEL, "alice", frame["nonce"], "s",
                               str(head))
            conn.send(protocol.encode({"type": "hello", "user": "alice", "nonce": "s",
                                       "head": head, "mac": mac}))
        elif frame["type"] == "ok":
            self.tags = LineTags("p1", self.nonce, "s", dialer=True)
            for each in self.frames:
                conn.send(self.tags.tag(protocol.encode(each)))


def run_with_input(loop, answers, script, server_port=None, server=None):
    """client.run on `loop` with `script` for its piped input, against a FakeServer (or
    `server`, a handler of its own) -> (exit code, stdout, stderr, the server)."""
    server = server or FakeServer(loop, answers)
    listener = loop.listen("127.0.0.1", 0, server)
    port = server_port or listener.port
    read_fd, write_fd = os.pipe()
    os.write(write_fd, script.encode())
    os.close(write_fd)
    out, err_out = io.BytesIO(), io.BytesIO()
    screen = TerminalScreen(Terminal(read_fd, out, err_out, interactive=False), read_fd)
    try:
        code = run(parse_args(["127.0.0.1", str(port)]), screen, loop)
    finally:
        os.close(read_fd)
        listener.close()
    return code, out.getvalue().decode(), err_out.getvalue().decode(), server
