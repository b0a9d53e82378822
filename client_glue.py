"""The client's glue: the reactor moves bytes and fires timers, the client core decides.

ClientGlue feeds ChatClient what the reactor sees and carries out its actions: requests on short
connections to the server (or on the staying link, stay.py), what our listening port accepts,
links to peers, timers, and what the user sees, which goes to the screen (terminal.py's
TerminalScreen or gui.py's window). Three kinds of connection, each with its own handler.
Nothing here knows a chat rule.
"""
import secrets
import signal
from collections import deque

from client_events import (REQUEST_TIMEOUT_S, Accepted, Arm, AskConsent, Cancel, CloseConn,
                           ConsentLapsed, EndLink, Exit, Expired, HungUp, Incoming,
                           IncomingClosed, Interrupted, LinkClosed, LinkIn, Log, OpenLink,
                           PauseInput, Probe, Prompt, Replied, RequestFailed, ResumeInput,
                           SendOnLink, SendRequest, SendTo, Show, ShowFate, ShowOnline,
                           ShowSending, Started, Status, TagLines)
from commands import error_code
from line_tags import LineTags
from peer import PEER_CONNECT_S
from pacing import KeyedTimers, RepeatedLines
from protocol import NOT_OURS, decoded, encode, error, foreign, reason_text
from reactor import FRAME_TIME_S, Handler

# An urgent request (a heartbeat) whose connection is not made by then is sent again at once on
# a second one: a lost SYN costs 1 s before the kernel sends another, and a heartbeat due at
# 30 s has only the 1 s before the server's 31 s time-out.
URGENT_CONNECT_S = 0.3
DELIVERY_IDLE_S = 60.0      # an accepted connection silent this long is closed
MAX_INCOMING = 64           # connections our listening port holds at once (the server's one
                            # delivery connection and a few peers need far fewer); past it the
                            # oldest not yet proven is closed, else a peer's oldest link, so
                            # neither a stranger's flood of connections nor a peer's can wedge
                            # the client or keep the server out


