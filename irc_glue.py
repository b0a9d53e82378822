"""The IRC port's glue: IRC connections on the same reactor, core and store as the native port.

`IrcFront` is the IRC listener's handler. It is the native port's, `NativePort` (the same caps
per address and in all, the same shedding, quiet and frame timers), with another codec: each
line is parsed (irc_wire) and handed to the connection's `IrcSession`, whose requests go to the
core as the native port's do. The core answers through `ServerGlue.conns`, where an IRC
connection is an `IrcLink`: it takes the native frames the glue writes, and the session
turns them into IRC lines. So neither the core nor the native glue knows IRC exists.

Timers per connection: a heartbeat for the core (IRC clients send none) every KEEPALIVE_S, or
half the time-out when that is shorter, and a PING once the client has been silent
PING_AFTER_S; silent IDLE_S, it is closed.
"""
from chat_server import Settings
from irc_session import IrcSession, Shared, folded
from irc_wire import BadText, TooLong, line, parse
from limits import REFUSALS_PER_READ, RateLimiter
from passwords import open_accounts
from protocol import decode_own
from reactor import READ_CHUNK_BYTES
from server_events import Request
from server_glue import TLS_AT_PLAIN, TLS_RECORD, AcceptedState, NativePort

KEEPALIVE_S = 15.0      # at most: the core ends a session after --timeout (31 s) without a
                        # request, so a keepalive goes at least twice in that time
PING_AFTER_S = 60.0     # a client silent this long is asked whether it is there
IDLE_S = 150.0          # ... and closed ("ping timeout") silent this long
REGISTER_S = 60.0       # a connection not logged in this long after it was made is closed
# a welcomed client that has not asked to JOIN the room by then is put in it: irssi's own JOIN
# comes 2.2 s after its login (its cmd_queue_speed), and must not find it joined already
JOIN_WAIT_S = 3.0


# A read of more lines than this ends its connection (ERROR Excess Flood), whatever they are:
# lines answered by nothing (PONG, an empty line) cost a parse each and were never refused. An
# IRC client paces what its user types; a pipelining one sends 256 messages in flight in about
# 140 lines a read (bench.py); 8 KiB of 8-byte lines is 1,024.
LINES_PER_READ = 512
# Lines in all, by token buckets (limits.py), past which a connection is closed (ERROR Excess
# Flood): before the login, an address's (the native port's requests per address: lines no
# login vouches for); after it, a user's, this many times the requests a native user may make
# (a session answers PING, MODE, WHO and the like itself, without a request to the core). A
# trial's 900 connections of one address, never registered, each sending CAP REQ lines (each
# answered, none refused) held everyone's messages 6 s; one logged-in user's PINGs, 80% of
# the server's time. An IRC client paces what its user types, a line every 2 s or so.
USER_LINES_FACTOR = 5
# ... and a connection's first lines before its login do not count: a registration's (CAP LS,
# CAP REQ, AUTHENTICATE, PASS, NICK, USER, CAP END, an early JOIN or PING) are a few each, and
# a trial's 300 honest logins at once from one address, counted, spent the address's lines
# mid-registration: 8 of them logged in
REGISTRATION_LINES = 32


class _IrcState(AcceptedState):
    __slots__ = ("link",)


