"""The server core's sessions: a name checked, a login (its password, the lockout, the limits
on checks), the session it starts and how it ends (a logout, another login elsewhere, the
time-out), a heartbeat, and a staying client's resume on a new connection.

`Logins` is ChatServer's base class (chat_server.py): it uses the core's accounts
(`_passwords`, `_checker`, `_lockouts`), limits, settings, store, sessions (`_sessions`,
`_users`), shares, consents, the answers owed (`_owed`), the unreached ports, the idle check's
due time, its `_account_field`, `_writable` and `_slow_down`, and its other parts'
`_presence_change`, `_reach`, `_tell`, `_send_waiting` and `_answers_owed`.
"""
import math
import sys

import limits
import protocol
from protocol import MAX_REASON_CHARS, whole
from server_events import Arm, Close, IdleCheck, Log, TimeQuiet
from server_replies import Refused, reply_to
from sessions import Session, shown_address

IDLE_CHECK_LATE_S = 0.5     # a time-out check this late found the server held up (_idle_check)
IDLE_GRACE_S = 2.0          # then the silent get this long for what waits unread to be read


def _port_field(frame):
    """frame["port"] if it is an int in 1..65535, else FrameError."""
    return protocol.int_field(frame, "port", 1, 65535)


def _stay_fields(frame):
    """A login's (stay, port): port may be left out (None) only by a client that stays."""
    stay = protocol.flag_field(frame, "stay", False)
    if stay and frame.get("port") is None:
        return stay, None   # no listening port: reached on its connection, never peer to peer
    return stay, _port_field(frame)