class ClientGlue:
    """Feeds reactor events to a ChatClient and carries out its actions."""

    def __init__(self, reactor, screen, server, tls=None, server_name=None):
        self.reactor = reactor
        self.screen = screen            # renders Show, Prompt, ...; logs diagnostics
        self.server = server            # (host, port)
        self.tls = tls                  # an ssl.SSLContext when the server speaks TLS
        self.server_name = server_name  # the name its certificate must carry
        self.core = None                # set once the listening port is known
        self.requests = _Requests(self)
        self.probes = _Probes(self)
        self.listening = _Listening(self)
        self.link_handler = _Links(self)
        self.incoming = {}              # conn id -> accepted Connection
        self.max_incoming = MAX_INCOMING    # ... held at once (less under a low limit: client.py)
        self.links = {}                 # link id -> our Connection to a peer
        self.stay = None                # a stay.StayLink with --stay-connected: it carries requests
        self.timers = KeyedTimers(reactor, lambda key: self.feed(Expired(key)))
        self.repeated = RepeatedLines(reactor, screen.log)   # lines a flood could repeat
        self.exit_code = None
        self.exit_reason = ""       # why a script run failed, for standard error
        self._events = deque()
        self._feeding = False
        self._actions = {
            Show: screen.render, AskConsent: screen.render, ConsentLapsed: screen.render,
            Prompt: screen.render,
            ShowOnline: screen.render, Status: screen.render, ShowSending: screen.render,
            ShowFate: screen.render, Log: self._log,
            SendRequest: self._send_request, Probe: self._probe, SendTo: self._send_to,
            CloseConn: self._close_conn, TagLines: self._tag_lines,
            OpenLink: self._open_link, SendOnLink: self._send_on_link, EndLink: self._end_link,
            Arm: self._arm, Cancel: self._cancel, Exit: self._exit,
            PauseInput: lambda action: screen.pause_input(),
            ResumeInput: lambda action: screen.resume_input(),
        }

    def start(self):
        """The core is up: ask for a username, and open the staying link if there is one."""
        self.feed(Started())
        if self.stay is not None:
            self.stay.open()

    def feed(self, event):
        """Hand one event to the core and carry out its actions, in arrival order."""
        # an action (a refused connect, say) may report back at once: queue, do not recurse
        self._events.append(event)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._events:
                for action in self.core.handle(self._events.popleft(), self.reactor.clock.now()):
                    self._actions[type(action)](action)
        finally:
            self._feeding = False

    def on_signal(self, signum):
        if signum == signal.SIGINT:
            self.screen.read_typed()        # (typed before Ctrl-C: it comes first)
        # SIGTERM follows SIGHUP when a terminal with a stopped client closes: as a second
        # Ctrl-C, it cut the logout short, and the user stayed online until the time-out (a
        # trial's); only Ctrl-C twice means "leave now"
        self.feed(HungUp() if signum in (signal.SIGHUP, signal.SIGTERM) else Interrupted())

    def _log(self, action):
        if action.key is None:
            self.screen.log(action.text)
        else:           # (what, why): the first of a burst, then a count a minute
            self.repeated.say(action.key, action.text, ": ".join(action.key))

    def _send_request(self, action):
        if self.stay is not None:
            self.stay.request(action.request_id, action.frame)
            return
        request = _Request(action.request_id, encode({**action.frame, "id": action.request_id}))
        conn = self._try(request)
        if action.urgent:
            self.reactor.call_later(URGENT_CONNECT_S, self._try_again, conn, request)

    def _try(self, request):
        """One short connection carrying `request`, then bye."""
        conn = self.reactor.connect(*self.server, self.requests, tls=self.tls,
                                    server_hostname=self.server_name)
        conn.data = _Attempt(request, self.reactor.call_later(REQUEST_TIMEOUT_S, conn.abort,
                                                              "no reply"))
        request.attempts += 1
        conn.send(request.line)
        conn.send(encode({"type": "bye"}))
        return conn

    def _try_again(self, conn, request):
        """The first connection of an urgent request is still not made: a second one, whose
        SYN goes now; the first reply of either is the reply."""
        if conn.connecting and not conn.closed and not request.replied:
            self._try(request)

    def _probe(self, action):
        """A short connection that asks nothing: the server reads our bye and closes it."""
        conn = self.reactor.connect(*self.server, self.probes, tls=self.tls,
                                    server_hostname=self.server_name)
        conn.data = _Look(action.request_id, self.reactor.call_later(REQUEST_TIMEOUT_S,
                                                                     conn.abort, "no reply"))
        conn.send(encode({"type": "bye"}))

    def _send_to(self, action):
        if action.acknowledges:
            self.screen.once_drawn(lambda: self._send_now(action))
        else:
            self._send_now(action)

    def _send_now(self, action):
        if action.conn in self.incoming:
            _send_line(self.incoming[action.conn], encode(action.frame))
        elif self.stay is not None:
            self.stay.send_on(action.conn, action.frame)

    def _tag_lines(self, action):
        conn = (self.links if action.link else self.incoming).get(action.conn)
        if conn is not None:
            conn.data.tags = LineTags(action.secret, action.listener_nonce, action.dialer_nonce,
                                      dialer=action.link)

    def untagged(self, conn, line):
        """A line read on an accepted connection or a link -> the line, untagged once its
        handshake has proven both ends; None, the connection aborted and logged, when its tag
        is wrong (changed or added on the way, or the other end is not the one proven)."""
        tags = conn.data.tags
        if tags is None:
            return line
        untagged = tags.untag(line)
        if untagged is None:
            self._cut_off(conn, "a line without the tag that proves who sent it")
        return untagged

    def cut_off_if_tagged(self, conn):
        """A line too long to read on `conn`: once its lines are tagged, one that cannot be
        checked is as one without its tag, and ends it -> True if it did (a re-attack's, added
        on the way, was said as the proven peer's refusal: "longer than a line may be")."""
        if conn.data.tags is None:
            return False
        self._cut_off(conn, "a line too long to check its tag")
        return True

    def _cut_off(self, conn, what):
        where = "{}:{}".format(*conn.peer) if conn.peer else f"connection {conn.id}"
        self._log(Log(f"closed the connection with {where}: {what} (changed on the way?)",
                      ("closed connections: a line without its tag", where)))
        conn.abort("a line without its tag")

    def _close_conn(self, action):
        if action.conn in self.incoming:
            self.incoming[action.conn].close("done")

    def _open_link(self, action):
        conn = self.reactor.connect(action.host, action.port, self.link_handler,
                                    timeout_s=PEER_CONNECT_S)
        conn.data = _Link(action.link)
        self.links[action.link] = conn

    def _send_on_link(self, action):
        if action.link in self.links:
            _send_line(self.links[action.link], encode(action.frame))

    def _end_link(self, action):
        conn = self.links.get(action.link)
        if conn is None:
            return
        if action.at_once:
            conn.abort(action.at_once)
            return
        if conn.data.abort is not None:
            return
        _send_line(conn, encode({"type": "bye"}))
        # the peer's listener closes first; one that does not is dropped after a while
        conn.data.abort = self.reactor.call_later(REQUEST_TIMEOUT_S, conn.abort,
                                                  "no close after bye")

    def _arm(self, action):
        self.timers.arm(action.key, action.at)

    def _cancel(self, action):
        self.timers.cancel(action.key)

    def _exit(self, action):
        self.exit_code = action.code
        self.exit_reason = action.reason
        self.reactor.stop()


