"""peer.py on its own: the proof, and the corners of the link bookkeeping; then the client glue
carrying links over real sockets on 127.0.0.1."""
import hashlib
import hmac

import pytest

import protocol
from client_events import (Accepted, Arm, EndLink, Fate, Incoming, LinkClosed, LinkIdle, LinkIn,
                           Log, OpenLink, SendOnLink, SendTo, Show, ShowFate, Started,
                           TagLines)
from client_helpers import glue_with
from line_tags import LineTags
from peer import (PEER_IDLE_S, PEER_PROOF_S, PeerAddress, Peers, dialer_mac, dialer_mac_ok,
                  listener_mac)
from reactor import Handler, Reactor
from timers import RealClock
from reactor_helpers import pump

KEY = "k1"


def test_mac_is_hmac_sha256_over_the_label_names_and_nonce():
    expected = hmac.new(b"k1", b"chat-p2p|alice|bob|n1", hashlib.sha256).hexdigest()
    assert dialer_mac(KEY, "alice", "bob", "n1") == expected


def test_dialer_mac_ok_accepts_only_the_exact_proof():
    good = dialer_mac(KEY, "alice", "bob", "n1")
    assert dialer_mac_ok(KEY, "alice", "bob", "n1", good)
    assert not dialer_mac_ok(KEY, "alice", "bob", "n2", good)        # another nonce
    assert not dialer_mac_ok(KEY, "bob", "alice", "n1", good)        # the other direction
    assert not dialer_mac_ok("k2", "alice", "bob", "n1", good)       # another pair's key
    assert not dialer_mac_ok(KEY, "alice", "bob", "n1", None)
    assert not dialer_mac_ok(KEY, "alice", "bob", "n1", good.upper())


def peers_with_link():
    peers = Peers()
    peers.addresses["bob"] = PeerAddress("10.0.0.2", 6001, KEY)
    items = peers.send("alice", "bob", "hi", 0.0, "p1")
    assert OpenLink(1, "10.0.0.2", 6001) in items
    return peers


def test_a_refusal_on_a_link_already_replaced_keeps_the_new_link_and_address():
    peers = peers_with_link()
    peers.link_frame("alice", 1, {"type": "challenge", "nonce": "n"}, 0.0)
    # a new consent arrives: the old link ends, and a new one starts to the new address
    peers.asking["bob"] = 0.0       # (asked again: the server answered our getaddress)
    peers.delivered({"type": "address", "user": "bob", "host": "10.0.0.3", "port": 6002,
                     "key": "k2"})
    peers.send("alice", "bob", "again", 1.0, "p2")
    items = peers.link_frame("alice", 1, protocol.error("not_allowed"), 0.0)
    assert Show("peer_refused", sender="bob") in items
    assert peers.by_user["bob"].id == 2
    assert peers.addresses["bob"] == PeerAddress("10.0.0.3", 6002, "k2")


def test_events_for_links_we_do_not_know_are_ignored():
    peers = Peers()
    assert peers.link_frame("alice", 9, {"type": "ok"}, 0.0) == []
    assert peers.link_closed(9, "eof") == []
    assert peers.link_idle("bob", 100.0) == []


def test_a_closed_link_that_carried_nothing_undelivered_is_only_logged():
    peers = peers_with_link()
    peers.link_frame("alice", 1, {"type": "challenge", "nonce": "n"}, 0.0)
    proof = listener_mac(KEY, "bob", "alice", peers.links[1].nonce)
    assert peers.link_frame("alice", 1, {"type": "ok", "mac": proof}, 0.0)   # "hi" goes out
    peers.link_frame("alice", 1, {"type": "ok"}, 0.0)
    items = peers.link_closed(1, "eof")
    assert [type(item) for item in items] == [Log]
    assert "bob" not in peers.by_user


def test_an_idle_link_waits_while_it_is_used():
    peers = peers_with_link()
    peers.link_frame("alice", 1, {"type": "challenge", "nonce": "n"}, 0.0)
    mac = listener_mac(KEY, "bob", "alice", peers.links[1].nonce)
    peers.link_frame("alice", 1, {"type": "ok", "mac": mac}, 0.0)            # open: both proven
    peers.link_frame("alice", 1, {"type": "ok"}, 0.5)                       # "hi" acknowledged
    assert peers.send("alice", "bob", "more", 30.0, "p2")[0] == Arm(LinkIdle("bob"),
                                                                   30.0 + PEER_PROOF_S)
    peers.link_frame("alice", 1, {"type": "ok"}, 30.5)
    assert peers.link_idle("bob", 30.0 + PEER_PROOF_S)[0].at == 30.0 + PEER_IDLE_S
    items = peers.link_idle("bob", PEER_IDLE_S)
    assert items[0].at == 30.0 + PEER_IDLE_S
    assert peers.link_idle("bob", 30.0 + PEER_IDLE_S) == [EndLink(1)]


