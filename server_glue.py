"""The server's glue: the reactor moves bytes and fires timers, the chat core decides.

ServerGlue feeds ChatServer what the reactor sees (decoded requests, closed connections,
acknowledgements, timers) and carries out its actions: replies on the request's connection,
deliveries to a client's listening port (one connection per session at a time, ended with bye
once every numbered message on it is acknowledged) or on a staying client's own connection,
timers on the reactor's wheel, and log lines. Nothing here knows a chat rule.
"""
import collections
import sys
import time

from protocol import FrameError, decode, encode, error
from reactor import FRAME_TIME_S, Handler
from server import (MAX_CONNECTIONS, Acked, Arm, BadFrame, Closed, Deliver, Expired, Log, Reply,
                    Request, Undelivered, _whole)

IDLE_CONNECTION_S = 60.0      # an accepted connection that sends nothing for this long is closed
DELIVERY_CONNECT_S = 5.0      # how long to try reaching a client's listening port
DELIVERY_ACK_S = 10.0         # a delivery connection silent this long with messages unacknowledged
                              # is given up; the core retries them
DELIVERY_CONNECTS = 256       # delivery connections connecting at once; more wait their turn
DELIVERY_TURN_S = 0.25        # a connect still going after this gives up its turn (not its try):
                              # ports that drop connects (a firewall) must not hold up the others
UNREACHED = ("refused", "timed out", "unreachable")   # close reasons meaning nothing was delivered
ORDINARY_CLOSES = ("bye", "eof", "idle", "server stopping")   # not worth a log line


class _Delivery:
    """One outgoing connection to a client's listening port and the frames it carries.

    There is at most one open per session, so a client gets its messages in order; it ends
    (bye) only once every numbered message on it is acknowledged.
    """

    def __init__(self, address, proof):
        self.address = address
        self.proof = proof
        self.conn = None            # None while it waits for a turn to connect
        self.turn = None            # the timer ending its turn while it connects, else None
        self.frames = []            # everything sent, for a connect that fails outright
        self.unacked = []           # numbered messages sent but not yet acknowledged
        self.ending = False         # an end is scheduled for the end of this pass


