"""The staying connection (client.py --stay-connected): one connection to the server that
carries every request and every delivery, kept open, and made again with backoff when lost.

The client core does not choose a transport. It asks for `SendRequest(id, frame)` and hears
`Replied` or `RequestFailed`, as with short connections; deliveries reach it as
`Pushed(conn, frame)`, and it acknowledges them with `SendTo(conn, ack)`. `StayLink` carries
all of that on one connection: a request goes with its `id`, the reply repeats it, and a frame
without an `id` is a delivery. When the connection is lost, every request on it fails (the
core's outbox sends its message again with the same `mid`, which the server recognises), the
core hears `LinkDown` with the time of the next try, and a new connection is tried after 1 s,
2 s, 4 s ... up to 30 s (2 s while a session needs it). The core's `LinkUp` handler makes
`resume` the first request on it, so the server attaches the session there and sends again
whatever was not acknowledged (PROTOCOL.md, "Staying connected").

A connection that carries nothing and that no session needs (one left open at the login
prompt, which the server ends after its frame time) is let go without an outage: the next
request opens another.
"""
import limits
import protocol
from client_events import REQUEST_TIMEOUT_S, LinkDown, LinkUp, Pushed, Replied, RequestFailed
from client_glue import left_if_foreign
from reactor import Handler

RECONNECT_FIRST_S = 1.0     # a lost connection is made again after this, doubling per failure
RECONNECT_MAX_S = 30.0      # ... up to this, for as long as the client runs
# ... or this, while a session needs the link: the server ends it 31 s after the last request
# it heard (a heartbeat up to 15 s before the loss), and tries at 1, 3, 7, 15 and 31 s let a
# trial's 20 s outage outlast it
SESSION_RECONNECT_MAX_S = 2.0


# errors the server gives a frame it could not read, whose id it therefore cannot repeat
UNREAD_CODES = ("too_long", "bad_json", "bad_utf8", "slow_down")


