"""What reaches the client: the server's deliveries (stored messages shown once, in order, and
acknowledged; presence, consents, a shutdown), what the doorkeeper lets in on the listening
port, and private messages to and from peers (whose rules live in peer.py).

`Deliveries` is ChatClient's base class (chat_client.py): it uses the core's session (`user`,
`proof`, `store`, `stage`), peers, doorkeeper, outage and the counts of private messages.
"""
import peer
from client_events import (REQUEST_TIMEOUT_S, CloseConn, Fate, Log, SendTo, Show, ShowFate,
                           ShowSending, Stage)
from commands import presence_notices, shown
from doorkeeper import Delivered, HeadSeen, PeerTurnedAway, PrivateIn
from protocol import CONSENT_S, MAX_SEQ

TURNED_AWAY_PER_S = 0.1     # refused peer connections said: one every 10 s ...
TURNED_AWAY_BURST = 3       # ... after a first 3
# A message numbered more than this above the highest number the server has said it gave is
# refused: numbers grow by one a message, so this is many hours of the busiest server's traffic
# between two heartbeats (each tells the head), and far below a forged "900000000000".
SEQ_SLACK = 2 ** 30


def _is_seq(value):
    """True for a stored message's number: a whole number from 1 to MAX_SEQ."""
    return type(value) is int and 0 < value <= MAX_SEQ