class Logins:
    """Sessions, for ChatServer (see the module)."""

    def _check_user(self, request, frame_id, now):
        self._account_field(request.frame, "user")
        return [reply_to(request.conn, frame_id, {"type": "ok"})]

    def _spend_check(self, user, host, now):
        """Spend a hashed-password check of `user`'s, `host`'s and everyone's, or raise
        slow_down. Each is spent only once all three have one: a name's checks spent by a
        login its address then turned away let an address that kept its own checks spent
        (its accounts' right passwords) keep any name from logging in, nothing counted (a
        trial's); the address's were not spent while everyone's were gone."""
        wait_s = self._name_checks.check(user, now)
        who = f"logins as {self._account_named(user, 'an unknown name')}"
        if not wait_s:
            wait_s, who = self._all_checks.check(None, now), "logins"
        if not wait_s:
            wait_s, who = self._address_checks.take(host, now), f"logins from {host}"
        if not wait_s:
            self._name_checks.take(user, now)
            self._all_checks.take(None, now)
        if wait_s:
            raise self._slow_down(who, wait_s, now, f"too many logins just now; try again in "
                                                    f"{limits.wait_text(wait_s)} s")

    def _login(self, request, frame_id, now):
        frame = request.frame
        user = protocol.name_field(frame, "user")
        password = protocol.text_field(frame, "password", self._settings.max_text_chars)
        stay, port = _stay_fields(frame)
        # the client run's id, which its mids begin with: its counter is kept however long it
        # was silent (a client retries its oldest message for as long as it runs)
        client = frame.get("client")
        if client is not None:
            client = protocol.text_field(frame, "client", protocol.MAX_ID_CHARS)
        self._one_session_per_connection(request.conn)
        # A login writes (a wrong password is counted): while nothing can be, none is tried, so
        # a right password and a wrong one get the same answer
        self._writable()
        # Failed logins are limited per address too: guessing across many names from one
        # address is slowed, and the password is not even checked meanwhile.
        wait_s = self._failed_logins.check(request.host, now)
        if wait_s:
            raise self._slow_down(f"failed logins from {request.host}", wait_s, now,
                                  f"too many failed logins from your address; try again in "
                                  f"{limits.wait_text(wait_s)} s")
        if user not in self._passwords:
            # no password is checked for a name no account has: unknown names from 800
            # addresses took the checks everyone shares (a trial's), and check_user tells
            # which names exist anyway, as the original's "Invalid username" did
            self._failed_logins.take(request.host, now)
            raise Refused("unknown_user")
        # A blocked name stays blocked whatever the password, and trying does not count.
        left_s = self._lockouts.locked_for(user, now)
        if left_s:
            raise Refused("locked", seconds=math.ceil(left_s))
        if self._checker.hashing:
            self._spend_check(user, request.host, now)
        # the password compared in constant time (passwords.py)
        if not self._checker.check(user, password):
            self._failed_logins.take(request.host, now)
            attempts_left = self._lockouts.fail(user, now)
            if attempts_left == 0:
                raise Refused("too_many_attempts", durable=True,
                              seconds=whole(self._settings.lockout_s))
            raise Refused("wrong_password", durable=True, attempts_left=attempts_left)
        self._lockouts.clear(user)
        # the account's own name string (interned as the accounts were read, passwords.py),
        # not the copy this login decoded: the session keeps it as long as it lives
        user = sys.intern(user)
        return self._start_session(request.conn, frame_id, user, request.host, port, now, stay,
                                   client, request.irc)

    def _one_session_per_connection(self, conn, session=None):
        """Refuse (already_logged_in) a login, or `session`'s resume, on a staying connection
        that carries another session: a second login there left the first online to everyone,
        its token good, until its time-out, and another's resume left it unreachable (trials')."""
        carried = self._sessions.by_conn.get(conn)
        if carried is not None and carried is not session:
            raise Refused("already_logged_in")

    def _start_session(self, conn, frame_id, user, host, port, now, stays=False, client=None,
                       irc=False):
        old = self._users.get(user)
        token = self._make_secret()
        if self._instance:
            token = f"{self._instance}.{token}"
        # the proof is the session's key: deliveries to its listening port prove it (and
        # never send it). A staying session is reached on its connection alone, so it has
        # none (nor an entry in by_proof: 106 bytes of each idle staying user)
        proof = None if stays else self._make_secret()
        session = Session(user, token, proof, host, port, now, stays=stays)
        # the store and head let a client tell a new store from the one it knew, and a
        # number far beyond any given (PROTOCOL.md, "Guaranteed delivery"); `waiting`, how
        # many messages wait for this login, lets a script's client show them before it
        # logs out
        store = self._store
        welcome = {"type": "welcome", "user": user, "token": session.token}
        if proof is not None:
            welcome["proof"] = proof
        # `timeout`: a client heartbeats within it (a trial's server ran with --timeout 5, and
        # every client on the usual 30 s lost its session)
        welcome.update(store=store.identity, head=store.head, waiting=store.count_waiting(user),
                       timeout=whole(self._settings.timeout_s))
        # (an IRC user stays connected too, but the operator reading the log wants to know
        # which port it came by)
        staying = " by IRC" if irc else ", staying connected" if stays else ""
        # (one account's logins churned from a few addresses wrote two lines each, a trial's
        # 18,000 in 10 s; another's logged in and out, 5,855 in 10 s: folded per account and
        # address; a first login is not, and costs no tally of its own)
        churned = (f"{user} logged in again" if old is not None else
                   f"{user} logs in and out" if user in self._presence.held else None)
        actions = [Log(f"{user} logged in from {shown_address((host, port))}{staying}",
                       churned and (churned, host)),
                   reply_to(conn, frame_id, welcome)]
        if old is None:
            actions += self._presence_change(user, online=True, now=now)
        else:
            # The user stays online, so the others see no presence change.
            ended = self._end_session(user, "elsewhere")
            actions.append(Log(f"{user} logged in elsewhere; ended the session at "
                               f"{shown_address(old.address)}",
                               (f"{user} took its session over", host)))
            if old.conn != conn:
                # (not on the very connection the new login came on: that is the new one's)
                actions += self._reach(old, {"type": "logged_out", "reason": "elsewhere"})
            actions += ended
        self._sessions.add(session)
        self._shares.forget(user)           # (what waited for it goes out now)
        if stays:
            self._sessions.attach(session, conn)
        actions += self._send_waiting(session)
        if self._idle_check_due is None:
            # (armed, it is due no later than this session's time-out: at the oldest's)
            self._idle_check_due = now + self._settings.timeout_s
            actions.append(Arm(IdleCheck(), self._idle_check_due))
        # client ids silent for a day retry nothing, but the one logging in (which a day's
        # suspend or outage left silent, its oldest message perhaps taken): their counters go
        self._store.senders.forget_before(user, now - self._settings.counters_kept_s, client)
        return actions

    def _end_session(self, user, why=None):
        """End `user`'s session (`why`, unless by its logout) and the consents it took part
        in; returns the notices, and a TimeQuiet for the staying connection it leaves."""
        session = self._sessions.end(user, why)
        self._owed.pop(user, None)
        self._ports_unreached.discard(session.proof)
        notices = self._consents.end(user)
        actions = [action for to, frame in notices for action in self._tell(to, frame)] \
            if notices else []
        if session.conn is not None:
            actions.append(TimeQuiet(session.conn))
        return actions

    def _heartbeat(self, session, request, frame_id, now):
        """Every request of a session, this one too, has moved its last_seen to `now`
        (_on_request). The answer says how far the log has come, and that messages wait that
        its listening port did not take (a delivery failed, and nothing was acknowledged
        since: an operator's trial's client behind NAT heard nothing for minutes, and nobody
        knew but the log); answers owed go again."""
        reply = {"type": "ok", "head": self._store.head}
        if session.proof in self._ports_unreached:
            reply["unreached"] = True
        return [reply_to(request.conn, frame_id, reply), *self._answers_owed(session)]

    def _resume(self, session, request, frame_id, now):
        """The session's client is back on a new staying connection: reach it there, and
        send again everything it has not acknowledged, from the oldest, in order."""
        if not session.stays:
            # A short-model session resumed on a short connection waited, once that closed,
            # for a resume that never came, its listening port unused (a trial's).
            raise Refused("bad_field", "token: that session logged in without \"stay\"; it is "
                                       "reached at its listening port and takes no resume")
        self._one_session_per_connection(request.conn, session)
        left = session.conn
        self._sessions.attach(session, request.conn)
        # A connection it leaves (still open, say) is reset: what is queued on it all comes
        # again here. Kept open, each held up to a window's 2 MiB for its 60 s of quiet: a
        # trial's 881 resumes left 1.5 GB in the system's socket buffers.
        reset = [Close(left, "the session resumed on another connection", drop=True)
                 ] if left is not None and left != request.conn else []
        return [Log(f"{session.user} resumed the session on connection {request.conn}"),
                reply_to(request.conn, frame_id, {"type": "ok", "head": self._store.head}),
                *reset, *self._send_waiting(session), *self._answers_owed(session)]

    def _logout(self, session, request, frame_id, now):
        reason = request.frame.get("reason")
        if reason is not None:
            reason = protocol.text_field(request.frame, "reason", MAX_REASON_CHARS)
        ended = self._end_session(session.user)
        user = session.user
        return [Log(f"{user} logged out", (f"{user} logs in and out", session.host)
                    if user in self._presence.held else None),
                reply_to(request.conn, frame_id, {"type": "ok"}),
                *self._presence_change(session.user, online=False, now=now, reason=reason),
                *ended]

    def _idle_check(self, key, now):
        """End every session silent for the time-out, longest silent first, and arm the one
        check again for the next to come due. The time-out is one constant, so the sessions
        in order of last request (sessions.by_user) are in order of time-out too: only the
        front is read, and one timer does for every user.

        A check that comes IDLE_CHECK_LATE_S past its time found the server away (stopped
        with Ctrl-Z, paused, a pass held up by a slow disk): the heartbeats sent meanwhile may
        wait unread in its sockets, or be connections not yet accepted (after a stop, the
        select() that waited for this check returns none: Python retries it only while time
        is left, PEP 475). So it ends nobody, and checks again IDLE_GRACE_S later, once they
        are read; that check ends the silent, however late it comes. (A trial's 3 s Ctrl-Z of
        the server near the heartbeats' time logged every user out, their heartbeats refused
        as no_session on the next read.)
        """
        timeout_s = self._settings.timeout_s
        late_s = now - self._idle_check_due if self._idle_check_due is not None else 0.0
        oldest = self._sessions.longest_silent()
        self._idle_grace = (late_s > IDLE_CHECK_LATE_S and not self._idle_grace
                            and oldest is not None and now >= oldest.last_seen + timeout_s)
        if self._idle_grace:
            self._idle_check_due = now + IDLE_GRACE_S
            return [Log(f"the time-out check came {late_s:.1f} s late (the server was held up): "
                        f"silent sessions end {whole(IDLE_GRACE_S)} s from now, once what "
                        f"waits to be read is read"), Arm(key, self._idle_check_due)]
        timed_out = []
        for session in self._users.values():
            # The same sum as the armed time, so a timer firing exactly then ends the session.
            if now < session.last_seen + timeout_s:
                break
            timed_out.append(session.user)
        actions = []
        try:
            for user in timed_out:
                # told at once where it can be (a trial's staying client, its connection
                # open, heard of it only at its next heartbeat, 25 s later)
                told = self._reach(self._users[user], {
                    "type": "logged_out", "reason": "timed_out", "seconds": whole(timeout_s)})
                ended = self._end_session(user, "timed_out")
                actions += [*told,
                            Log(f"{user} timed out after {whole(timeout_s)} s without a request"),
                            *self._presence_change(user, online=False, now=now,
                                                   reason="timed out"), *ended]
        except Exception:
            # (a bug: the check is armed again by the next login, not never, and the glue
            # logs it; a reviewer's injected one had ended time-outs for everyone, for good)
            self._idle_check_due = None
            raise
        oldest = self._sessions.longest_silent()
        self._idle_check_due = None if oldest is None else oldest.last_seen + timeout_s
        if oldest is not None:
            actions.append(Arm(key, self._idle_check_due))
        return actions