def _request_id(frame):
    """The reply's id if it can be one of ours (an int), else None: then it is a delivery."""
    value = frame.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StayLink(Handler):
    """The client's one connection to the server, and the requests waiting on it.

    A request that gets no reply within REQUEST_TIMEOUT_S means the connection is dead even
    if TCP has not noticed (a half-open connection after a network change): it is dropped and
    made again. Heartbeats keep a request going at least every 30 s, so this is how a quiet
    client notices too.
    """

    def __init__(self, glue, server, log, tls=None, server_name=None, needed=None):
        self.glue = glue                # feeds the core: glue.feed(event)
        # -> True while a session needs the link (it is logged in: its deliveries come here)
        self.needed = needed or (lambda: True)
        self.server = server            # (host, port)
        self.tls = tls
        self.server_name = server_name
        self.log = log                  # diagnostics for stderr
        self.conn = None                # open or opening; None while waiting to try again
        self.up = False                 # open: requests go out at once
        self.held = []                  # (request id, frame) asked for while opening
        self.in_flight = {}             # request id -> (Timer: no reply by then drops the
                                        # link, the request)
        self.unread = False             # the server ends this link unread (too_slow): what
                                        # went on it since goes again on the next
        self.heard = False              # a frame of ours came on this connection
        self.backoff_s = 0.0            # the wait before the next try; doubles per failure
        self.retry = None               # the Timer of that try
        self.dormant = False            # let go unused: the next request opens it again
        self.refused = False            # the last try to connect was refused

    def open(self):
        """Start connecting: LinkUp once it is open; if it fails, as when a link is lost."""
        self.retry = None
        self.conn = self.glue.reactor.connect(*self.server, self, tls=self.tls,
                                              server_hostname=self.server_name)

    def request(self, request_id, frame):
        """Send a request; while no connection is open or opening, it fails at once."""
        if self.up:
            self._write(request_id, frame)
        elif self.conn is not None:
            self.held.append((request_id, frame))   # after LinkUp's resume, in order
        elif self.dormant:
            self.dormant = False
            self.held.append((request_id, frame))
            self.open()
        else:
            # (a server that refused the last try is said to: "not connected" told a trial's
            # user less than the plain client's "refused"; either way it was never sent)
            self.glue.feed(RequestFailed(request_id,
                                         "refused" if self.refused else "not connected"))

    def send_on(self, conn_id, frame):
        """A frame (an ack) for connection `conn_id` only: an ack belongs to the connection its
        message came on, and one that is gone has its messages sent again at the resume."""
        if self.up and self.conn.id == conn_id:
            self.conn.send(protocol.encode(frame))

    def _write(self, request_id, frame):
        conn = self.conn
        self.in_flight[request_id] = (self.glue.reactor.call_later(
            REQUEST_TIMEOUT_S, conn.abort, "no reply"), frame)
        conn.send(protocol.encode({**frame, "id": request_id}))

    # -- what the reactor reports --------------------------------------------------------------

    def on_connected(self, conn):
        self.up = True
        self.heard = False
        self.glue.feed(LinkUp())        # the core's resume goes out first ...
        held, self.held = self.held, []
        for request_id, frame in held:  # ... then what was asked for meanwhile
            self._write(request_id, frame)

    def on_frame(self, conn, line):
        try:
            frame = protocol.decode(line)
            said = True                 # (the server's own words, not a line we could not read)
        except protocol.FrameError as exc:
            frame, said = protocol.error(exc.code, detail=str(exc)), False
        # (the first answer only: a bad frame after ours is the server's, not another program)
        if not self.heard and left_if_foreign(conn, frame, line):
            return
        self.heard = True
        request_id = _request_id(frame)
        if (said and request_id is None and "id" not in frame and frame.get("type") == "error"
                and frame.get("code") in UNREAD_CODES and self.in_flight):
            # a frame of ours the server could not read (its id unread with it) is answered
            # in its place among the replies, which come in the order of the requests: the
            # oldest waiting's (a re-attack's too_long was taken for a delivery, the link for
            # dead, and the same frame sent again and again, the lines behind it held)
            request_id = next(iter(self.in_flight))
        if request_id is None and "id" not in frame:
            if frame.get("type") == "error" and frame.get("code") == "too_slow":
                # no whole frame came in the server's frame time (at the login prompt): it
                # closes the link, and reads nothing more on it (a name typed just then went
                # on it, and came back as an outage: a trial's)
                self.unread = True
            self.glue.feed(Pushed(conn.id, frame))
            return
        sent = self.in_flight.pop(request_id, None)
        if sent is None:
            self.log(f"reply to unknown request {frame.get('id')!r} ignored")
            return
        sent[0].cancel()
        self.backoff_s = 0.0            # the server answers: the next loss starts again at 1 s
        self.glue.feed(Replied(request_id, frame))

    def on_oversize(self, conn):
        # which request it answered cannot be told; that one times out and the link is renewed
        self.glue.feed(Pushed(conn.id, protocol.error("too_long")))

    def on_closed(self, conn, reason):
        was_up = self.up
        self.conn = None
        self.up = False
        for timer, _ in self.in_flight.values():
            timer.cancel()
        if self.unread:
            # what went on it was never read: it goes on the next link, opened now
            self.unread = False
            self.held[:0] = [(request_id, frame)
                             for request_id, (_, frame) in self.in_flight.items()]
            self.in_flight.clear()
            if self.held:
                self.open()
                return
        failed = list(self.in_flight) + [request_id for request_id, _ in self.held]
        self.in_flight.clear()
        self.held.clear()
        if was_up and not failed and not self.needed():
            # nothing was on it and no session needs it: not an outage to tell the user of
            self.dormant = True
            self.log(f"the server ended the unused connection ({reason}); the next request "
                     f"opens another")
            return
        self.backoff_s = limits.next_backoff(
            self.backoff_s, RECONNECT_FIRST_S,
            SESSION_RECONNECT_MAX_S if self.needed() else RECONNECT_MAX_S)
        # (one never made was said "lost", a re-attack's)
        what = "lost the connection" if was_up else "could not connect"
        self.log(f"{what} to the server ({reason}); trying again in {self.backoff_s:g} s")
        self.retry = self.glue.reactor.call_later(self.backoff_s, self.open)
        reason = protocol.reason_text(reason)
        self.refused = reason == "refused"
        for request_id in failed:
            self.glue.feed(RequestFailed(request_id, reason))
        # after the failures: a typed line's says the outage first, in the user's order
        self.glue.feed(LinkDown(reason, self.glue.reactor.clock.now() + self.backoff_s))