class IrcFront(NativePort):
    """The IRC listener's handler; see the module docstring."""

    # the reactor's 8 KiB, not the native port's 32: an IRC user's requests make no run, and
    # more of them a pass only fills the recipients' windows (NativePort.read_bytes)
    read_bytes = READ_CHUNK_BYTES
    # a CR alone ends a line, as ngIRCd reads it (a trial's "PING one\rPING two\r\n" got one
    # PONG, a PRIVMSG's "\rQUIT :bye" went on as its text, and a client that ends its lines
    # with CR alone waited at its registration for an LF)
    cr_ends_lines = True

    def __init__(self, glue, accounts, server_name, room, settings=Settings()):
        """`settings`: the core's, for its time-out and its request limits."""
        super().__init__(glue)
        timeout_s = settings.timeout_s
        self.address_lines = RateLimiter(settings.address_rate_per_s, settings.address_burst)
        self.user_lines = RateLimiter(
            USER_LINES_FACTOR * settings.user_rate_per_s,
            max(USER_LINES_FACTOR * settings.user_burst, LINES_PER_READ))
        # (a fixed 15 s ended every idle IRC user of a server run with --timeout 10)
        self.keepalive_s = min(KEEPALIVE_S, timeout_s / 2)
        self.accounts = folded(accounts)
        self.open = open_accounts(accounts)
        self.acks_due = []      # links given deliveries this pass: each gets its ack PING
        self.shared = Shared()    # what the sessions share (irc_session)
        self.last_decoded = (None, None)    # (a native line, its frame): a broadcast's one
                                            # line reaches every recipient's link
        glue.reactor.before_flush(self._ack_pings)      # (after the glue's: it delivers)
        self.server_name = server_name
        self.room = room

    def farewell(self, text):
        """The server stops: each IRC client is told why with ERROR, as IRC servers do (its
        connection only closed, WeeChat said "error 2 (connection closed by peer)")."""
        for link in list(self.glue.conns.values()):
            if type(link) is IrcLink and not link.session.gone:
                link.session.close("server stopping", text)
                link.write()

    def on_accepted(self, conn):
        super().on_accepted(conn)
        if conn.data is not None:
            # REGISTER_S from the start, not the native port's first-frame limit (--frame-time,
            # 10 s): a trial's user typing NICK and USER by hand into nc was closed before the
            # first line was done. (At the connection cap, one not logged in may be shed.)
            conn.data.link.registering = True
            self.glue.arm_quiet(conn, REGISTER_S, "no registration")

    def new_state(self, conn):
        state = _IrcState()
        session = IrcSession(self.accounts, self.server_name, self.room, conn.host,
                             open_accounts=self.open, shared=self.shared,
                             is_online=self.glue.core.is_online)
        state.link = IrcLink(self, conn, session)
        self.glue.conns[conn.id] = state.link     # the core's replies reach it there
        return state

    def on_frames(self, conn, lines):
        if lines[0][:2] == TLS_RECORD:
            conn.abort(TLS_AT_PLAIN)
            return
        link = conn.data.link
        clock = self.glue.reactor.clock
        wall = clock.wall()
        session = link.session
        if session.welcomed:
            flooded = self.user_lines.take(session.account, clock.now(), len(lines))
        else:
            link.early_lines += len(lines)
            over = min(link.early_lines - REGISTRATION_LINES, len(lines))
            flooded = over > 0 and self.address_lines.take(conn.host, clock.now(), over)
        if flooded:
            self._flooded(conn, link)
            return
        shared = self.shared
        refused = 0     # lines refused in this read: each counts once, however many errors
        for count, raw in enumerate(lines, 1):
            if conn.closing_reason is not None or session.gone:
                break
            if count > LINES_PER_READ:
                session.close("flooded with lines", f"Excess Flood (more than "
                                                    f"{LINES_PER_READ} lines in one read)")
                link.flush()
                break
            errors = shared.refusals
            try:
                message = parse(raw)
            except TooLong:
                session.too_long()
            except BadText:
                session.refused_text(_command_of(raw))
            else:
                if message is not None:
                    session.from_client(message, wall)
            refused += shared.refusals > errors
            if refused >= REFUSALS_PER_READ:
                # (limits.REFUSALS_PER_READ: a trial's 10 connections of "X" lines, each
                # a 451 or 421, held everyone's heartbeat 0.3 s. Per line: one JOIN of an
                # autojoin list of 69 channels is 69 403s, and must not end the connection)
                session.close("flooded with refused lines", f"Excess Flood ({REFUSALS_PER_READ}"
                              f" lines refused in one read)")
            link.flush()
        link.last_heard = clock.now()
        if session.shown_seq > session.acked_seq:
            link.ack()          # (a PONG may have made room for the next ack PING)
            link.write()
        if link.registering and session.welcomed:
            link.welcomed()             # (by SASL: its CAP END was the last step)
        elif session.welcomed:
            self.glue.arm_quiet(conn, IDLE_S)

    def _flooded(self, conn, link):
        """Past its address's lines, or its user's (USER_LINES_FACTOR): closed, and said in the
        log, once a minute an address."""
        who = link.session.account or "not logged in"
        self.glue.log_repeated(("closed an IRC connection as a flood", conn.host),
                               f"closed an IRC connection of {conn.host} ({who}): more lines "
                               f"than its {'user' if link.session.welcomed else 'address'} "
                               f"may send")
        link.session.close("flooded with lines", "Excess Flood (more lines than this server "
                                                 "takes; wait, then connect again)")
        link.flush()

    def _ack_pings(self):
        """The end of a pass: one PING after each link's deliveries, whose PONG acknowledges
        them all (PROTOCOL.md, "IRC")."""
        due, self.acks_due = self.acks_due, []
        for link in due:
            link.ack_due = False
            link.ack()
            link.write()

    def on_oversize(self, conn):
        conn.data.link.session.too_long()
        conn.data.link.flush()

    def frame_time(self, conn, frame_time_s):
        """A logged-in user's line begun may wait as long as its silence may (IDLE_S), as
        ngIRCd's does: a trial's stall in the middle of a line ended the session at the
        frame time (10 s), its half-sent message lost; before the login, the frame time."""
        state = conn.data
        if state is None or state.link.registering or frame_time_s is None:
            return frame_time_s
        return max(frame_time_s, IDLE_S)

    def on_idle(self, conn):
        """Silent past IDLE_S: told why, as IRC servers do (a trial's client was closed with
        nothing said, while the others read its QUIT: Ping timeout)."""
        if conn.data is not None and not conn.data.link.registering:
            conn.send(line("", "ERROR", f"Closing link: Ping timeout: {IDLE_S:g} seconds"))

    def on_frame_timeout(self, conn):
        conn.send(line("", "ERROR", "Closing link: too slow (no complete line, or no login, "
                                    "in time)"))

    def on_closed(self, conn, reason):
        state = conn.data
        if state is not None:
            # the words the others see it quit with, as IRC servers say them (a kill -9 and a
            # client silent for IDLE_S had both "Logged out": a trial's)
            state.link.closed(f"Ping timeout: {IDLE_S:g} seconds" if reason == "idle"
                              else "Connection closed")
        super().on_closed(conn, reason)


