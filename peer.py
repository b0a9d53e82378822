"""Peer to peer: private messages sent straight to another client's listening port.

The server gives an address only by consent, with a random key known to the two users alone
(PROTOCOL.md, "Peer to peer"). This module holds the pure parts of the client's side: the proofs
both peers give, the book of addresses and keys, the listener's checks, and the outgoing links
with their queues. It reads no clock and touches no socket: `Peers` methods return the client
core's actions (client_events.py). A private message never goes through the server: one that
cannot be delivered is reported, with the way to send it as an ordinary message.

One link, from the dialer A to B's listening port; each side proves the key before trusting:
    B -> {"type":"challenge","nonce":Nb}                    on accept, fresh for every connection
    A -> {"type":"peer_hello","from":A,"nonce":Na,"mac":M}  M = HMAC(key, "chat-p2p|A|B|Nb")
    B -> {"type":"ok","mac":L}                              L = HMAC(key, "chat-p2p-listener|B|A|Na"),
         or an error not_allowed and B closes
    A -> {"type":"private","from":A,"text":T}               only once L is right; each answered
                                                            {"type":"ok"}, in order
    A -> {"type":"bye"}                                     after PEER_IDLE_S unused; B closes
"""
import enum
import secrets
from collections import deque
from dataclasses import dataclass, field

from client_events import (Arm, AskConsent, ConsentLapsed, EndLink, Fate, LinkIdle, Log, OpenLink,
                           SendOnLink, Show, ShowFate, TagLines)
import protocol
from protocol import MAX_NAME_CHARS, MAX_TEXT_CHARS

# A link unused this long is ended with bye by the dialer. It is shorter than the listener's
# 60 s idle close, so the connecting side ends it, as everywhere in the protocol.
PEER_IDLE_S = 50.0
PEER_CONNECT_S = 5.0            # how long to try reaching a peer's listening port
# A listener that has not proven itself this long after the link was opened is given up (a
# stopped client, or a port that takes connections and says nothing): its messages are
# reported, however many more the user types meanwhile.
PEER_PROOF_S = 10.0
MAC_LABEL = "chat-p2p"          # keeps a link proof from meaning anything anywhere else ...
LISTENER_LABEL = "chat-p2p-listener"    # ... and the listener's proof from passing for one
MAX_HOST_CHARS = 253            # the longest host name DNS allows
# The server's deliveries that Peers.delivered handles.
ANSWERS = ("address", "address_refused", "address_lapsed", "address_unavailable")
PEER_DELIVERIES = ("consent_request", "consent_lapsed", "address", "address_refused",
                   "address_lapsed", "address_revoked", "address_unavailable")


def dialer_mac(key, sender, receiver, nonce):
    """The dialer's proof that `sender` knows the pair's `key`, good for `receiver`'s `nonce`
    only: hex."""
    return protocol.mac(key, MAC_LABEL, sender, receiver, nonce)


def dialer_mac_ok(key, sender, receiver, nonce, given):
    """True if `given` is dialer_mac(key, sender, receiver, nonce), compared in constant time."""
    return protocol.mac_ok(key, given, MAC_LABEL, sender, receiver, nonce)


def listener_mac(key, listener, dialer, nonce):
    """The listener's proof back: that `listener` knows the key too, for the dialer's nonce."""
    return protocol.mac(key, LISTENER_LABEL, listener, dialer, nonce)


def _notice(text):
    return Show("system", text)


class PeerRefused(Exception):
    """The listener refuses a connection: `line` tells the listening user, `why` the log, and
    the error `code` (with `detail`, its words) the peer."""

    def __init__(self, why, line, code="not_allowed", detail=""):
        super().__init__(why)
        self.why = why
        self.line = line
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class PeerAddress:
    """Where a peer listens, and the key its consent gave us."""
    host: str
    port: int
    key: str


class LinkState(enum.Enum):
    CONNECTING = "connecting"       # no challenge yet
    PROVING = "proving"             # our hello went out; the listener has yet to prove itself
    OPEN = "open"                   # both proven: private messages go out
    ENDING = "ending"               # bye said; the peer closes it
    REFUSED = "refused"             # the peer's listener refused our proof


