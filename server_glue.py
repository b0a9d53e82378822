"""The server's glue: the reactor moves bytes and fires timers, the chat core decides.

ServerGlue feeds ChatServer what the reactor sees and carries out its actions. Two kinds of
connection, each with its own handler and slotted state: connections clients open to us
(`NativePort`: each line becomes a core event through server_events.accepted_event), and the
delivery connections we open to a client's listening port (delivery_links.py). Timers go on the
reactor's wheel, log lines to the log.
Nothing here knows a chat rule, and no chat state is kept here.
"""
import math

import limits
from delivery_links import DELIVERY_SOCKETS, DeliveryLinks
from limits import BLANKS_PER_READ, LONG_FRAME_BYTES, REFUSALS_PER_READ
from protocol import (OK_STORED_LINES, UNAVAILABLE_RETRY_S, Numbered, encode, error, reply_line,
                      whole)
from pacing import KeyedTimers, Lapses, RepeatedLines, StateLines
from reactor import FRAME_TIME_S, Handler
from server_events import (Arm, BadFrame, Close, Closed, Deliver, DeliverEach, DeliverRun,
                           Expired, Log, Replies, Reply, StoreRecovered, TimeQuiet,
                           Undelivered, accepted_event)
from storage import StoreUnavailable

MAX_CONNECTIONS = 10000       # accepted connections open at once; past it one is shed
MAX_PER_ADDRESS = 1000        # accepted connections open at once from one address; past it a
                              # new one is closed (a NAT's users share one: well above a crowd)
LOG_QUIET_S = 60.0            # lines of one kind from one address: one, then a count each this
IDLE_CONNECTION_S = 60.0      # an accepted connection that sends nothing for this long is closed
COMMIT_RETRY_FIRST_S = 0.1    # a commit that failed is tried again after this, doubling ...
COMMIT_RETRY_MAX_S = 5.0      # ... up to this, until one succeeds
# A TLS client at a plain port: its handshake is no frame to answer (a trial's got bad_utf8
# and bad_json, and the IRC port 421s that echoed its bytes): closed, and on_closed logs why
TLS_RECORD = b"\x16\x03"      # how a TLS handshake begins (a record of type 22, version 3.x)
TLS_AT_PLAIN = "a TLS handshake at a plain port (the server has no --tls-cert for it)"
# An IRC client at the native port: told in its own protocol (an IRC trial's irssi showed raw
# bad_json lines, then too_slow, and tried again every 5 minutes)
IRC_FIRST_WORDS = (b"CAP ", b"PASS ", b"NICK ", b"USER ")


def _not_the_irc_port(irc_port):
    """The line an IRC client at the native port reads before it is closed: where to go."""
    where = (f"IRC clients connect to port {irc_port}" if irc_port is not None
             else "it takes no IRC clients (server.py --irc-port)")
    return f"ERROR :Closing link: this is the chat server's own port; {where}\r\n".encode()


# not worth a log line ("quit": an IRC client's QUIT)
ORDINARY_CLOSES = ("bye", "eof", "idle", "server stopping", "quit")


class AcceptedState:
    """A connection a client opened to us. On the native port it holds nothing (its quiet
    limit is in the glue's Lapses), so they all share ACCEPTED (NEW until a frame it sent was
    taken), or CARRYING while it carries a session: 40 bytes of each idle user; irc_glue's
    holds the connection's link."""
    __slots__ = ()


ACCEPTED = AcceptedState()      # timed by its quiet limit (the glue's Lapses)
# nothing it sent was taken yet: only such a connection may be a TLS or IRC client at the wrong
# port (a fuzzer's `USER x` typed after a login closed the session's connection as IRC's)
NEW = AcceptedState()
# carries a logged-in session, whose time-out (the core's one idle check) stands for its quiet
# limit until the session ends (TimeQuiet): an entry in the Lapses, with its time, was 74
# bytes of each idle staying user
CARRYING = AcceptedState()