def _send_line(conn, line):
    """Send one encoded frame on an accepted connection or a link, tagged once its handshake
    has proven both ends."""
    tags = conn.data.tags
    conn.send(line if tags is None else tags.tag(line))


class _Request:
    """One request on its short connections (one, or two when urgent): its id and line, and
    whether it has its reply."""
    __slots__ = ("request_id", "line", "replied", "attempts")

    def __init__(self, request_id, line):
        self.request_id = request_id
        self.line = line
        self.replied = False
        self.attempts = 0           # connections carrying it and not yet closed


class _Attempt:
    """One short connection carrying a request, and the timer that gives up on it."""
    __slots__ = ("request", "timer")

    def __init__(self, request, timer):
        self.request = request
        self.timer = timer


_OUR_START = b'{"type":"'      # how every frame the server sends begins


def left_if_foreign(conn, frame, line):
    """True, and `conn` aborted as NOT_OURS, when the server's `frame` (as `decoded` gave it
    from `line`) is in no dialect of ours: another program answers at that port, which the
    outage words (a web server's answer to a name was "frame is not valid JSON": a trial's user
    asked what that meant). A frame of ours cut short (the connection ended in it, and the
    reactor hands over what came) is a connection that closed before its reply: a lossy
    trial's was blamed on another program."""
    if not foreign(frame):
        return False
    # (cut anywhere: within its first bytes too, a re-check's `{"typ`)
    cut = line.startswith(_OUR_START) or (line and _OUR_START.startswith(line))
    conn.abort("eof" if cut else NOT_OURS)
    return True


class _Requests(Handler):
    """Short connections to the server, one request and its bye each; the first frame back
    is the reply."""

    def __init__(self, glue):
        self.glue = glue

    def on_frame(self, conn, line):
        frame = decoded(line)
        if not left_if_foreign(conn, frame, line):
            self._replied(conn, frame)

    def on_oversize(self, conn):
        self._replied(conn, error("too_long"))

    def _replied(self, conn, frame):
        request = conn.data.request
        if not request.replied:
            request.replied = True
            self.glue.feed(Replied(request.request_id, frame))

    def on_closed(self, conn, reason):
        attempt, conn.data = conn.data, None
        attempt.timer.cancel()
        request = attempt.request
        request.attempts -= 1
        if not request.replied and not request.attempts:    # the last one to end says so
            self.glue.feed(RequestFailed(request.request_id, reason_text(reason)))


class _Look:
    """A probe's connection: its request id, whether it was made, the timer that gives up,
    and the error it was answered with, if any."""
    __slots__ = ("request_id", "made", "timer", "refusal")

    def __init__(self, request_id, timer):
        self.request_id = request_id
        self.made = False
        self.timer = timer
        self.refusal = None