@dataclass
class Link:
    """One outgoing connection to a peer, and the private messages it carries."""
    id: int
    user: str
    address: PeerAddress
    used_at: float
    opened_at: float = 0.0
    state: LinkState = LinkState.CONNECTING
    nonce: str | None = None                        # our challenge to the listener
    their_nonce: str | None = None                  # and the listener's to us
    # (ref, text) of the user's private messages: a ShowFate tells the screen what became of
    # each by its ref
    waiting: list = field(default_factory=list)     # to send once both are proven
    unacked: deque = field(default_factory=deque)   # sent, in order, not yet acknowledged
    answered_at: float = 0.0        # when the oldest of them went, or the peer last answered
                                    # (it has PEER_PROOF_S from then to acknowledge the next)


UNANSWERED = f"nothing acknowledged in {PEER_PROOF_S:g} s"     # why a link we end so closes


def _not_delivered(link, messages, why_kind, why, sent=(), unsent_why=None, at_exit=False):
    """What the screen is told of `messages` (ref, text) that `link` will not deliver, and
    of those `sent` that its peer never acknowledged (it may have shown them: a trial's
    stopped peer did, after "Not delivered"): why (a Show of `why_kind`, unless None: said
    already), each one's fate (`unsent_why` for `messages`, when not `why`), and that
    `message` can take them instead. `at_exit`: the client is leaving, so each line says its
    own why, and there is no later to send them again."""
    if not messages and not sent:
        return []
    unsent_why = unsent_why or why

    def line(said, reason):
        return f"{said} to {link.user}{f' ({reason})' if at_exit else ''}"
    return [*([Show(why_kind, sender=link.user)] if why_kind is not None else []),
            *[ShowFate(ref, Fate.UNSURE, f"{line('Perhaps not delivered', why)}: {text}", why,
                       at_exit) for ref, text in sent],
            *[ShowFate(ref, Fate.REFUSED, f"{line('Not delivered', unsent_why)}: {text}",
                       unsent_why, at_exit) for ref, text in messages],
            *([] if at_exit else [Show("try_message", sender=link.user)])]


def unreached_notice(frame):
    """The line for a consent_revoked that says the address never reached its asker, or
    None."""
    user = _short_name(frame.get("user"))
    if user is None or frame.get("unreached") is not True:
        return None
    return _notice(f"Your address could not be given to {user}: their client did not take "
                   f"it. {user} may ask again.")


def _short_name(value):
    """`value` if it can be a user's name (no spaces or control characters: a stranger's
    "name" is shown to the user); None otherwise."""
    if (isinstance(value, str) and value and len(value) <= MAX_NAME_CHARS
            and protocol.name_chars_ok(value)):
        return value
    return None


