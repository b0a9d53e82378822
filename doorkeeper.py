"""Who gets in on the client's listening port: the server's deliveries, proven peers, nobody else.

Every accepted connection is challenged with a fresh nonce. The server's delivery connection
proves the session's key with a hello whose MAC answers the nonce, and we prove it back for the
server's nonce (so neither a copied hello nor a stranger on a dead client's port gets anywhere);
a hello that comes before our login's reply waits (held) until that reply gives us the key (the
server sends nothing more until we prove the key back, so a second frame there is refused). A
peer proves its consent key the same way, both ways (peer.py). Anything else is refused: logged,
answered when it is a peer, and closed. Pure state: the core decides what a trusted frame means.
"""
import enum
from dataclasses import dataclass

import protocol
from client_events import CloseConn, Log, SendTo, TagLines
from peer import PeerRefused
from protocol import DELIVERY_CLIENT_LABEL, DELIVERY_SERVER_LABEL, MAX_SEQ


# Links one proven peer may hold open to our port at once: its client uses one, and a second
# covers a reconnect that overlaps the old link. A peer given consent once held all 64 places,
# and the server's delivery connection was refused until it let go (a trial's).
MAX_LINKS_PER_PEER = 2


class Door(enum.Enum):
    NEW = "new"             # nothing proven yet
    HELD = "held"           # a hello that waits for our login's reply
    TRUSTED = "trusted"     # the server's delivery connection
    PEER = "peer"           # a peer that proved its consent key
    REFUSED = "refused"     # closed; anything more is ignored


@dataclass(slots=True)
class Visitor:
    """One accepted connection."""
    door: Door = Door.NEW
    nonce: str | None = None                    # the challenge a peer must answer
    held: dict | None = None                    # a hello that waits for the login's proof
    peer: str | None = None                     # a proven peer, and the key it proved:
    key: str | None = None                      # a new consent does not renew it


@dataclass(frozen=True)
class Delivered:
    """A frame from the server's proven delivery connection `conn`."""
    conn: int
    frame: dict


@dataclass(frozen=True)
class HeadSeen:
    """The server's proven hello says no number above `head` had been given when it came."""
    head: int


@dataclass(frozen=True)
class PrivateIn:
    """A private message from proven peer `sender` on connection `conn`."""
    conn: int
    sender: str
    text: str


@dataclass(frozen=True)
class PeerTurnedAway:
    """A would-be peer was refused: `line` tells the user (anyone can connect, so the client
    says a few of these a minute, not one per connection)."""
    line: str