def test_an_open_link_whose_peer_stops_answering_is_closed_and_its_messages_told_of():
    """(a trial's peer, stopped or its link black-holed, left a private message at "..." for
    45 to 60 s, until the close after a bye gave up)"""
    peers = peers_with_link()
    peers.link_frame("alice", 1, {"type": "challenge", "nonce": "n"}, 0.0)
    mac = listener_mac(KEY, "bob", "alice", peers.links[1].nonce)
    peers.link_frame("alice", 1, {"type": "ok", "mac": mac}, 2.0)            # "hi" goes out
    peers.link_frame("alice", 1, {"type": "ok"}, 2.5)
    peers.send("alice", "bob", "anyone there?", 20.0, "p2")
    assert peers.link_idle("bob", 29.9)[0].at == 20.0 + PEER_PROOF_S       # (wait some more)
    assert peers.link_idle("bob", 20.0 + PEER_PROOF_S) == [
        EndLink(1, at_once=f"nothing acknowledged in {PEER_PROOF_S:g} s")]
    items = peers.link_closed(1, f"nothing acknowledged in {PEER_PROOF_S:g} s")
    assert Show("no_reply", sender="bob") in items
    assert [(item.ref, item.fate) for item in items if type(item) is ShowFate] == [
        ("p2", Fate.UNSURE)]


def test_forget_all_ends_every_link_and_forgets_everything():
    peers = peers_with_link()
    peers.addresses["carol"] = PeerAddress("10.0.0.4", 7001, "k3")
    peers.send("alice", "carol", "yo", 0.0, "p2")
    peers.grant("dave", "k4")
    assert sorted(peers.forget_all(), key=lambda item: item.link) == [EndLink(1), EndLink(2)]
    assert peers.addresses == {} and peers.granted == {} and peers.by_user == {}
    peers.revoke("nobody")      # revoking what is not there is fine


# -- the glue, over real sockets ----------------------------------------------------------------


class PeerListener(Handler):
    """A stand-in for a peer's listening port: challenges, acknowledges, closes on bye."""

    def __init__(self):
        self.seen = []

    def on_accepted(self, conn):
        conn.send(protocol.encode({"type": "challenge", "nonce": "n1"}))

    def on_frame(self, conn, line):
        frame = protocol.decode(line)
        self.seen.append(frame)
        if frame["type"] == "bye":
            conn.close("bye")
        else:
            conn.send(protocol.encode({"type": "ok"}))


class Scripted:
    """A core that records events and answers some of them."""

    def __init__(self, answers):
        self.answers = answers
        self.seen = []

    def handle(self, event, now):
        self.seen.append(event)
        return self.answers(event)


def make_glue(core):
    glue, _, _ = glue_with(core)
    return glue.reactor, glue


def linked(listener_side, at_challenge, later=()):
    """A stand-in core opens link 1 to `listener_side`, answers its challenge with the actions
    `at_challenge`, and any later frame with `later` (a list, or a function of the frame), until
    the link closes -> (core, glue)."""
    def answers(event):
        if isinstance(event, Started):
            return [OpenLink(1, "127.0.0.1", port)]
        if isinstance(event, LinkIn) and event.frame["type"] == "challenge":
            return list(at_challenge)
        if isinstance(event, LinkIn):
            return later(event.frame) if callable(later) else list(later)
        return []
    core = Scripted(answers)
    reactor, glue = make_glue(core)
    port = reactor.listen("127.0.0.1", 0, listener_side).port
    glue.feed(Started())
    pump(reactor, lambda: any(isinstance(e, LinkClosed) for e in core.seen))
    return core, glue


def test_glue_opens_a_link_sends_on_it_and_ends_it_with_bye():
    listener_side = PeerListener()
    core, glue = linked(listener_side, [
        SendOnLink(1, {"type": "peer_hello", "from": "a", "mac": "m"}),
        SendOnLink(1, {"type": "private", "from": "a", "text": "hi"}),
        EndLink(1), EndLink(1)])                    # a second EndLink says nothing more
    assert [f["type"] for f in listener_side.seen] == ["peer_hello", "private", "bye"]
    assert [e.frame["type"] for e in core.seen if isinstance(e, LinkIn)] == [
        "challenge", "ok", "ok"]
    assert [e for e in core.seen if isinstance(e, LinkClosed)] == [LinkClosed(1, "eof")]
    assert glue.links == {}
    # a closed link takes nothing more, without an error
    glue._send_on_link(SendOnLink(1, {"type": "late"}))
    glue._end_link(EndLink(1))
    assert glue.links == {}


class Chatty(PeerListener):
    """A peer's listener that answers a bye with more talk, and never closes."""

    def on_frame(self, conn, line):
        self.seen.append(protocol.decode(line))
        conn.send(protocol.encode({"type": "ok"}) * 100)