class Peers:
    """The client's peer-to-peer state: whom it may dial, who may dial it, and its links."""

    def __init__(self, make_nonce=lambda: secrets.token_hex(16)):
        self._make_nonce = make_nonce   # our challenges to listeners
        self.addresses = {}     # user -> PeerAddress: whom we may dial, by their consent
        self.portless = set()   # who agreed, but whose client has no listening port to dial
        self.granted = {}       # user -> key: who may dial us, by our consent
        self.blocked = set()    # users whose consent a block of ours ended, this session
        self.asking = {}        # user our getaddress asked, who has not answered -> when
        self.asked_by = {}      # users waiting for our Y or N, the first asked first (as a set)
        self.refused_by = set()     # users whose listener's refusal of our link was said
        self.links = {}         # link id -> Link, until it is closed
        self.by_user = {}       # user -> the open or connecting Link new messages use
        self._ids = 0

    # -- consent, as the server reports it ---------------------------------------------------

    def delivered(self, frame, proof=None):
        """A server delivery about addresses -> items; [] when it is not one of ours. `proof`:
        the session's, which opens a sealed key."""
        kind = frame.get("type")
        user = _short_name(frame.get("user"))
        asked = user in self.asking
        if kind in ANSWERS:
            self.asking.pop(user, None)     # an answer to our question, or its end
        if kind == "consent_request":
            asker = _short_name(frame.get("from"))
            if asker is None:
                return [Log("malformed consent_request ignored")]
            self.asked_by.pop(asker, None)
            self.asked_by[asker] = None
            return [AskConsent(asker)]
        if user is None:
            return [Log(f"malformed {kind} delivery ignored")]
        if kind == "consent_lapsed":
            self.asked_by.pop(user, None)
            return [ConsentLapsed(user, frame.get("left") is True)]
        if kind == "address":
            return self._learn_address(user, frame, proof, asked)
        if kind == "address_refused":
            return [_notice(f"{user} refused to give you their address.")]
        if kind == "address_unavailable":
            self.portless.add(user)
            return [Show("peer_no_port", sender=user)]
        if kind == "address_lapsed" and frame.get("left") is True:
            # (its session ended: a logout, or a login elsewhere, which a trial's user read
            # as a logout of someone still online)
            return [_notice(f"{user} logged out, or logged in again, before answering your "
                            f"request for their address.")]
        if kind == "address_lapsed" and frame.get("lost") is True:
            # (a trial's client, stopped as the answer came, was never told, and was told to
            # wait for the agreement that had come)
            return [_notice(f"{user} answered your request for their address, but the answer "
                            f"could not reach this client. Type getaddress {user} to ask "
                            f"again.")]
        if kind == "address_lapsed" and frame.get("unreached") is True:
            return [_notice(f"{user} could not be asked for their address: their client did "
                            f"not take the question. Ask again later.")]
        if kind == "address_lapsed":
            return [_notice(f"{user} did not answer your request for their address.")]
        # address_revoked: the user logged out or in again, so the address may be stale; or
        # took back its yes (a re-attack's window said they had logged out), which is said
        # even when we forgot the address first, unless its listener's refusal said so
        void = "address_taken_back" if frame.get("taken_back") is True else "address_void"
        self.portless.discard(user)     # (its next client may listen: ask again)
        if user not in self.addresses:
            if void == "address_taken_back" and user not in self.refused_by:
                return [Show(void, sender=user)]
            # (its refusal said it already: a re-attack's user read both, every time)
            self.refused_by.discard(user)
            return [Log(f"address of {user} revoked; we had none")]
        return [Show(void, sender=user), *self._void(user)]

    def _learn_address(self, user, frame, proof, asked):
        """An address the server gave: taken only for a user we asked, and with the key
        sealed when the session has a proof (its deliveries cross in plain TCP). A security
        review's forged address, its key in clear, for a user never asked, was taken, and the
        user's private messages went to the forger, who could prove the key it chose."""
        if not asked:
            return [Log(f"address of {user}, whom we did not ask, ignored")]
        host, port, key = frame.get("host"), frame.get("port"), frame.get("key")
        if isinstance(proof, str):
            key = protocol.unseal(frame.get("sealed"), proof, protocol.ADDRESS_KEY_LABEL, user,
                                  str(frame.get("salt")))
        if not (isinstance(host, str) and 0 < len(host) <= MAX_HOST_CHARS
                and isinstance(key, str) and key and type(port) is int and 0 < port < 65536):
            return [Log("malformed address delivery ignored")]
        items = self.forget_address(user)      # a link to the old address ends
        self.addresses[user] = PeerAddress(host, port, key)
        self.refused_by.discard(user)
        self.portless.discard(user)
        return [*items, Show("address", f"{host} {port}", user)]

    def forget_address(self, user):
        """Stop dialing `user`: drop the address and end the link to it -> items."""
        self.addresses.pop(user, None)
        link = self.by_user.get(user)
        return self._end(link) if link is not None else []

    def _void(self, user):
        """`user`'s address is no longer valid (it logged out, or in again) -> items: it is
        forgotten, and what waits for a link to it not yet open is not delivered, said now:
        that link's close may come long after, from a stopped peer, and it said "Connect
        failed" of a connection that was taken (a trial's, 20 s after the address was void)."""
        link = self.by_user.get(user)
        messages = []
        if link is not None and link.state is not LinkState.OPEN:
            messages, link.waiting = link.waiting, []
        return [*self.forget_address(user),
                *_not_delivered(link, messages, None, f"{user}'s address is no longer valid")]

    def unlisted(self, user):
        """A block between us and `user` began: an agreement of theirs without an address
        ended with it, unsaid (a re-attack's client went on saying "no listening port" after
        `user` came back with one)."""
        if isinstance(user, str):
            self.portless.discard(user)

    def grant(self, user, key):
        """We agreed: `user` may dial us, proving itself with `key`."""
        self.granted[user] = key

    def revoke(self, user, blocked=False):
        """Our consent for `user` ends (block, or its session ended)."""
        self.granted.pop(user, None)
        if blocked:
            self.blocked.add(user)      # (its next try is told why: check_hello)

    def answered(self, user):
        """Our Y or N to `user` is on its way: it waits for it no more."""
        self.asked_by.pop(user, None)

    def forget_all(self):
        """Logged out: every address, key and link goes -> items."""
        items = []
        for link in list(self.by_user.values()):
            items += self._end(link)
        self.addresses.clear()
        self.portless.clear()
        self.granted.clear()
        self.blocked.clear()
        self.asking.clear()
        self.asked_by.clear()
        self.refused_by.clear()
        return items

    def holding(self):
        """How many private messages the links in use hold, not yet sent or not acknowledged:
        the input's end waits for them, as for the server's (a trial's script that ended just
        after a private message had it reported not delivered, or perhaps not, or refused
        by the peer as its logout ended the consent, though the peer showed it). Each is
        settled within PEER_PROOF_S, by an acknowledgement or a report (link_idle); a link
        already ending is not waited for (its close may take as long again: a re-attack's
        20 s), and what it holds is said at the exit (left_undelivered)."""
        return sum(len(link.waiting) + len(link.unacked) for link in self.by_user.values())

    def left_undelivered(self):
        """The client exits: what its links hold, not yet sent or not acknowledged, is said
        now -> ShowFates (a link's close comes after the exit, never heard: a trial's quit lost
        a private message without a word)."""
        items = []
        for link in self.links.values():
            items += _not_delivered(link, list(link.waiting), None,
                                    "you quit before it was acknowledged",
                                    sent=list(link.unacked),
                                    unsent_why="you quit before it went", at_exit=True)
            link.unacked.clear()
            link.waiting.clear()
        return items

    # -- the listening side -------------------------------------------------------------------

    def check_hello(self, me, frame, nonce):
        """The first peer frame on an accepted connection -> (peer, key, our answer, which
        proves the key back for the dialer's nonce), or PeerRefused."""
        if frame.get("type") != "peer_hello":
            raise PeerRefused("no proof", "Refused a private message from a peer that did "
                                          "not prove who it is.")
        sender, mac = _short_name(frame.get("from")), frame.get("mac")
        theirs = protocol.nonce_field(frame)
        if sender is None or not isinstance(mac, str) or theirs is None:
            raise PeerRefused("malformed hello",
                              "Refused a private connection: its hello was malformed.")
        key = self.granted.get(sender)
        if key is None and sender in self.blocked:
            # (a trial's blocker read "you have not agreed", having agreed before the block)
            raise PeerRefused("no consent",
                              f"Refused a private connection from someone claiming to be "
                              f"{sender}: you blocked {sender}, which ended your agreement.")
        if key is None:
            raise PeerRefused("no consent",
                              f"Refused a private connection from someone claiming to be "
                              f"{sender}: you have not agreed to a private talk with {sender}.")
        # a hello copied from another connection was made for another nonce, so it fails here
        if not nonce or not dialer_mac_ok(key, sender, me, nonce, mac):
            raise PeerRefused("wrong proof",
                              f"Refused a private connection from someone claiming to be "
                              f"{sender}: the proof of identity was wrong.")
        return sender, key, {"type": "ok", "mac": listener_mac(key, me, sender, theirs)}

    def check_private(self, peer, key, frame):
        """A frame from proven `peer` (who proved `key`) -> the text to show, or PeerRefused."""
        text = frame.get("text")
        if frame.get("type") == "error" and frame.get("code") == "too_long":
            # (the line was longer than any frame may be, and thrown away: a re-attack's was
            # answered that it was not a private message)
            raise PeerRefused("too long", f"Refused a private message from {peer}: longer "
                                          f"than a line may be.", "too_long")
        if (frame.get("type") != "private" or frame.get("from") != peer
                or not isinstance(text, str) or not text):
            # (answered not_allowed, a trial's peer read that its consent had ended)
            raise PeerRefused("broke the protocol",
                              f"Refused a private connection from {peer}: "
                              f"it broke the peer protocol.", "bad_field",
                              f"not a private message with text from {peer}")
        if len(text) > MAX_TEXT_CHARS:
            # (no client sends one: a trial's peer sent 60,000 characters, and they were shown)
            raise PeerRefused("too long",
                              f"Refused a private message from {peer}: longer than "
                              f"{MAX_TEXT_CHARS:,} characters, which no chat client sends.",
                              "bad_field",
                              f"'text' is longer than {MAX_TEXT_CHARS} characters")
        if self.granted.get(peer) != key:
            raise PeerRefused("consent ended",
                              f"Refused a private message from {peer}: you no longer agree "
                              f"to a private talk with {peer}.")
        return text

    # -- the dialing side ---------------------------------------------------------------------

    def send(self, me, user, text, now, ref):
        """Send a private `text` to `user`, whose address we hold -> items; `ref` names it in
        the ShowFate that says whether the peer took it."""
        items = []
        link = self.by_user.get(user)
        if link is None:
            self._ids += 1
            link = Link(self._ids, user, self.addresses[user], now, opened_at=now)
            self.links[link.id] = link
            self.by_user[user] = link
            items += [OpenLink(link.id, link.address.host, link.address.port),
                      Arm(LinkIdle(user), now + PEER_PROOF_S)]
        link.used_at = now
        if link.state is LinkState.OPEN:
            if not link.unacked:        # (the first to wait for an answer: PEER_PROOF_S from now)
                link.answered_at = now
                items.append(Arm(LinkIdle(user), now + PEER_PROOF_S))
            items.append(self._private(me, link, ref, text))
        else:
            link.waiting.append((ref, text))
        return items

    def _private(self, me, link, ref, text):
        """Send one on the open link; its peer has PEER_PROOF_S to acknowledge it (link_idle)."""
        link.unacked.append((ref, text))
        return SendOnLink(link.id, {"type": "private", "from": me, "text": text})

    def link_frame(self, me, link_id, frame, now):
        """A frame from the peer on one of our links at `now` -> items."""
        link = self.links.get(link_id)
        if link is None:
            return []
        kind = frame.get("type")
        if kind == "challenge" and link.state is LinkState.CONNECTING \
                and protocol.nonce_field(frame) is not None:
            return self._challenged(me, link, frame["nonce"])
        if kind == "ok" and link.state is LinkState.PROVING:
            return self._proven(me, link, frame.get("mac"), now)
        if kind == "ok" and link.unacked:
            ref, _ = link.unacked.popleft()
            link.answered_at = now
            return [ShowFate(ref, Fate.SENT)]
        if kind == "error" and frame.get("code") == "not_allowed":
            return self._refused(link, frame.get("session_ended") is True)
        note = Log(f"unexpected {kind!r} on the link to {link.user}")
        if link.state not in (LinkState.CONNECTING, LinkState.PROVING, LinkState.OPEN):
            # already ending, and the peer talks on where it should close: cut off now, once
            # said (a trial's peer streamed 11 MB of "ok" after the bye, a log line each)
            return [Log(note.text, key=("a peer talked on after bye", link.user)),
                    EndLink(link.id, at_once="talked on after bye")]
        # not our peer's listener, or one that broke the protocol: closed at once, nothing
        # said to it (a bye waited 10 s for its close, and the user with it: a trial's); what
        # it has not acknowledged is reported as the link closes, its address not tried again
        self._forget_address_of(link)
        return [note, *self._end(link, at_once=f"unexpected {kind!r}")]

    def _challenged(self, me, link, nonce):
        """The listener's challenge: prove the key, and challenge it back."""
        link.nonce, link.their_nonce = self._make_nonce(), nonce
        link.state = LinkState.PROVING
        return [SendOnLink(link.id, {"type": "peer_hello", "from": me, "nonce": link.nonce,
                                     "mac": dialer_mac(link.address.key, me, link.user, nonce)})]

    def _proven(self, me, link, mac, now):
        """The listener's answer: only one that knows the key too gets the messages."""
        if not protocol.mac_ok(link.address.key, mac, LISTENER_LABEL, link.user, me, link.nonce):
            self._forget_address_of(link)       # (whoever holds that port now is not our peer)
            return [Log(f"the listener at {link.address.host}:{link.address.port} did not "
                        f"prove it is {link.user}'s: nothing sent to it"),
                    *self._end(link, at_once="its proof was wrong")]
        link.state = LinkState.OPEN
        link.answered_at = now
        waiting, link.waiting = link.waiting, []
        return [TagLines(link.id, link.address.key, link.their_nonce, link.nonce, link=True),
                *(self._private(me, link, ref, text) for ref, text in waiting)]

    def _refused(self, link, session_ended=False):
        """The peer's listener does not accept our proof, or ends an open link: its consent
        has ended (`session_ended`: with its session, a logout or a restart, not by choice)."""
        ended_by_us = link.state is LinkState.ENDING
        link.state = LinkState.REFUSED
        # not taken, and not tried again: the notice says how to ask again, and each message
        # is given back, with how to leave it on the server instead, as for a link that broke
        messages = [*link.waiting, *link.unacked]
        link.waiting.clear()
        link.unacked.clear()
        if self.by_user.get(link.user) is link:
            del self.by_user[link.user]
        self._forget_address_of(link)
        note = Log(f"{link.user}'s listener refused our link")
        if ended_by_us and not messages:
            # we were ending it: its address was void or taken back, and that was said (a
            # trial's user read that a message was not accepted, after every one was shown)
            return [note]
        # (else the refusal is said even with nothing to give back: a stopped client may
        # never hear of a yes taken back but by it)
        self.refused_by.add(link.user)
        kind, why = (("peer_left", f"{link.user}'s session ended") if session_ended else
                     ("peer_refused", f"{link.user} no longer takes your private messages"))
        return [note, *(_not_delivered(link, messages, kind, why) or [Show(kind,
                                                                             sender=link.user)])]

    def _forget_address_of(self, link):
        """The address `link` was made to is not tried again (a newer one is kept)."""
        if self.addresses.get(link.user) == link.address:
            del self.addresses[link.user]

    def link_closed(self, link_id, reason):
        """A link is gone -> items: what it did not deliver is reported, never sent another
        way (the server must not see a private message unless its user sends it there)."""
        link = self.links.pop(link_id, None)
        if link is None:
            return []
        if self.by_user.get(link.user) is link:
            del self.by_user[link.user]
        if link.unacked:
            # sent on a link that was open: the peer took them, and did not acknowledge them;
            # it stopped answering (our time-out), or the link broke (closed, reset, a line
            # without its tag): not "stopped or busy" for those (a trial's killed peer was)
            kind = "no_reply" if reason == UNANSWERED else "link_broke"
            return [Log(f"link to {link.user} closed ({reason})"),
                    *_not_delivered(link, link.waiting, kind,
                                    f"{link.user}'s client did not acknowledge it",
                                    sent=link.unacked,
                                    unsent_why="the link closed before it was sent")]
        return [Log(f"link to {link.user} closed ({reason})"),
                *_not_delivered(link, link.waiting, "unreachable",
                                f"{link.user}'s client could not be reached")]

    def link_idle(self, user, now):
        """The idle timer of `user`'s link is due -> items: end it, or wait some more."""
        link = self.by_user.get(user)
        if link is None:
            return []
        if link.state is not LinkState.OPEN:
            proof_due = link.opened_at + PEER_PROOF_S
            if now < proof_due:
                return [Arm(LinkIdle(user), proof_due)]
            # what waits is reported now, as not answered: its connect was taken, so "Connect
            # failed" was wrong, and the close after the bye may wait as long again for a peer
            # that is stopped (a trial's 12 s)
            messages, link.waiting = link.waiting, []
            return [Log(f"{user}'s listener at {link.address.host}:{link.address.port} did not "
                        f"prove itself within {PEER_PROOF_S:g} s: nothing sent to it"),
                    *self._end(link), *_not_delivered(link, messages, "no_answer",
                                                      f"{user}'s client did not answer")]
        if link.unacked and now >= link.answered_at + PEER_PROOF_S:
            # a peer that took the connection and stopped answering (stopped, or its link
            # black-holed): what it has not acknowledged is said now, not when the close after
            # a bye gives up (a trial's 45 to 60 s of "..." without a word)
            return self._end(link, at_once=UNANSWERED)
        due = link.used_at + PEER_IDLE_S
        if link.unacked:
            due = min(due, link.answered_at + PEER_PROOF_S)
        if now < due:
            return [Arm(LinkIdle(user), due)]
        return self._end(link)

    def _end(self, link, at_once=None):
        """Say bye (or close it now, `at_once` saying why); messages still unacknowledged are
        reported when the link closes."""
        link.state = LinkState.ENDING
        del self.by_user[link.user]     # only a connecting or open link is ended: it is there
        return [EndLink(link.id, at_once)]