def _refused(actions, conn_id):
    """True if the core's reply to a frame from `conn_id`, among `actions`, is an error. The
    reply comes first or next to first (after a log line), not after a broadcast's deliveries."""
    for action in actions:
        if type(action) is Reply and action.conn == conn_id:
            return action.frame["type"] == "error"
    return False


# a repeated line's `what` that names its `who` itself (else "... from <who>": a re-attack's
# log read "unanswered address requests from seas" of requests made to seas)
BY_WHOM = (" by", " to")


class ServerGlue:
    """Feeds the core what the reactor sees, and carries out the core's actions."""

    def __init__(self, reactor, core, store, log, idle_s=IDLE_CONNECTION_S, commit_each=False,
                 max_connections=MAX_CONNECTIONS, first_frame_s=FRAME_TIME_S,
                 delivery_sockets=DELIVERY_SOCKETS, max_per_address=MAX_PER_ADDRESS,
                 irc_port=None):
        self.reactor = reactor
        self.core = core
        self.store = store
        self.log = log
        self.idle_s = idle_s
        self.first_frame_s = first_frame_s    # a new connection that sends nothing is closed
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        # host -> how many accepted connections from it are open (a count, not a dict of
        # them: 37 bytes of each idle user; shedding finds the newest in `conns`)
        self.by_address = {}
        self._held_lines = None   # while a pass's actions are carried out: its log lines
        self.repeated = RepeatedLines(reactor, self._say, LOG_QUIET_S)
        # the server's own conditions (the store's commits, signals): folded too, but never
        # under the clients' flood bound, which a flood of refusals could spend (a re-attack's
        # 210 wrong passwords hid that the disk was full)
        self.health = RepeatedLines(reactor, self._say, LOG_QUIET_S, max_lines=math.inf)
        self.store_state = StateLines(reactor, self._say, "the store commits again", LOG_QUIET_S)
        # group commit: one transaction per loop pass, committed before any of its replies
        # and deliveries leave; commit_each (for measuring what that buys) commits after
        # every event instead
        self.commit_each = commit_each
        reactor.before_flush(self._finish_pass)
        self._out = []            # this pass's replies, deliveries and closes, in order
        self._held = []           # deliveries of messages whose commit failed, in order
        self._commit_retry_s = 0.0    # while commits fail: the wait before the next try ...
        self._commit_retry_at = 0.0   # ... and when that is
        self._store_timer = None      # the pass that writes held acknowledgements, or looks
                                      # at the store's files, if one waits
        # (limit_s, reason) -> the Lapses of the connections under that quiet limit: one timer
        # for each limit, not one for each connection. A heard connection's and a new one's
        # first, in that order: a connection is looked for in that order as it leaves one
        self._quiet = {}
        self._lapses(idle_s, "idle")
        self._first_frame = self._lapses(first_frame_s, "no complete frame")
        # the listener's handler, which tells an IRC client where the IRC port is
        self.accepted = NativePort(self, irc_port)
        self.conns = {}           # id -> accepted connection, for replies
        self.timers = KeyedTimers(reactor, self._expired)
        self.links = DeliveryLinks(self, delivery_sockets)   # to clients' listening ports
        self._last_encoded = (None, b"")    # (frame, its bytes): see encoded
        self._actions = {Reply: self._reply, Replies: self._replies, Deliver: self._deliver,
                         DeliverEach: self._deliver_each, DeliverRun: self._deliver_run,
                         Close: self._close, Arm: self._arm,
                         Log: self._log, TimeQuiet: self._time_quiet}

    def listen(self, host, port, tls=None):
        """Take clients' connections on (host, port) -> the reactor's Listener."""
        return self.reactor.listen(host, port, self.accepted, tls=tls)

    def feed(self, event):
        """Hand one event to the core and carry out the actions it returns -> them."""
        actions = self.core.handle(event, self.reactor.clock.now())
        self.apply(actions)
        return actions

    def apply(self, actions):
        """Carry out core actions, in order, once the pass's writes are committed (at the end
        of the pass): a reply, delivery or close must not tell of a write not yet durable."""
        self._out += actions
        if self.commit_each:
            self._finish_pass()

    # -- the end of a pass: commit, then what the commit allows ---------------------------------

    def _finish_pass(self):
        """Commit the pass's writes, then send its output in order. If the commit failed, a
        reply that says yes to a write becomes `unavailable`, and a delivery of a message not
        yet committed waits (in order) for a commit that succeeds."""
        committed = self._commit()
        out, self._out = self._out, []
        if committed and self._held:
            # what waited for this commit goes first, in order (with the same guard: a trial's
            # held delivery that raised cost the rest theirs)
            out[:0], self._held = self._held, []
        carry_out = self._actions
        self._held_lines = held_lines = []
        try:
            for action in out:
                try:
                    carry_out[type(action)](action, committed)
                except Exception as exc:
                    self._not_carried_out(action, exc)
        finally:
            self._held_lines = None
            if held_lines:
                self._write_lines(held_lines)

    def _not_carried_out(self, action, exc):
        """Carrying out `action` raised (a bug): logged, and the rest of the pass goes on, so
        one connection's trouble costs no one else a reply or a delivery. What the action was
        for goes again: the connections it names are closed (what they had before it is in
        order; their sessions resume, and what they did not acknowledge is sent again), and a
        delivery to a listening port is undelivered (retried). A reviewer's IRC reply that
        raised had cost another user a delivery that his next acknowledgement then passed."""
        self.reactor.report(exc)
        named = getattr(action, "conn", None)
        for conn_id in [named] if named is not None else getattr(action, "conns", ()):
            conn = self.conns.get(conn_id)
            if conn is not None:
                conn.close("internal error")
        if type(action) is Deliver and action.conn is None:
            undelivered = Undelivered(action.address, action.proof, "internal error")
            self.reactor.call_soon(lambda: self.feed(undelivered))

    def _commit(self):
        """Commit the store -> True, or False if it failed (or a retry after a failure is
        not due yet: commits that fail are tried with backoff, not on every pass)."""
        store = self.store
        if store.failing is not None and self.reactor.clock.now() < self._commit_retry_at:
            return False
        try:
            store.commit()
        except StoreUnavailable as trouble:
            now = self.reactor.clock.now()
            self.store_state.went_bad(f"cannot commit ({trouble}): writes wait, and replies "
                                      f"that would say yes to them say unavailable, until a "
                                      f"commit succeeds")
            self._commit_retry_s = limits.next_backoff(self._commit_retry_s,
                                                       COMMIT_RETRY_FIRST_S, COMMIT_RETRY_MAX_S)
            self._commit_retry_at = now + self._commit_retry_s
            # a pass then, even if nothing else happens, so an idle server recovers too
            self.reactor.call_at(self._commit_retry_at, self._commit_due)
            return False
        if store.notice is not None:        # (its file written again, say)
            self.log(store.notice)
            store.notice = None
        if self._commit_retry_s:
            self._commit_retry_s = 0.0
            self.store_state.went_good()
            self.apply(self.core.handle(StoreRecovered(), self.reactor.clock.now()))
        if self._store_timer is None:
            wake_at = store.wake_at()
            if wake_at is not None:
                # acknowledgements held for the next compaction, or the store's look at its
                # files: a pass then does it, even on a server that has gone quiet (one timer
                # at a time, not one per pass)
                self._store_timer = self.reactor.call_at(wake_at, self._store_due)
        return True

    def _commit_due(self):
        """The time to try a failed commit again: the end of this pass does."""

    def _store_due(self):
        """Held acknowledgements, or the store's look, are due: the end of this pass does it."""
        self._store_timer = None
        self.store.look_wanted = True

    def _expired(self, key):
        self.feed(Expired(key))

    # -- what the core asks for --------------------------------------------------------------

    def _reply(self, action, committed=True):
        conn = self.conns.get(action.conn)
        if conn is None:
            return
        frame = action.frame
        if action.durable and not committed:
            frame = error("unavailable", frame.get("id"))
            frame["seconds"] = UNAVAILABLE_RETRY_S
        elif action.line is not None:
            conn.send(action.line)
            return
        conn.send(reply_line(frame))

    def _replies(self, action, committed=True):
        """A run's usual yeses in one append; if the commit failed, each is the error a Reply
        of its own would have become."""
        conn = self.conns.get(action.conn)
        if conn is None:
            return
        if not committed:
            for frame in action.frames():
                self._reply(Reply(action.conn, frame, True), committed)
            return
        yes = OK_STORED_LINES[False]
        conn.send(b"".join([yes % frame_id for frame_id in action.ids]))

    def _close(self, action, committed=True):
        conn = self.conns.get(action.conn)
        if conn is not None:
            if action.drop:
                conn.reset(action.reason)
            else:
                conn.close(action.reason)

    def _time_quiet(self, action, committed=True):
        conn = self.conns.get(action.conn)
        # (an IRC link keeps its own limits, and has no state of ours)
        if getattr(conn, "data", None) is CARRYING and action.conn not in self.core.carried:
            conn.data = ACCEPTED
            self.arm_quiet(conn, self.idle_s)

    def _arm(self, action, committed=True):
        self.timers.arm(action.key, action.at)

    def _log(self, action, committed=True):
        if action.key is None:
            self._held_lines.append(action.text)    # (_say: actions are carried out so)
        else:
            self.log_repeated(action.key, action.text)

    def _say(self, text):
        """A log line: held while a pass's actions are carried out, and then written with the
        pass's others (_write_lines); else at once."""
        if self._held_lines is not None:
            self._held_lines.append(text)
        else:
            self.log(text)

    def _write_lines(self, lines):
        """Several log lines, in order: in one write when the log can (make_logger's does:
        a login's and a logout's lines were a write and a flush each)."""
        many = getattr(self.log, "many", None)
        if many is not None:
            many(lines)
            return
        for text in lines:
            self.log(text)

    def farewell(self, text):
        """The server stops: each staying client is told why, as IRC clients are (its
        connection only closed, and client.py said it could not reach the server: an
        operator's trial). Sent as the connections close (Reactor.close_all flushes)."""
        line = encode({"type": "shutdown", "message": text})
        for conn_id in self.core.carried:
            conn = self.conns.get(conn_id)
            if conn is not None and not conn.closed:
                conn.send(line)

    def log_repeated(self, key, text):
        """A line that a flood could repeat: said for the first of a burst per `key`, (what,
        from whom, or None for the server's own); the rest are counted and said in one line
        when LOG_QUIET_S is over."""
        what, who = key
        if who is None:
            self.health.say(key, text, what)
        elif what.endswith(BY_WHOM):    # ("address requests unanswered by", "seas")
            self.repeated.say(key, text, f"{what} {who}")
        else:
            self.repeated.say(key, text, f"{what} from {who}")

    def _deliver(self, action, committed=True):
        frame = action.frame
        if (self._held or not committed) and "seq" in frame and (
                self._held or frame["seq"] > self.store.committed_seq):
            self._held.append(action)       # behind what waits already, to keep the order
            return
        if action.conn is not None:
            # a staying client's own connection, hello-free, in order with the replies; one
            # already gone has told the core (Closed), and what it did not acknowledge goes
            # out again at the resume. Written ahead of the pass's other connections: the
            # recipient waits on this, while the sender's reply only confirms
            conn = self.conns.get(action.conn)
            if conn is not None:
                if type(frame) is Numbered:
                    conn.send(frame.wire, ahead=True)
                else:
                    # (encoded's usual case, inline: one notice to many)
                    last = self._last_encoded
                    conn.send(last[1] if frame is last[0] else self.encoded(frame),
                              ahead=True)
            return
        self.links.send(action.user, action.address, action.proof, frame)

    def _deliver_each(self, action, committed=True):
        frame = action.frame
        if type(frame) is not Numbered:     # a notice (presence): nothing to wait for
            data = self.encoded(frame)
        elif (self._held or not committed) and (self._held
                                                or frame["seq"] > self.store.committed_seq):
            self._held.append(action)       # (as _deliver: behind what waits, in order)
            return
        else:
            data = frame.wire
        # staying connections already gone have told the core (Closed): filtered out here
        self.reactor.send_each(filter(None, map(self.conns.get, action.conns)), data)

    def _deliver_run(self, action, committed=True):
        frames = action.frames
        if (self._held or not committed) and (self._held
                                              or frames[-1]["seq"] > self.store.committed_seq):
            self._held.append(action)       # (as _deliver_each: all in one commit)
            return
        lines = [frame.wire for frame in frames]
        self.reactor.send_each(filter(None, map(self.conns.get, action.conns)), b"".join(lines),
                               lines)

    def encoded(self, frame):
        """A delivery's bytes; the core hands one notice to many users as one dict, so the
        last one encoded is kept (a presence batch to 10,000 users is encoded once)."""
        if frame is not self._last_encoded[0]:
            self._last_encoded = (frame, encode(frame))
        return self._last_encoded[1]

    # -- quiet connections ---------------------------------------------------------------------

    def arm_quiet(self, conn, limit_s, reason="idle"):
        """Close `conn` after `limit_s` without a frame (with `reason`; not "idle": told why,
        and logged), instead of whenever it was to close before. The connections under one
        limit lapse in the order they were last heard from, so one timer does for all of them
        (pacing.Lapses)."""
        lapses = self._quiet.get((limit_s, reason))
        if lapses is None:
            lapses = self._lapses(limit_s, reason)
        if lapses.touch(conn):          # under one limit at a time: the last one armed
            for other in self._quiet.values():
                if other is not lapses and other.discard(conn):
                    return

    def _lapses(self, limit_s, reason):
        """The Lapses of the connections under the quiet limit (limit_s, reason), made the
        first time it is asked for."""
        lapses = self._quiet.get((limit_s, reason))
        if lapses is None:
            lapses = self._quiet[(limit_s, reason)] = Lapses(
                self.reactor, limit_s, lambda conn: self._quiet_lapsed(conn, limit_s, reason))
        return lapses

    def _quiet_lapsed(self, conn, limit_s, reason):
        if reason != "idle":    # hostile or broken, not merely done: told why, and logged
            conn.handler.on_frame_timeout(conn)
            reason = f"{reason} within {whole(limit_s)} s"
        else:
            conn.handler.on_idle(conn)
        conn.close(reason)

    def stop_quiet(self, conn):
        """`conn` is under no quiet limit any more."""
        for lapses in self._quiet.values():
            if lapses.discard(conn):
                return          # under one limit at a time


