"""Delivery connections: the ones the server opens to clients' listening ports (the original's
connection model), each proving the session both ways, then carrying frames until the core says
nothing on it awaits an acknowledgement, then bye. At most one per session, so a client gets its
messages in order.

Their descriptors are bounded. At most `sockets` are open at once, and at most `connects` of
those are connecting (each for DELIVERY_TURN_S at most of its turn: a presence batch to 10,000
users of this model, all connecting at once, overflowed the clients' accept queues). The rest
wait their turn, in order, with their frames.

A listening port that accepts and never answers, or drops connects, must not hold the server's
descriptors: a trial's 6,000 such sessions held 5,188 of them, deliveries to everyone else took
seconds, and heartbeats waited for a descriptor to be accepted on. So at the cap, a connection
that has made no progress for DELIVERY_STALL_S while others wait is given up (its messages are
retried later, with backoff, as after any failed delivery). Progress is a step of the
handshake or an acknowledgement of more than before, nothing else: a listener that sent a frame
every few seconds, or acknowledged the same number again and again, held its connection for
ever, and the connections of one such session, each left open after its bye, took all 512 (the
listener has DELIVERY_BYE_S to close after bye, and is not heard meanwhile). Deliveries wait in
lines, served in turn: to listeners that took everything they were last sent, to those not yet
tried (a message before notices only), and to those whose last delivery failed. So 6,000 sessions whose ports never
answer delay neither the ones that do nor a user who has just logged in (whose login's
presence notice to each of them waits behind its first message).
"""
import collections
import enum
import itertools
import secrets

from limits import REFUSALS_PER_READ
from line_tags import LineTags
from protocol import Numbered, delivery_hello, delivery_proven, encode
from reactor import Handler
from server_events import UNREACHED, Undelivered, delivery_event

DELIVERY_SOCKETS = 512        # delivery connections open at once; more wait their turn
DELIVERY_CONNECTS = 256       # ... and of those, connecting at once
DELIVERY_CONNECT_S = 5.0      # how long to try reaching a client's listening port
DELIVERY_TURN_S = 0.25        # a connect still going after this gives up its turn (not its try):
                              # ports that drop connects (a firewall) must not hold up the others
DELIVERY_STALL_S = 1.0        # at the socket cap, one this long without progress is given up
DELIVERY_BYE_S = 2.0          # after our bye, the listener closes within this, or we do
DELIVERY_ACK_S = 10.0         # a delivery connection stays open only while messages on it await
                              # their acknowledgement: silent this long, it is given up and the
                              # core retries them
REMEMBERED = 16384            # listeners remembered as proven, or as failed (the oldest
                              # forgotten past it)
# the lines deliveries wait in, the first served first: to listeners that took everything they
# were last sent; to those not yet tried, a message first, then notices only; to those whose
# last delivery failed
PROVEN, UNTRIED, NOTICES, FAILED = range(4)


class Handshake(enum.Enum):
    """How far a delivery connection is in proving the session, both ways (PROTOCOL.md)."""
    CHALLENGE = "waiting for the listener's challenge"
    PROOF = "waiting for the listener's proof"
    OPEN = "open"


class Delivery:
    """One outgoing connection to a client's listening port and the frames it carries."""
    __slots__ = ("user", "address", "proof", "conn", "turn", "waiting", "ending", "said_bye",
                 "handshake", "nonce", "their_nonce", "given_up", "acked", "line", "tags")

    def __init__(self, user, address, proof):
        self.user = user
        self.address = address
        self.proof = proof          # the session's key: it proves the session, never sent
        self.conn = None            # None while it waits for a turn to connect
        self.turn = None            # the timer ending its turn while it connects, else None
        self.waiting = []           # frames to write once both sides are proven
        self.ending = False         # a check for its end is scheduled for the end of this pass
        self.said_bye = False       # ended normally: what it carried was acknowledged
        self.handshake = Handshake.CHALLENGE
        self.nonce = None           # our challenge to the listener, and its to us
        self.their_nonce = None
        self.given_up = False       # closed at the socket cap, stalled: its socket is closing
        self.acked = 0              # the highest number acknowledged on it
        self.line = None            # the line it waits in to connect (see DeliveryLinks)
        self.tags = None            # once both sides are proven, every line is tagged

    @property
    def key(self):
        return (self.address, self.proof)

    def where(self):
        """Its listening port as "host:port", for the log."""
        return f"{self.address[0]}:{self.address[1]}"