class IrcLink:
    """An IRC connection as the native glue sees it: `send` takes a native frame's line,
    `close` ends it. It also carries the session's requests to the core, and its timers."""

    __slots__ = ("front", "glue", "conn", "session", "id", "last_heard", "ack_due",
                 "registering", "early_lines", "_requests_queued", "_keepalive", "_ack_timer",
                 "_join_timer")

    def __init__(self, front, conn, session):
        self.front = front
        self.glue = glue = front.glue
        self.conn = conn
        self.session = session
        self.id = conn.id
        self.last_heard = glue.reactor.clock.now()
        self.ack_due = False
        self.registering = False    # under REGISTER_S (from its accept) until welcomed
        self.early_lines = 0        # lines read before the welcome (REGISTRATION_LINES)
        self._requests_queued = False
        self._keepalive = glue.reactor.call_later(front.keepalive_s, self._keep_alive)
        self._ack_timer = None      # an ack PING held back (ack)
        self._join_timer = None     # JOIN_WAIT_S from the welcome

    # -- what the native glue calls --------------------------------------------------------

    def send(self, data, ahead=False):
        """A native frame from the core (a reply or a delivery) -> IRC lines (`ahead` is the
        native connection's: a delivery is worded with the session's other lines and written
        with them)."""
        front = self.front
        if data is front.last_decoded[0]:
            frame = front.last_decoded[1]
        else:
            frame = decode_own(data)
            front.last_decoded = (data, frame)
        session = self.session
        session.from_core(frame, self.glue.reactor.clock.wall())
        self.write()
        if self.registering and session.welcomed:
            self.welcomed()
        if session.shown_seq > session.acked_seq and not self.ack_due:
            self.ack_due = True
            self.front.acks_due.append(self)
        if session.requests and not self._requests_queued:
            # asked while the glue finishes a pass: they go to the core in the next one
            self._requests_queued = True
            self.glue.reactor.call_soon(self._send_requests)

    def close(self, reason):
        self.conn.close(reason)

    def welcomed(self):
        """Logged in: idle from now on, not registering; in the room by JOIN_WAIT_S."""
        self.registering = False
        reactor = self.glue.reactor
        self.glue.arm_quiet(self.conn, IDLE_S)
        if not self.session.joined:     # (asked for with the login's lines: WeeChat's)
            self._join_timer = reactor.call_later(JOIN_WAIT_S, self._join_due)

    def _join_due(self):
        self._join_timer = None
        if not self.conn.closed and self.conn.closing_reason is None:
            self.session.join_now()
            self.flush()
            self.ack()          # (messages to the room waited for it)
            self.write()

    # -- the session's output --------------------------------------------------------------

    def flush(self):
        """The session's lines to the client, its requests to the core, its hang-up."""
        self.write()
        self._send_requests()

    def write(self):
        session = self.session
        if session.lines:
            self.conn.send(b"".join(session.lines))
            session.lines.clear()
        if session.hangup is not None and self.conn.closing_reason is None:
            self.conn.close(session.hangup)

    def _send_requests(self):
        self._requests_queued = False
        session = self.session
        if not session.requests:
            return
        requests, session.requests = session.requests, []
        glue = self.glue
        now = glue.reactor.clock.now()
        host = self.conn.host
        for frame in requests:
            glue.apply(glue.core.handle(Request(self.id, frame, host, irc=True), now))

    def ack(self):
        """Ask the session for an ack PING (irc_session.ping_for_ack); one it holds back for
        now is asked for again by a timer."""
        reactor = self.glue.reactor
        at = self.session.ping_for_ack(reactor.clock.now(), self.last_heard)
        if at is not None and self._ack_timer is None:
            self._ack_timer = reactor.call_at(at, self._ack_later)

    def _ack_later(self):
        self._ack_timer = None
        if not self.conn.closed and self.conn.closing_reason is None:
            self.ack()
            self.write()

    def _keep_alive(self):
        reactor = self.glue.reactor
        if self.conn.closed or self.conn.closing_reason is not None:
            return
        if reactor.clock.now() - self.last_heard >= PING_AFTER_S:
            self.session.say("PING", self.session.server, source="")
        self.session.keepalive()
        self.flush()
        self._keepalive = reactor.call_later(self.front.keepalive_s, self._keep_alive)

    def closed(self, why):
        """The connection is gone: a user still logged in logs out with `why` (no QUIT
        came)."""
        self._keepalive.cancel()
        for timer in (self._ack_timer, self._join_timer):
            if timer is not None:
                timer.cancel()
        self.session.connection_lost(why)
        self._send_requests()


def _command_of(raw):
    """The command word of a line that is not UTF-8, for its FAIL (or '*')."""
    words = raw.split()
    while words and words[0][:1] in (b"@", b":"):
        words.pop(0)
    word = words[0].decode("ascii", "replace").upper() if words else "*"
    return word if word.isalpha() else "*"