# Requests an address may send after being told to slow down, its connections and reads
# together: past it, the connection that sends more is closed (flood). Each is still parsed and
# answered: a trial's 600 connections of one address, each sending 1 KB check_user frames
# refused slow_down (7 a read, never the 64 of REFUSALS_PER_READ), held everyone's name
# checks 1 s. A client told to slow down waits as it is asked.
SLOWED_PER_ADDRESS_S = 50.0
SLOWED_PER_ADDRESS_BURST = 500


class NativePort(Handler):
    """Connections clients open to us: every line becomes a core event."""

    # A read of up to 32 KiB: a broadcaster's 300 requests, one run (reach._Run) that
    # costs each of its recipients an append; broadcast 1.3M -> 2.0M deliveries/s. (64 KiB was
    # slower: 600 requests outran the recipients' windows. The IRC port keeps 8 KiB: an IRC
    # user's deliveries are worded one by one, and 32 KiB reads there filled the windows
    # with its broadcasts, 355k -> 207k deliveries/s.)
    read_bytes = 32 * 1024

    def __init__(self, glue, irc_port=None):
        self.glue = glue
        self.slowed_from = limits.RateLimiter(SLOWED_PER_ADDRESS_S, SLOWED_PER_ADDRESS_BURST)
        self.not_irc = _not_the_irc_port(irc_port)   # what an IRC client here reads

    def on_accepted(self, conn):
        glue = self.glue
        host = conn.host
        theirs = glue.by_address.get(host, 0)
        if theirs >= glue.max_per_address:
            self._refuse(conn, "refused a connection: its address holds the most it may",
                         "at the per-address cap")
            return
        if len(glue.conns) >= glue.max_connections and not self._shed():
            self._refuse(conn, "refused a connection: at the connection cap",
                         "at the connection cap")
            return
        glue.conns[conn.id] = conn
        glue.by_address[host] = glue.by_address.get(host, 0) + 1   # (one may have been shed)
        conn.data = self.new_state(conn)
        glue._first_frame.touch(conn)   # (arm_quiet: a new connection is under no other limit)

    def new_state(self, conn):
        """The slotted state an accepted connection keeps (irc_glue's holds more)."""
        return NEW

    def _refuse(self, conn, what, reason):
        """Close a new connection at once, unanswered; said once a minute per address."""
        self.glue.log_repeated((what, conn.host), f"{what} from {conn.host}")
        conn.data = None        # never one of ours: on_closed knows it by this
        conn.abort(reason)

    def _shed(self):
        """At the global cap, make room by closing the newest connection of the address that
        holds the most, unless it carries a session: one address cannot shut everyone out,
        and a logged-in user's requests still get through. When that address holds sessions
        only (a staying user's), the newest connection of any address that carries none goes:
        a trial's flood from 40 addresses, one connection each, and a staying user first at
        the busiest had every new connection refused. -> True if one was shed."""
        glue = self.glue
        by_address = glue.by_address
        host = max(by_address, key=by_address.get)
        carried = glue.core.carried
        newest = None               # the newest that carries no session, of any address
        for conn in reversed(glue.conns.values()):     # (the newest first)
            conn = getattr(conn, "conn", conn)          # (an IRC link: its connection)
            if conn.id in carried:
                continue
            if conn.host == host:
                newest = conn
                break
            newest = newest or conn
        if newest is None:
            return False
        if newest.host == host:
            which = f"of {host}, which holds the most ({by_address[host]})"
        else:
            which = (f"not logged in, of {newest.host} ({by_address[newest.host]}): {host}, "
                     f"which holds the most ({by_address[host]}), holds sessions only")
        glue.log_repeated(("shed a connection at the connection cap", newest.host),
                          f"at the connection cap: shed the newest connection {which}")
        newest.abort("shed at the connection cap")
        _forget(glue, newest)                           # room now; on_closed follows
        return True

    def on_frame(self, conn, line):
        self.on_frames(conn, [line])

    def _not_our_protocol(self, conn, line):
        """A TLS handshake, or an IRC client's words, at this port -> True, the connection
        closed (a TLS client is told nothing: its handshake is no frame to answer)."""
        if line[:2] == TLS_RECORD:
            conn.abort(TLS_AT_PLAIN)
            return True
        if line.upper().startswith(IRC_FIRST_WORDS):
            conn.send(self.not_irc)
            conn.close("an IRC client at the chat port")
            return True
        return False

    def on_frames(self, conn, lines):
        """What one read brought: each line to the core, in order, at one `now`."""
        if lines[0][:1] != b"{" and conn.data is NEW and self._not_our_protocol(conn, lines[0]):
            return
        glue = self.glue
        handle = glue.core.handle
        conn_id, host = conn.id, conn.host
        now = glue.reactor.clock.now()
        alive = False
        # a read of many requests: a run among them (a session's broadcasts, or its messages to
        # one user) is delivered at its end (reach._Run), each recipient's share in one
        # append. Two lines are most often a short connection's request and bye: a run of one
        # there cost its message 2 us (tests/measure_short.py), and gathers nothing.
        core = glue.core
        reading = core.reading = len(lines) > 2 and not glue.commit_each
        flooded_at = core.refusals + REFUSALS_PER_READ
        slowed = core.slowed
        flooded = ended = False
        blanks = 0
        try:
            for line in lines:
                if conn.closing_reason is not None:
                    break       # (closed by commit_each's output): the rest is not read
                if len(line) > LONG_FRAME_BYTES and (
                        wait_s := core.long_frame_wait(host, len(line), now)):
                    event = BadFrame(conn_id, host, "slow_down", wait_s=wait_s)    # (unread)
                else:
                    event = accepted_event(conn_id, host, line)
                if event is None:                   # (a blank line: skipped, up to a bound)
                    blanks += 1
                    if blanks > BLANKS_PER_READ:
                        flooded = True
                        break
                    continue
                actions = handle(event, now)
                glue._out += actions                # (glue.apply, inline)
                if glue.commit_each:
                    glue._finish_pass()
                # a frame refused with an error is no sign of life: one bad line every minute
                # must not hold a connection open for ever
                alive = alive or not _refused(actions, conn_id)
                if actions and type(actions[-1]) is Close and actions[-1].conn == conn_id:
                    # its bye: the rest of the read is not read (a trial's requests written
                    # after a bye were kept and delivered, never answered)
                    ended = True
                    break
                if core.refusals >= flooded_at:
                    flooded = True
                    break
        finally:
            if reading:
                core.reading = False
                if core.run is not None:    # (its yeses waiting too: see chat_server._yeses)
                    glue._out += core.end_run()
        slowed = core.slowed - slowed
        if slowed and not flooded and self.slowed_from.take(host, now, slowed):
            self._flooded(conn, "its address went on sending after it was asked to slow "
                                "down: the connection is closed")
            return
        if flooded:
            # after the run's end: its yeses go out before the connection closes
            what = (f"more than {BLANKS_PER_READ} blank lines" if blanks > BLANKS_PER_READ
                    else f"{REFUSALS_PER_READ} requests refused")
            self._flooded(conn, f"{what} in one read: the rest were not read, and the "
                                f"connection is closed")
            return
        if alive:
            if conn_id in glue.core.carried:
                if conn.data is not CARRYING:   # (it has just logged in or resumed)
                    conn.data = CARRYING
                    glue.stop_quiet(conn)
            elif ended:
                # its last line ended it (a short connection's bye): no frame is waited for
                # any more, so it stays under the limit it is under until on_closed lets go
                conn.data = ACCEPTED
            else:
                conn.data = ACCEPTED
                glue.arm_quiet(conn, glue.idle_s)

    def _flooded(self, conn, why):
        """Too many refused requests (one read's REFUSALS_PER_READ, or the address's): the
        connection ends (on_closed logs it, folded per address). What it was answered so far
        goes out first; what it had stored stays stored."""
        self.glue.apply([Reply(conn.id, error("flood", None, why)),
                         Close(conn.id, "flooded with refused requests")])

    def on_oversize(self, conn):
        # refused too long: no sign of life either (the reactor times the frame it discards)
        self.glue.feed(accepted_event(conn.id, conn.host, None))

    def on_frame_timeout(self, conn):
        """A frame begun too long ago (a slowloris): say so; the reactor closes, on_closed logs."""
        conn.send(encode(error("too_slow")))

    def on_closed(self, conn, reason):
        state, conn.data = conn.data, None
        if state is None:
            return      # refused at a cap: never one of ours
        # the connection lets go of its timer, which refers back to it: freed now, not by the
        # cycle collector (a burst of short connections piled up otherwise)
        glue = self.glue
        if state is not CARRYING:
            glue.stop_quiet(conn)
        _forget(glue, conn)
        host = conn.host
        if reason not in ORDINARY_CLOSES:
            glue.log_repeated((f"connection closed: {reason}", host),
                              f"connection {conn.id} from {host} closed: {reason}")
        actions = glue.core.handle(Closed(conn.id), glue.reactor.clock.now())
        if actions:         # (glue.feed, inline: a short connection's end asks for nothing)
            glue.apply(actions)


def _forget(glue, conn):
    """Accepted `conn` is no longer counted (closed, or shed and about to be), once."""
    if glue.conns.pop(conn.id, None) is not None:
        left = glue.by_address[conn.host] - 1
        if left:
            glue.by_address[conn.host] = left
        else:
            del glue.by_address[conn.host]