class DeliveryLinks(Handler):
    """Every delivery connection, and the handler of their sockets. `glue` (server_glue's)
    feeds the core what they bring, times their silences and writes the log."""

    def __init__(self, glue, sockets=DELIVERY_SOCKETS, connects=None):
        self.glue = glue
        self.reactor = glue.reactor
        self.sockets = sockets
        self.connects = min(DELIVERY_CONNECTS, sockets) if connects is None else connects
        self.by_key = {}            # (address, proof) -> Delivery still taking frames
        self.connecting = 0
        # open sockets -> when each last made progress, the oldest first (a dict keeps the
        # order things went in: progress takes one out and puts it back at the end)
        self.open = {}
        self.giving_up = 0          # given up at the cap and not yet closed: still held
        # waiting to connect, in order, in four lines (PROVEN, UNTRIED, NOTICES, FAILED)
        self.lines = tuple(collections.deque() for _ in range(4))
        # keys of listeners that took everything they were last sent, and of those whose last
        # delivery failed, the oldest first
        self.proven, self.failed = {}, {}
        self._room_timer = None     # while stalled ones may be given up later for those waiting

    def queued(self):
        """How many deliveries wait to connect."""
        return sum(map(len, self.lines))

    def _queue(self, delivery, line):
        delivery.line = line
        self.lines[line].append(delivery)

    def _next_waiting(self):
        """The delivery to connect next, taken off its line."""
        for line in self.lines:
            if line:
                delivery = line.popleft()
                delivery.line = None
                return delivery
        return None

    def send(self, user, address, proof, frame):
        """Deliver `frame` to the session's listening port: on its open connection, or once
        one is made and proven."""
        key = (address, proof)
        delivery = self.by_key.get(key)
        if delivery is None:
            if type(frame) is Numbered and self.glue.core.retrying(proof):
                # handed out before a failed delivery to the session was heard of (the same
                # pass, say): it goes again from the store, in order, with what that one
                # carried. Alone on a new connection, ahead of them, its acknowledgement
                # (cumulative) said they had come too (a lossy network's replay lost them)
                return
            delivery = self.by_key[key] = Delivery(user, address, proof)
            if key in self.proven:
                line = PROVEN
            elif key in self.failed:
                line = FAILED
            else:   # (a login's presence notice to thousands must not hold up a message)
                line = UNTRIED if type(frame) is Numbered else NOTICES
            self._queue(delivery, line)
            self._connect_waiting()
        elif delivery.line == NOTICES and type(frame) is Numbered:
            # one that waited with notices moves up (once: a scan of the line, not a pass's)
            self.lines[NOTICES].remove(delivery)
            self._queue(delivery, UNTRIED)
        if delivery.handshake is Handshake.OPEN:
            delivery.conn.send(delivery.tags.tag(self.glue.encoded(frame)))
            self._end_when_done(delivery)
        else:
            delivery.waiting.append(frame)

    # -- turns and the socket cap --------------------------------------------------------------

    def _connect_waiting(self):
        """Connect those waiting, proven listeners' first, while the caps allow. At the
        socket cap, give up stalled ones for them: their room comes when they have closed."""
        while self.connecting < self.connects and self.queued():
            if len(self.open) + self.giving_up < self.sockets:
                self._connect(self._next_waiting())
            else:
                self._give_up_stalled(self.queued() - self.giving_up)
                return

    def _give_up_stalled(self, wanted):
        """Close up to `wanted` open delivery connections that have made no progress for
        DELIVERY_STALL_S, the oldest first; if none has yet, look again when the oldest will
        have."""
        now = self.reactor.clock.now()
        for delivery, last in list(itertools.islice(self.open.items(), max(0, wanted))):
            if now - last < DELIVERY_STALL_S:
                if self._room_timer is None:
                    self._room_timer = self.reactor.call_at(last + DELIVERY_STALL_S,
                                                            self._room_due)
                return
            del self.open[delivery]
            delivery.given_up = True
            self.giving_up += 1
            if delivery.conn.connecting:
                delivery.conn.abort("stalled")      # (its port never reached: UNREACHED)
            else:
                # connected, and silent since: a stopped client's, which is no sign of NAT (a
                # review's: told "unreached", such a client was told to stay connected)
                self._cut_off(delivery, "silent at the socket cap",
                              f"connected, nothing heard for {DELIVERY_STALL_S:g} s, given up "
                              f"for a delivery that waits")

    def _room_due(self):
        self._room_timer = None
        self._connect_waiting()

    def _progress(self, delivery):
        """The delivery's connection has connected, taken a step of the handshake or brought
        an acknowledgement of more: newest in the order, and its quiet limit starts again."""
        if self.open.pop(delivery, None) is not None:
            self.open[delivery] = self.reactor.clock.now()
        self.glue.arm_quiet(delivery.conn, DELIVERY_ACK_S)

    def _connect(self, delivery):
        """Open the delivery's connection; its frames wait for the handshake."""
        host, port = delivery.address
        conn = self.reactor.connect(host, port, self, timeout_s=DELIVERY_CONNECT_S)
        conn.data = delivery
        delivery.conn = conn
        delivery.turn = self.reactor.call_later(DELIVERY_TURN_S, self._turn_over, delivery)
        self.connecting += 1
        self.open[delivery] = self.reactor.clock.now()

    def _turn_over(self, delivery):
        """The delivery's connect is over (done or failed) or has had its turn: the next
        waiting one may begin."""
        if delivery.turn is not None:
            delivery.turn.cancel()
            delivery.turn = None
            self.connecting -= 1
        self._connect_waiting()

    # -- proving the session, carrying frames, the end ---------------------------------------

    def _handshake(self, delivery, line):
        """One step of proving the session both ways: the listener's challenge gets our hello;
        its proof back opens the connection for every frame waiting. Anything else closes it
        (the core hears Undelivered and tries again later)."""
        conn = delivery.conn
        if delivery.handshake is Handshake.CHALLENGE:
            delivery.nonce = secrets.token_hex(16)
            answered = delivery_hello(delivery.user, delivery.proof, line, delivery.nonce,
                                      self.glue.store.head)
            if answered is None:
                conn.close("no challenge from the listener")
                return
            hello, delivery.their_nonce = answered
            conn.send(encode(hello))
            delivery.handshake = Handshake.PROOF
            return
        if not delivery_proven(delivery.proof, line, delivery.their_nonce, delivery.nonce):
            where = delivery.where()
            # (folded: a trial's 300 accounts naming one such listener wrote 1,695 lines)
            self.glue.log_repeated(("a listener that did not prove its session", where),
                                   f"the listener at {where} did not prove the session: "
                                   f"nothing delivered to it")
            conn.close("the listener did not prove the session")
            return
        delivery.handshake = Handshake.OPEN
        tags = delivery.tags = LineTags(delivery.proof, delivery.their_nonce, delivery.nonce,
                                        dialer=True)
        waiting, delivery.waiting = delivery.waiting, []
        for frame in waiting:
            conn.send(tags.tag(self.glue.encoded(frame)))
        self._end_when_done(delivery)

    def _end_when_done(self, delivery):
        """At the end of this pass (so one pass's frames share the connection), say bye if
        nothing on it awaits an acknowledgement; otherwise the next ack tries again."""
        if not delivery.ending:
            delivery.ending = True
            self.reactor.call_soon(self._end, delivery)

    def _end(self, delivery):
        """The connecting side ends with bye; the client's listener closes first."""
        delivery.ending = False
        conn = delivery.conn
        if conn is None or conn.closing_reason or delivery.handshake is not Handshake.OPEN \
                or self.glue.core.awaits_ack(delivery.proof):
            return      # gone, going, not yet proven, or still waiting for an acknowledgement
        key = delivery.key
        if self.by_key.get(key) is delivery:
            del self.by_key[key]
        delivery.said_bye = True
        _remember(self.proven, key)
        self.failed.pop(key, None)
        conn.send(delivery.tags.tag(encode({"type": "bye"})))
        # its listener closes first; what it says meanwhile is not heard, nor holds it open
        self.glue.arm_quiet(conn, DELIVERY_BYE_S, "no close after bye")

    # -- the sockets' handler ------------------------------------------------------------------

    def on_connected(self, conn):
        delivery = conn.data
        self._progress(delivery)
        self._turn_over(delivery)

    def on_frames(self, conn, lines):
        """A client's listener proves the session, then acknowledges numbered messages, each
        line tagged (line_tags.py: one without its tag ends the connection); anything else is
        ignored (and is no sign of progress), but REFUSALS_PER_READ of it in one read end the
        connection."""
        delivery = conn.data
        glue = self.glue
        ignored = 0
        for line in lines:
            if conn.closing_reason is not None or conn.closed:
                return
            if delivery.said_bye:
                return      # (it is to close: nothing it says now counts)
            if delivery.handshake is not Handshake.OPEN:
                self._progress(delivery)
                self._handshake(delivery, line)
                continue
            line = delivery.tags.untag(line)
            if line is None:
                self._cut_off(delivery, "a line without its tag",
                              "a line without the tag that proves the session (changed on the "
                              "way?)")
                return
            event = delivery_event(delivery.proof, line)
            if event is not None and event.seq > delivery.acked:
                delivery.acked = event.seq
                self._progress(delivery)
                glue.feed(event)
                self._end_when_done(delivery)
                continue
            ignored += 1
            if ignored >= REFUSALS_PER_READ:
                self._cut_off(delivery, "flooded with frames that were not acknowledgements",
                              f"{REFUSALS_PER_READ} frames that were not acknowledgements in "
                              f"one read")
                return

    def _cut_off(self, delivery, reason, said):
        """Abort the delivery's connection for `reason`, logged as `said` (once a burst per
        listener): what it carried unacknowledged is delivered again."""
        conn, where = delivery.conn, delivery.where()
        self.glue.log_repeated((f"a delivery connection {reason}", where),
                               f"delivery connection {conn.id} to {where} closed: {said}")
        conn.abort(reason)

    def on_frame(self, conn, line):
        self.on_frames(conn, [line])

    def on_oversize(self, conn):
        """A line too long to read: from a proven listener, one whose tag cannot be checked
        ends the connection, as one without its tag does (a re-attack's, added on the way,
        was dropped unsaid); before, it is no step of the handshake, which times out."""
        delivery = conn.data
        if delivery is not None and delivery.tags is not None and not delivery.said_bye:
            self._cut_off(delivery, "a line without its tag",
                          "a line too long to check its tag (changed on the way?)")

    def on_closed(self, conn, reason):
        # the connection and its delivery refer to each other: let go now, not at the cycle
        # collector's leisure
        delivery, conn.data = conn.data, None
        delivery.conn = None
        glue = self.glue
        glue.stop_quiet(conn)
        if delivery.given_up:
            self.giving_up -= 1
        else:
            self.open.pop(delivery, None)
        key = delivery.key
        if self.by_key.get(key) is delivery:
            del self.by_key[key]
        if reason in UNREACHED:
            where = delivery.where()
            glue.log_repeated((f"cannot reach a listening port ({reason})", where),
                              f"cannot reach {where} ({reason})")
        if not delivery.said_bye:
            self.proven.pop(key, None)      # its next delivery waits with the failed ones
            _remember(self.failed, key)
            unsent = tuple(frame for frame in delivery.waiting if type(frame) is not Numbered)
            glue.feed(Undelivered(delivery.address, delivery.proof, reason, unsent))
        self._turn_over(delivery)           # if it was still connecting, its turn is over


def _remember(keys, key):
    """Put `key` last in `keys` (a dict kept in the order keys came), forgetting the oldest
    past REMEMBERED."""
    keys.pop(key, None)
    keys[key] = None
    if len(keys) > REMEMBERED:
        del keys[next(iter(keys))]