class _Probes(Handler):
    """Probes (client_events.Probe): the server is there if it takes the connection and then
    closes it, as the protocol has it do after our bye."""

    def __init__(self, glue):
        self.glue = glue

    def on_connected(self, conn):
        conn.data.made = True

    def on_frame(self, conn, line):
        # the chat server says nothing to a bye but an error of its own (too_slow, on a slow
        # link): the IRC port's 421 went unread, and a trial's client said "no reply" for ever
        frame = decoded(line)
        if not left_if_foreign(conn, frame, line) and error_code(frame) == "tls_required":
            conn.data.refusal = frame       # (a TLS port, and we do not speak it: the answer)

    def on_closed(self, conn, reason):
        look, conn.data = conn.data, None
        look.timer.cancel()
        if look.refusal is not None:
            self.glue.feed(Replied(look.request_id, look.refusal))
        elif look.made and reason == "eof":
            self.glue.feed(Replied(look.request_id, {}))
        else:
            self.glue.feed(RequestFailed(look.request_id, reason_text(reason)))


class _Visit:
    """A connection our listening port accepted: the timer that closes it when silent, and
    its tags once proven."""
    __slots__ = ("idle", "tags")

    def __init__(self):
        self.idle = None
        self.tags = None


class _Listening(Handler):
    """Connections to our listening port: the server's deliveries, and peers."""

    def __init__(self, glue):
        self.glue = glue

    def on_accepted(self, conn):
        incoming = self.glue.incoming
        if len(incoming) >= self.glue.max_incoming:
            # room for it: an unproven connection gives way first, then a peer's link (the
            # oldest); the server's deliveries never do (peers held every place once, and the
            # server's connection was refused: a trial's)
            core = self.glue.core
            other = next((other for other in incoming.values() if not core.trusts(other.id)),
                         None) or next((other for other in incoming.values()
                                        if core.peer_link(other.id)), None)
            if other is None:
                conn.abort("too many connections")
                return
            other.abort("too many connections")
            del incoming[other.id]               # room now; its on_closed follows
        incoming[conn.id] = conn
        conn.data = _Visit()
        self._wake_idle(conn, FRAME_TIME_S)     # one that sends nothing is gone soon
        self.glue.feed(Accepted(conn.id, secrets.token_hex(16)))

    def on_frame(self, conn, line):
        self._wake_idle(conn)
        line = self.glue.untagged(conn, line)
        if line is not None:
            self.glue.feed(Incoming(conn.id, decoded(line)))

    def on_oversize(self, conn):
        if not self.glue.cut_off_if_tagged(conn):
            self.glue.feed(Incoming(conn.id, error("too_long")))

    def on_closed(self, conn, reason):
        visit, conn.data = conn.data, None
        if visit is None:
            return      # closed at once: never ours
        visit.idle.cancel()
        self.glue.incoming.pop(conn.id, None)
        self.glue.feed(IncomingClosed(conn.id))

    def _wake_idle(self, conn, limit_s=DELIVERY_IDLE_S):
        visit = conn.data
        if visit.idle is not None:
            visit.idle.cancel()
        visit.idle = self.glue.reactor.call_later(limit_s, conn.close, "idle")


class _Link:
    """Our connection to a peer: its link id, the timer that drops it after our bye, and its
    tags once proven."""
    __slots__ = ("link", "abort", "tags")

    def __init__(self, link):
        self.link = link
        self.abort = None
        self.tags = None


class _Links(Handler):
    """Our connections to peers' listening ports (peer.py has the link protocol)."""

    def __init__(self, glue):
        self.glue = glue

    def on_frame(self, conn, line):
        line = self.glue.untagged(conn, line)
        if line is not None:
            self.glue.feed(LinkIn(conn.data.link, decoded(line)))

    def on_oversize(self, conn):
        if not self.glue.cut_off_if_tagged(conn):
            self.glue.feed(LinkIn(conn.data.link, error("too_long")))

    def on_closed(self, conn, reason):
        link, conn.data = conn.data, None
        if link.abort is not None:
            link.abort.cancel()
        self.glue.links.pop(link.link, None)
        self.glue.feed(LinkClosed(link.link, reason))