class ServerGlue(Handler):
    """Feeds the core what the reactor sees, and carries out the core's actions."""

    def __init__(self, reactor, core, store, log, idle_s=IDLE_CONNECTION_S, commit_each=False,
                 max_connections=MAX_CONNECTIONS, first_frame_s=FRAME_TIME_S,
                 delivery_connects=DELIVERY_CONNECTS):
        self.reactor = reactor
        self.core = core
        self.store = store
        self.log = log
        self.idle_s = idle_s
        self.first_frame_s = first_frame_s    # a new connection that sends nothing is closed
        self.max_connections = max_connections
        self.refused_at_cap = 0               # connections refused in this burst at the cap
        # group commit: one transaction per loop pass, committed before any reply leaves;
        # commit_each (for measuring what that buys) commits after every event instead
        self.commit_each = commit_each
        reactor.before_flush(store.commit)
        self.conns = {}           # id -> accepted connection, for replies
        self.timers = {}          # core key -> reactor Timer
        self.deliveries = {}      # (address, proof) -> _Delivery still taking frames
        # A presence batch to 10,000 short-model users is 10,000 deliveries in one pass: all
        # connecting at once overflowed the clients' accept queues (the kernel retries a
        # second later) and held 10,000 connections' memory at one time. So at most
        # delivery_connects connect at once (for DELIVERY_TURN_S each at most); the others
        # wait, in order, with their frames.
        self.delivery_connects = delivery_connects
        self.connecting = 0
        self.waiting_to_connect = collections.deque()
        self._last_encoded = (None, b"")    # (frame, its bytes): see _encoded

    # -- what the reactor reports ------------------------------------------------------------

    def on_accepted(self, conn):
        if len(self.conns) >= self.max_connections:
            self._refuse_at_cap(conn)
            return
        if self.refused_at_cap:
            self.log(f"below the cap again; refused {self.refused_at_cap} connection(s) at it")
            self.refused_at_cap = 0
        self.conns[conn.id] = conn
        self._arm_idle(conn, self.first_frame_s, "no complete frame")

    def _refuse_at_cap(self, conn):
        """Past the cap a new connection is closed at once, unanswered; logged once per burst."""
        if not self.refused_at_cap:
            self.log(f"{len(self.conns)} connections open, the cap: refusing new ones")
        self.refused_at_cap += 1
        conn.data["at_cap"] = True
        conn.abort("at the connection cap")

    def on_connected(self, conn):
        self._arm_idle(conn)
        delivery = conn.data.get("delivery")
        if delivery is not None:
            self._connected(delivery)

    def on_frame(self, conn, line):
        self._arm_idle(conn)
        if "delivery" in conn.data:
            self._delivery_frame(conn.data["delivery"], line)
            return
        try:
            frame = decode(line)
        except FrameError as exc:
            self.apply(self.core.handle(BadFrame(conn.id, conn.peer[0], exc.code, str(exc)),
                                        self.now()))
            return
        if frame["type"] == "bye":
            conn.close("bye")
            return
        if frame["type"] == "ack":
            self._stay_ack(conn, frame)
            return
        self.apply(self.core.handle(Request(conn.id, frame, conn.peer[0]), self.now()))

    def _stay_ack(self, conn, frame):
        """An ack on a staying connection is for the session whose messages went out on it."""
        seq = frame.get("seq")
        proof = conn.data.get("proof")
        if proof is None or isinstance(seq, bool) or not isinstance(seq, int):
            return      # nothing numbered went out here: there is nothing to acknowledge
        self.apply(self.core.handle(Acked(proof, seq), self.now()))

    def on_oversize(self, conn):
        self._arm_idle(conn)    # it sent something; the reactor times the frame it discards
        if "delivery" not in conn.data:
            self.apply(self.core.handle(BadFrame(conn.id, conn.peer[0], "too_long"), self.now()))

    def on_frame_timeout(self, conn):
        """A frame begun too long ago (a slowloris): say so; the reactor closes, on_closed logs."""
        conn.send(encode(error("too_slow")))

    def on_closed(self, conn, reason):
        # the connection lets go of its delivery and timer, which refer back to it: freed
        # now, not by the cycle collector (a burst of short connections piled up otherwise)
        data, conn.data = conn.data, {}
        if data.get("at_cap"):
            return      # never one of ours; counted in refused_at_cap
        self.conns.pop(conn.id, None)
        idle = data.get("idle")
        if idle is not None:
            idle.cancel()
        delivery = data.get("delivery")
        if delivery is None:
            if reason not in ORDINARY_CLOSES:
                self.log(f"connection {conn.id} from {conn.peer[0]} closed: {reason}")
            self.apply(self.core.handle(Closed(conn.id), self.now()))
            return
        self._connected(delivery)       # if it was still connecting, its turn is over
        if self.deliveries.get((delivery.address, delivery.proof)) is delivery:
            del self.deliveries[(delivery.address, delivery.proof)]
        if reason in UNREACHED:
            self.log(f"cannot reach {delivery.address[0]}:{delivery.address[1]} ({reason})")
            failed = delivery.frames
        else:
            failed = delivery.unacked
        if failed:
            self.apply(self.core.handle(Undelivered(delivery.address, delivery.proof, failed),
                                        self.now()))

    # -- what the core asks for --------------------------------------------------------------

    def apply(self, actions):
        """Carry out a list of core actions (replies leave at the end of the pass)."""
        if self.commit_each:
            self.store.commit()
        for action in actions:
            kind = type(action)
            if kind is Reply:
                conn = self.conns.get(action.conn)
                if conn is not None:
                    conn.send(encode(action.frame))
            elif kind is Deliver:
                self._deliver(action)
            elif kind is Arm:
                self._arm(action.key, action.at)
            elif kind is Log:
                self.log(action.text)

    def _deliver(self, action):
        if action.conn is not None:
            self._push(action)
            return
        key = (action.address, action.proof)
        delivery = self.deliveries.get(key)
        if delivery is None:
            delivery = self.deliveries[key] = _Delivery(action.address, action.proof)
            if self.connecting < self.delivery_connects:
                self._connect(delivery)
            else:
                self.waiting_to_connect.append(delivery)
        delivery.frames.append(action.frame)
        if "seq" in action.frame:
            delivery.unacked.append(action.frame)
        if delivery.conn is not None:
            delivery.conn.send(self._encoded(action.frame))
            self._end_when_done(delivery)

    def _connect(self, delivery):
        """Open the delivery's connection: hello, then every frame it holds so far."""
        host, port = delivery.address
        conn = self.reactor.connect(host, port, self, timeout_s=DELIVERY_CONNECT_S)
        delivery.conn = conn
        delivery.turn = self.reactor.call_later(DELIVERY_TURN_S, self._connected, delivery)
        self.connecting += 1
        conn.data["delivery"] = delivery
        conn.send(encode({"type": "hello", "proof": delivery.proof}))
        for frame in delivery.frames:
            conn.send(self._encoded(frame))
        self._end_when_done(delivery)

    def _connected(self, delivery):
        """The delivery's connect is over (done or failed) or has had its turn: the next
        waiting one may begin."""
        if delivery.turn is not None:
            delivery.turn.cancel()
            delivery.turn = None
            self.connecting -= 1
            if self.waiting_to_connect:
                self._connect(self.waiting_to_connect.popleft())

    def _push(self, action):
        """A frame for a staying client goes on its own connection, hello-free, in order with
        the replies; a connection already gone has told the core (Closed), and what it did not
        acknowledge goes out again at the resume."""
        conn = self.conns.get(action.conn)
        if conn is not None:
            conn.data["proof"] = action.proof   # so that its acks name the session
            conn.send(self._encoded(action.frame))

    def _encoded(self, frame):
        """A delivery's bytes; the core hands one notice to many users as one dict, so the
        last one encoded is kept (a presence batch to 10,000 users is encoded once)."""
        if frame is not self._last_encoded[0]:
            self._last_encoded = (frame, encode(frame))
        return self._last_encoded[1]

    def _delivery_frame(self, delivery, line):
        """A client's listener acknowledges numbered messages; anything else is ignored."""
        try:
            frame = decode(line)
        except FrameError:
            return
        seq = frame.get("seq")
        if frame["type"] != "ack" or isinstance(seq, bool) or not isinstance(seq, int):
            return
        delivery.unacked = [sent for sent in delivery.unacked if sent["seq"] > seq]
        self.apply(self.core.handle(Acked(delivery.proof, seq), self.now()))
        self._end_when_done(delivery)

    def _end_when_done(self, delivery):
        """At the end of this pass (so one pass's frames share the connection), say bye if
        every numbered message is acknowledged; otherwise the next ack tries again."""
        if not delivery.ending:
            delivery.ending = True
            self.reactor.call_soon(self._end_delivery, delivery)

    def _end_delivery(self, delivery):
        """The connecting side ends with bye; the client's listener closes first."""
        delivery.ending = False
        if delivery.unacked or delivery.conn.closing_reason or delivery.conn.closed:
            return
        if self.deliveries.get((delivery.address, delivery.proof)) is delivery:
            del self.deliveries[(delivery.address, delivery.proof)]
        delivery.conn.send(encode({"type": "bye"}))

    def now(self):
        """The core's time: the wall clock, because lockouts and kept replies outlive a restart."""
        return self.reactor.clock.wall()

    def _arm(self, key, at):
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        delay_s = max(0.0, at - self.now())
        self.timers[key] = self.reactor.call_later(delay_s, self._expired, key)

    def _expired(self, key):
        self.timers.pop(key, None)
        self.apply(self.core.handle(Expired(key), self.now()))

    def _arm_idle(self, conn, limit_s=None, reason="idle"):
        """Close `conn` after `limit_s` without a frame. A timer already due no later is kept
        and, when it fires, moved to the time left: one timer per quiet spell, not per frame
        (re-arming on every frame was a tenth of the server's time under load)."""
        data = conn.data
        if limit_s is None:
            waiting_for_acks = "delivery" in data and data["delivery"].unacked
            limit_s = DELIVERY_ACK_S if waiting_for_acks else self.idle_s
        idle_until = self.reactor.clock.now() + limit_s
        data["idle_until"] = idle_until
        data["idle_why"] = (limit_s, reason)
        idle = data.get("idle")
        if idle is not None:
            if idle.active and idle.deadline <= idle_until:
                return
            idle.cancel()
        data["idle"] = self.reactor.call_at(idle_until, self._idle_due, conn)

    def _idle_due(self, conn):
        idle_until = conn.data["idle_until"]
        if self.reactor.clock.now() < idle_until:
            conn.data["idle"] = self.reactor.call_at(idle_until, self._idle_due, conn)
            return
        self._idle(conn, *conn.data["idle_why"])

    def _idle(self, conn, limit_s, reason):
        if reason != "idle":    # hostile or broken, not merely done: told why, and logged
            conn.send(encode(error("too_slow")))
            reason = f"{reason} within {_whole(limit_s)} s"
        conn.close(reason)


def make_logger(clock, stream=None):
    """A log function writing one timestamped line per event to stream (stderr by default)."""
    def log(text):
        out = stream or sys.stderr
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(clock.wall()))
        out.write(f"{stamp} {text}\n")
        out.flush()
    return log