class Doorkeeper:
    """The accepted connections and what each has proven."""

    def __init__(self, peers):
        self._peers = peers
        self.visitors = {}      # conn -> Visitor (to read; changed only here)

    def accepted(self, conn, nonce):
        """A new connection: challenge it (the server's deliveries ignore the challenge)."""
        self.visitors[conn] = Visitor(nonce=nonce)
        return [SendTo(conn, {"type": "challenge", "nonce": nonce})]

    def closed(self, conn):
        self.visitors.pop(conn, None)

    def servers_open(self):
        """True while a proven delivery connection from the server is open: it closes once
        its messages are acknowledged (the server says bye)."""
        return any(visitor.door is Door.TRUSTED for visitor in self.visitors.values())

    def incoming(self, conn, frame, me, proof, login_pending):
        """A frame on accepted `conn` -> actions, Delivered and PrivateIn items. `me` and
        `proof` are our session's (None when logged out); `login_pending`: a login is on its
        way, whose reply may give the proof a held hello needs."""
        visitor = self.visitors.setdefault(conn, Visitor())
        door = visitor.door
        if door is Door.REFUSED:
            return []
        if door is Door.HELD:     # the server waits for our proof: this is not the server
            return self._refuse(conn, visitor, "a frame after its hello, before our proof")
        if door is Door.TRUSTED:
            return [Delivered(conn, frame)]
        if door is Door.PEER:
            return self._peer_frame(conn, visitor, frame)
        return self._first_frame(conn, visitor, frame, me, proof, login_pending)

    def release(self, me, proof):
        """Our login's reply gave the proof: judge the connections that waited for it."""
        items = []
        for conn, visitor in list(self.visitors.items()):
            if visitor.door is Door.HELD:
                hello, visitor.held, visitor.door = visitor.held, None, Door.NEW
                items += self.incoming(conn, hello, me, proof, login_pending=False)
        return items

    def refuse_held(self):
        """The login they waited for failed: refuse them."""
        return [action for conn, visitor in self.visitors.items() if visitor.door is Door.HELD
                for action in self._refuse(conn, visitor, "the login it waited for failed")]

    def close_peers(self, chosen, session_ended=False):
        """Close the connections of proven peers whose name is `chosen(name)`, telling each
        that its consent ended: a re-attack's peer, whose message crossed a N, was told it
        had perhaps not been delivered, its link closed unsaid, as if our client had frozen.
        `session_ended`: because our session did (a logout, a restart), which the refusal
        says (a trial's peer read that we no longer took its messages, as if we had chosen)."""
        refusal = protocol.error("not_allowed", detail="the consent has ended")
        if session_ended:
            refusal["session_ended"] = True
        actions = []
        for conn, visitor in self.visitors.items():
            if visitor.door is Door.PEER and chosen(visitor.peer):
                visitor.door = Door.REFUSED
                actions += [SendTo(conn, refusal), CloseConn(conn)]
        return actions

    def _first_frame(self, conn, visitor, frame, me, proof, login_pending):
        kind = frame.get("type")
        if kind in ("peer_hello", "private"):
            return self._peer_hello(conn, visitor, frame, me)
        if kind == "hello" and proof is None and login_pending:
            # the server may deliver stored messages before our welcome reply is handled
            visitor.door = Door.HELD
            visitor.held = frame
            return []
        if kind == "hello":
            head = _server_proof(frame, me, visitor.nonce, proof)
            if head is not None:
                visitor.door = Door.TRUSTED
                ours = protocol.mac(proof, DELIVERY_CLIENT_LABEL, visitor.nonce, frame["nonce"])
                return [SendTo(conn, {"type": "ok", "mac": ours}),
                        TagLines(conn, proof, visitor.nonce, frame["nonce"]), HeadSeen(head)]
        if kind == "error":     # our reactor's name for a frame it could not read
            return self._refuse(conn, visitor, f"a bad frame ({frame.get('code')}) before hello")
        return self._refuse(conn, visitor, "no hello with the right proof")

    def _refuse(self, conn, visitor, why):
        visitor.door = Door.REFUSED
        visitor.held = None
        # (keyed: a stranger's flood of connections wrote a line each, a trial's 250)
        return [Log(f"refused delivery connection {conn}: {why}",
                    ("refused delivery connections", why)), CloseConn(conn)]

    def _peer_hello(self, conn, visitor, frame, me):
        try:
            visitor.peer, visitor.key, answer = self._peers.check_hello(me, frame, visitor.nonce)
        except PeerRefused as refusal:
            return self._refuse_peer(conn, visitor, refusal)
        visitor.door = Door.PEER
        # the peer's oldest links give way to its newest (dicts keep the order of arrival)
        links = [other for other, seen in self.visitors.items()
                 if seen.door is Door.PEER and seen.peer == visitor.peer]
        # it proves the key back (the dialer checks us too), and every line after it is tagged
        actions = [SendTo(conn, answer),
                   TagLines(conn, visitor.key, visitor.nonce, frame["nonce"])]
        for old in links[:-MAX_LINKS_PER_PEER]:
            self.visitors[old].door = Door.REFUSED
            actions.append(CloseConn(old))
        return actions

    def peer_link(self, conn):
        """True if accepted `conn` is a proven peer's link (not the server's deliveries)."""
        visitor = self.visitors.get(conn)
        return visitor is not None and visitor.door is Door.PEER

    def _peer_frame(self, conn, visitor, frame):
        if frame.get("type") == "bye":
            return [CloseConn(conn)]
        try:
            text = self._peers.check_private(visitor.peer, visitor.key, frame)
        except PeerRefused as refusal:
            return self._refuse_peer(conn, visitor, refusal)
        return [PrivateIn(conn, visitor.peer, text)]

    def _refuse_peer(self, conn, visitor, refusal):
        """Told (PeerTurnedAway), logged, answered with the refusal's error and closed."""
        visitor.door = Door.REFUSED
        return [PeerTurnedAway(refusal.line),
                Log(f"refused peer connection {conn}: {refusal.why}",
                    ("refused peer connections", refusal.why)),
                SendTo(conn, protocol.error(refusal.code, detail=refusal.detail)),
                CloseConn(conn)]


def _server_proof(hello, me, our_nonce, key):
    """The head a delivery hello says, if it proves `me`'s session key for `our_nonce`;
    else None."""
    theirs, head = protocol.nonce_field(hello), hello.get("head")
    if theirs is None or type(head) is not int or not 0 <= head <= MAX_SEQ:
        return None
    if hello.get("user") != me or not protocol.mac_ok(
            key, hello.get("mac"), DELIVERY_SERVER_LABEL, me, our_nonce, theirs, str(head)):
        return None
    return head