class Deliveries:
    """Deliveries and peers, for ChatClient (see the module)."""

    def _admitted(self, items, out):
        """What the doorkeeper let in, and what it says to do."""
        for item in items:
            if type(item) is Delivered:
                self._delivered(item.conn, item.frame, out)
            elif type(item) is PrivateIn:
                self._private_in(item, out)
            elif type(item) is HeadSeen:
                self._saw_head(item.head)
            elif type(item) is PeerTurnedAway:
                self._turned_away(item.line, out)
            else:
                out.append(item)

    def _turned_away(self, line, out):
        """Say a refused peer connection, but a few a minute at most (TURNED_AWAY_*), with how
        many more there were: anyone can connect to the listening port, and a trial's 300
        connections in a second filled the user's screen with their made-up names."""
        if self._turned_away_said.take(None, self._now):
            self._turned_away_unsaid += 1
            return
        unsaid, self._turned_away_unsaid = self._turned_away_unsaid, 0
        if unsaid:
            line += f" ({unsaid} more connection{'s' if unsaid > 1 else ''} refused before it.)"
        out.append(Show("system", line))

    def _saw_head(self, head):
        """The server says no number above `head` was given when it said so."""
        if _is_seq(head) and head > self.head_seen:
            self.head_seen = head

    def _delivered(self, conn, frame, out):
        kind = frame.get("type")
        if kind == "bye":
            out.append(CloseConn(conn))
        elif kind == "logged_out":
            if self.stage is Stage.LOGGED_IN:
                out.append(shown(frame))
                self._session_lost(out, "the session timed out" if frame.get("reason") ==
                                   "timed_out" else "the account logged in elsewhere, which "
                                                    "ended the session")
        elif kind in ("message", "broadcast") and "seq" in frame:
            self.said_unreached = False     # (reached: a later failure is news again)
            if _is_seq(frame["seq"]):
                self._numbered(conn, frame, out)
            else:
                out.append(Log(f"{kind} with a seq out of range ignored"))
        elif kind == "presence":
            notices = presence_notices(frame, self.user)
            if notices is None:
                out.append(Log("malformed presence delivery ignored"))
            for notice in notices or ():
                self._show(notice, out)
        elif kind in ("message", "broadcast", "listed"):
            if kind == "listed" and frame.get("listed") is False:
                self.peers.unlisted(frame.get("user"))
            self._show(frame, out)
        elif kind in peer.PEER_DELIVERIES:
            self._from_peers(self.peers.delivered(frame, self.proof), out)
        elif kind == "consent_revoked":
            # the user's session ended, or our address never reached it: the key we gave it
            # is void
            self._revoke_consent(frame.get("user"), out)
            unreached = peer.unreached_notice(frame)
            if unreached is not None:
                out.append(unreached)
        elif kind == "shutdown" and not self.exiting:
            # a staying connection's: the server is stopping (an operator's trial's users read
            # only that the server could not be reached); what follows is the outage's
            out.append(Show("system", "The server is shutting down; this client will try to "
                                      "reach it again until it is back."))
            # (the close that follows is not said again in the words of a request cut short:
            # a re-check's "closed before a reply")
            self.outage.announced("the server is shutting down")
            # its grants end with it (they live in its memory): so do ours, now, not when
            # its restart is heard of (a trial's peer was let in 45 s into the outage)
            self._end_consents(out)
        else:
            out.append(Log(f"delivery of unknown type {kind!r} ignored"))

    def _numbered(self, conn, frame, out):
        """A stored message: shown once, in order, whatever the server repeats; acknowledged.

        Sequence numbers only grow, so anything at or below the highest shown is a repeat
        (a redelivery after a lost acknowledgement): acknowledged again, not shown again.
        """
        seq = frame["seq"]
        if seq > self.head_seen + SEQ_SLACK:
            # nothing the server can have numbered yet: a forged or broken delivery. Not shown
            # and not acknowledged, so nothing real behind it is skipped; the server tries again
            out.extend([Log(f"a message numbered {seq}, far beyond the {self.head_seen} the "
                            f"server has given, was refused"), CloseConn(conn)])
            return
        if self.exiting or self.logging_out or self.stage is not Stage.LOGGED_IN:
            # our logout is on its way, or done: an acknowledgement now could come after it,
            # and the next login would show the message again (a trial's script showed one at
            # each of its runs, once after "You have logged out."). Neither shown nor
            # acknowledged, it waits on the server for that login, and is shown once.
            if not self.came_while_leaving:     # (said once: a window's closing said 157)
                self.came_while_leaving = True
                out.append(Log(f"message {seq} came while logging out; it waits for the next "
                               f"login, as any that come after it"))
            return
        if seq > self.backlog_upto:
            self.backlog_upto = seq
            if self.backlog_left:
                self.backlog_left -= 1
        mine = (self.store, self.user)
        if seq > self.shown_upto.get(mine, 0):
            self.shown_upto[mine] = seq
            if seq <= self.login_head and frame.get("offline") is not True:
                # numbered before this login: it waited for it, as a kept one does (one given
                # again, its last session ended before acknowledging it: a reviewer's, held
                # back by a logout, read as just said at a login hours later). By number, not
                # by the clocks, which may differ by minutes
                frame = {**frame, "offline": True}
            self._show(frame, out)
        out.append(SendTo(conn, {"type": "ack", "seq": seq}, acknowledges=True))

    @staticmethod
    def _show(frame, out):
        """A message, broadcast or presence notice -> what the screen shows, or a log line if
        it is malformed."""
        show = shown(frame)
        out.append(show if show is not None
                   else Log(f"malformed {frame['type']} delivery ignored"))

    def _link_idle(self, key, now, out):
        self._from_peers(self.peers.link_idle(key.user, now), out)

    def _from_peers(self, items, out):
        """What peer.py says, each private message it says was not delivered, or perhaps
        not, counted for the exit's status (a trial's script ended 0 under "Not delivered")."""
        for item in items:
            if type(item) is ShowFate and item.fate is Fate.REFUSED:
                self.privates_undelivered += 1
            elif type(item) is ShowFate and item.fate is Fate.UNSURE:
                self.privates_unsure += 1
        out.extend(items)

    def _private(self, command, now, out):
        if self.settings.listen_port is None and not self.no_port_told:
            # we can still dial a peer; only the way back is missing
            self.no_port_told = True
            out.append(Show("no_port"))
        # not sent: counted as refused (a script's status: a trial's ended 0 with its private
        # message never sent)
        if command.user == self.user:       # (getaddress refuses it: no hint to type that)
            self.refused += 1
            out.append(Show("system", "You cannot send a private message to yourself."))
            return
        if command.user not in self.peers.addresses:
            self.refused += 1
            same = [user for user in self.peers.addresses
                    if user.lower() == command.user.lower()]
            if same:
                # (a trial's `private SEAS hi` was told to getaddress SEAS, and that no such
                # user exists: names are told apart by case)
                out.append(Show("system", f"You have the address of {same[0]}, not of "
                                          f"{command.user}: user names are case-sensitive."))
                return
            # (one who agreed without a port: asking again gets the same; say why instead; and
            # one asked, who has not answered: a trial's was told to type getaddress again;
            # unless the answer is long overdue: one that could not reach us comes late, at
            # our next heartbeat, or never, if that fails too)
            asked_at = self.peers.asking.get(command.user)
            # (past the server's consent time by default, it lapsed: ask again)
            asking = asked_at is not None and now - asked_at < CONSENT_S
            out.append(Show("peer_no_port" if command.user in self.peers.portless
                            else "asking" if asking else "no_address", sender=command.user))
            return
        self._private_refs += 1
        ref = f"private-{self._private_refs}"
        out.append(ShowSending(ref, command.user, command.text, private=True))
        out.extend(self.peers.send(self.user, command.user, command.text, now, ref))

    def _private_in(self, item, out):
        out.extend([Show("private", item.text, item.sender),
                    SendTo(item.conn, {"type": "ok"}, acknowledges=True)])

    def _peer_reply(self, command, frame, out):
        """What an ok to a command changes for peers."""
        if command.name == "Y" and isinstance(frame.get("key"), str):
            self.peers.grant(command.user, frame["key"])
        elif command.name == "block":
            # the blocked user's key ends here, so our listener refuses its next private
            self._revoke_consent(command.user, out, blocked=True)
        elif command.name == "N" and frame.get("revoked") is True:
            # our earlier yes is taken back: the key we gave ends, and its links with it
            self._revoke_consent(command.user, out)
        elif command.name == "unblock":
            self.peers.blocked.discard(command.user)

    def _end_consents(self, out):
        """Every consent ends, on both sides (the session did, or the server's grants): the
        addresses and keys we hold, the keys we gave, and the links."""
        out.extend(self.peers.forget_all())
        out.extend(self.doorkeeper.close_peers(lambda name: True, session_ended=True))

    def _consents_lapsed(self, now, out):
        """A try at the server failed: silent past its time-out (and a request's), the server
        has ended the session, and every grant with it; ours end too, rather than let a peer
        in on a key the server no longer knows (a trial's, 45 s into an outage)."""
        if (self.stage is not Stage.LOGGED_IN or self.answered_at is None
                or now - self.answered_at <= self.server_timeout_s + REQUEST_TIMEOUT_S
                or not (self.peers.granted or self.peers.addresses or self.peers.by_user)):
            return
        out.append(Show("system", f"The server has not answered for {now - self.answered_at:.0f} "
                                  f"s, past a session's time-out: the private talks you agreed "
                                  f"to end here (agree again once it is back)."))
        self._end_consents(out)

    def _revoke_consent(self, user, out, blocked=False):
        self.peers.revoke(user, blocked)
        out.extend(self.doorkeeper.close_peers(lambda name: name == user))