def test_glue_cuts_off_at_once_a_link_ended_so():
    # (peer.py ends it so: the peer talked on after the bye)
    core, glue = linked(Chatty(), [EndLink(1)], later=[EndLink(1, at_once="talked on after bye")])
    assert [e for e in core.seen if isinstance(e, LinkClosed)] == [
        LinkClosed(1, "talked on after bye")]
    assert glue.links == {}


class TaggingListener(PeerListener):
    """A peer's listener that tags its lines once the dialer's hello came (key "k", its
    nonce n1, the dialer's d1), and checks the dialer's; after the first private, a line
    without its tag is added on the way."""

    def __init__(self):
        super().__init__()
        self.tags = None
        self.untagged = []      # the dialer's lines that failed their tag

    def on_frame(self, conn, line):
        if self.tags is None:
            self.seen.append(protocol.decode(line))
            conn.send(protocol.encode({"type": "ok"}))          # (its proof: not checked here)
            self.tags = LineTags("k", "n1", "d1", dialer=False)
            return
        untagged = self.tags.untag(line)
        if untagged is None:
            self.untagged.append(line)
            return
        self.seen.append(protocol.decode(untagged))
        conn.send(self.tags.tag(protocol.encode({"type": "ok"})))
        conn.send(self.added)                                   # added on the way

    added = protocol.encode({"type": "ok"})


class TooLongListener(TaggingListener):
    """... the line added is too long to read, its tag unchecked."""
    added = b"x" * 70_000 + b"\n"


@pytest.mark.parametrize("listener_kind", [TaggingListener, TooLongListener],
                         ids=["untagged", "too-long"])
def test_glue_tags_a_links_lines_once_proven_and_closes_it_at_a_line_without_its_tag(
        listener_kind):
    listener_side = listener_kind()
    oks = []

    def later(frame):
        oks.append(frame)
        if len(oks) > 1:
            return []
        # the listener's proof: from here on, every line is tagged
        return [TagLines(1, "k", "n1", "d1", link=True),
                SendOnLink(1, {"type": "private", "from": "a", "text": "hi"})]
    core, glue = linked(listener_side, [SendOnLink(1, {"type": "peer_hello", "from": "a",
                                                       "nonce": "d1", "mac": "m"})], later)
    assert [f["type"] for f in listener_side.seen] == ["peer_hello", "private"]
    assert listener_side.untagged == []                 # ours were tagged, and right
    # the tagged ok came through; the one added on the way closed the link
    assert oks == [{"type": "ok"}, {"type": "ok"}]
    assert [e for e in core.seen if isinstance(e, LinkClosed)] == [
        LinkClosed(1, "a line without its tag")]


def test_glue_reports_a_peer_that_is_not_there():
    unused = Reactor(RealClock()).listen("127.0.0.1", 0, Handler())
    port = unused.port
    unused.close()
    core = Scripted(lambda e: [OpenLink(4, "127.0.0.1", port)] if isinstance(e, Started) else [])
    reactor, glue = make_glue(core)
    glue.feed(Started())
    pump(reactor, lambda: any(isinstance(e, LinkClosed) for e in core.seen))
    assert [e for e in core.seen if isinstance(e, LinkClosed)] == [LinkClosed(4, "refused")]


def test_glue_turns_an_oversize_frame_on_a_link_into_its_error():
    class Flooder(Handler):
        def on_accepted(self, conn):
            conn.send(b"x" * 70_000 + b"\n")
    core = Scripted(lambda e: [OpenLink(1, "127.0.0.1", port)] if isinstance(e, Started) else [])
    reactor, glue = make_glue(core)
    port = reactor.listen("127.0.0.1", 0, Flooder()).port
    glue.feed(Started())
    pump(reactor, lambda: any(isinstance(e, LinkIn) for e in core.seen))
    assert [e.frame.get("code") for e in core.seen if isinstance(e, LinkIn)] == ["too_long"]


def test_glue_challenges_every_connection_to_the_listening_port_with_a_fresh_nonce():
    core = Scripted(lambda e: [SendTo(e.conn, {"type": "challenge", "nonce": e.nonce})]
                    if isinstance(e, Accepted) else [])
    reactor, glue = make_glue(core)
    port = reactor.listen("127.0.0.1", 0, glue.listening).port
    heard = []

    class Dialer(Handler):
        def on_frame(self, conn, line):
            heard.append(protocol.decode(line))
    for _ in range(2):
        reactor.connect("127.0.0.1", port, Dialer())
    pump(reactor, lambda: len(heard) == 2)
    nonces = [e.nonce for e in core.seen if isinstance(e, Accepted)]
    assert [f["nonce"] for f in heard] == nonces
    assert len(set(nonces)) == 2 and all(len(n) == 32 for n in nonces)
    assert not any(isinstance(e, Incoming) for e in core.seen)
