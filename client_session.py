"""The client's session once logged in: its heartbeats (within the server's time-out, sooner for
a staying connection), a staying link's resume on a new connection, and its end (a logout, a
time-out, a login elsewhere, a restart), said in the user's words, a script stopping there.

`SessionKeeping` is ChatClient's base class (chat_client.py): it uses the core's settings,
session (`stage`, `user`, `token`, `proof`, `store`), requests (`_request`, `_stale`), timers
(`_arm`, `_cancel`), outbox, outage, peers and doorkeeper (`_end_consents`), the login's
`_script_stops` and `_kept_for_next_login`, and deliveries' `_saw_head` and `_admitted`.
"""
from client_events import REQUEST_TIMEOUT_S, HeartbeatDue, Log, Prompt, Show, Stage
from client_requests import Purpose
from commands import error_code, error_text, shown
from protocol import MIN_HEARTBEAT_S
from words import plural

HEARTBEAT_S = 30.0          # the server ends a session silent for 31 s
# A staying connection that died without a word (a NAT's mapping dropped) is found only by a
# request's missing reply, REQUEST_TIMEOUT_S after it: heartbeats every 30 s found it 40 s
# after the last request, past the server's 31 s, and every such session was lost (a trial's).
# At 15 s, or sooner for a shorter time-out, the resume comes within it, STAY_MARGIN_S early
# (the connection made again, at its first try 1 s on).
STAY_HEARTBEAT_S = 15.0
STAY_MARGIN_S = 5.0
UNREACHED_WORDS = ("Messages wait for you that the server cannot deliver: it cannot connect to "
                   "this client's listening port (behind NAT or a firewall, say). Quit, and "
                   "start the client with --stay-connected (make client ... STAY=1): it takes "
                   "them on its own connection.")
MAX_TIMEOUT_S = 10 ** 9     # a welcome's time-out past this is no number to heed


def heartbeat_within(asked_s, timeout_s):
    """The heartbeat's period for a server that ends a session silent for `timeout_s` (its
    welcome's): as asked, but a second under the time-out at most, as the original's 30 s are
    under its 31 (half of a time-out under 2 s), and never under MIN_HEARTBEAT_S: a server
    run with `--timeout 0.05` had its clients spend their rate on heartbeats (a trial's). A
    welcome without one: as asked."""
    timeout_s = _time_out_said(timeout_s)
    if timeout_s is None:
        return asked_s
    within = timeout_s - 1 if timeout_s >= 2 else timeout_s / 2
    return min(asked_s, max(within, MIN_HEARTBEAT_S))


def staying_heartbeat(period_s, timeout_s):
    """A staying client's heartbeat: `period_s` (within the welcome's `timeout_s` already),
    but no later than a dead connection can be found (REQUEST_TIMEOUT_S after a heartbeat
    into it) and resumed before the time-out; never under MIN_HEARTBEAT_S."""
    timeout_s = _time_out_said(timeout_s) or HEARTBEAT_S + 1    # (none said: the original's)
    found_in_time = timeout_s - REQUEST_TIMEOUT_S - STAY_MARGIN_S
    return min(period_s, STAY_HEARTBEAT_S, max(MIN_HEARTBEAT_S, found_in_time))


def _time_out_said(timeout_s):
    """A welcome's `timeout` if it is a number of seconds to heed, else None (NaN too)."""
    if type(timeout_s) not in (int, float) or not 0 < timeout_s <= MAX_TIMEOUT_S:
        return None
    return timeout_s


class SessionKeeping:
    """The session's life, for ChatClient (see the module)."""

    def _logged_in(self, frame, now, out):
        self.stage = Stage.LOGGED_IN
        self.logged_in_once = True
        self.session_user = self.user
        # a run of notices is one session's ("seas is offline" said to one user was never said
        # to the next user of the same client: a trial's piped run)
        self._run_notices.clear()
        self.said_unreached = False     # (said once a session: a re-check's second wasn't)
        self.came_while_leaving = False
        self.token = frame.get("token")
        self.proof = frame.get("proof")
        self.store = frame.get("store") if isinstance(frame.get("store"), str) else None
        head = frame.get("head")
        self._saw_head(head)
        self.login_head = head if type(head) is int and head >= 0 else 0
        waiting = frame.get("waiting")
        self.backlog_left = waiting if type(waiting) is int and waiting > 0 else 0
        self.backlog_upto = 0
        self.drain = None               # (each login's backlog is read before its end)
        self.last_request_at = now
        self.server_timeout_s = _time_out_said(frame.get("timeout")) or HEARTBEAT_S + 1
        self.heartbeat_s = heartbeat_within(self.settings.heartbeat_s, frame.get("timeout"))
        if self.settings.stay:
            self.heartbeat_s = staying_heartbeat(self.heartbeat_s, frame.get("timeout"))
        out.append(Show("system", "You have successfully logged in."))
        self._arm(HeartbeatDue(), now + self.heartbeat_s, out)
        self._admitted(self.doorkeeper.release(self.user, self.proof), out)
        self._outbox_after_login(now, out)

    def _heartbeat_due(self, key, now, out):
        if self.stage is not Stage.LOGGED_IN or self.exiting:
            return
        # any request with our token is a sign of life, so a heartbeat is due only after silence
        due_at = self.last_request_at + self.heartbeat_s
        if now >= due_at and self.detached:
            self._resume(now, out)      # a resume the server refused is tried again
            due_at = now + self.heartbeat_s
        elif now >= due_at:
            # late past the server's time-out (the client was stopped, the computer asleep):
            # a no_session now is a time-out, and says so (_session_ended)
            late = now - self.last_request_at > self.heartbeat_s + 1
            self.silent_s = now - self.last_request_at if late else None
            self.last_request_at = now
            self._request(Purpose.HEARTBEAT, {"type": "heartbeat", "token": self.token}, out,
                          blocks_input=False)
            due_at = now + self.heartbeat_s
        self._arm(HeartbeatDue(), due_at, out)

    def _reply_heartbeat(self, pending, frame, now, out):
        if not self._stale(pending) and error_code(frame) == "no_session":
            self._session_ended(out, frame)
        self._saw_head(frame.get("head"))
        if frame.get("unreached") is True and not self.said_unreached and not self._stale(
                pending):
            # the server cannot connect to our listening port: said once (again after a
            # delivery comes), not left to the server's log (an operator's trial's student,
            # behind NAT, heard nothing for minutes)
            self.said_unreached = True
            out.append(Show("system", UNREACHED_WORDS))

    def _resume(self, now, out):
        self.last_request_at = now
        self._request(Purpose.RESUME, {"type": "resume", "token": self.token}, out,
                      blocks_input=False)

    def _reply_resume(self, pending, frame, now, out):
        if self._stale(pending):
            return
        if error_code(frame) == "no_session":
            self._session_ended(out, frame)     # timed out meanwhile, or the server restarted
        elif frame.get("type") == "ok":
            self.detached = False
            self.outbox.fresh_start()
            self._saw_head(frame.get("head"))
            out.append(Log("the session resumed on a new connection"))
        else:
            # (slow_down, say) the next heartbeat is a resume instead, until one is taken
            out.append(Log(f"resume refused: {error_text(frame)}"))

    def _fail_quietly(self, pending, now, out):
        """A heartbeat or resume that failed: the next heartbeat tries again; without a
        staying link (whose reconnections look for the server), 1 s later, doubling up to a
        heartbeat's time (an idle user's client said "retrying in 29 s", and went on saying it
        with the server back: a trial's)."""
        if (pending.purpose is Purpose.HEARTBEAT and self.stage is Stage.LOGGED_IN
                and not self.exiting and not self.settings.stay):
            wait_s = min(self.outage.next_probe_s(), self.heartbeat_s)
            self.last_request_at = now + wait_s - self.heartbeat_s   # (due then)
            self._arm(HeartbeatDue(), now + wait_s, out)

    def _logged_out(self, out):
        out.append(Show("system", "You have logged out."))
        self._say_waiting(out)      # (a logout is no place to lose them without a word)
        self._back_to_username(out)

    def _say_waiting(self, out):
        """Say how many messages the session leaves unacknowledged, and what becomes of them."""
        waiting = len(self.outbox.entries)
        if waiting:
            out.append(Show("system", f"The server has not acknowledged "
                                      f"{plural(waiting, 'message')} yet: sent again at your "
                                      f"next login as "
                                      f"{self.session_user}, or listed if you quit first."))

    def _session_ended(self, out, frame=None):
        reason = frame.get("reason") if frame is not None else None
        if frame is not None and frame.get("restarted") is True:
            out.append(Show("system", "The server has restarted, which ended your session. "
                                      "Please log in again."))
            why = "the server restarted, which ended the session"
        elif reason == "elsewhere":
            # (the server says so: a client stopped when it was told missed it, and a trial's
            # said its session had timed out)
            out.append(shown({"type": "logged_out", "reason": "elsewhere"}))
            why = "the account logged in elsewhere, which ended the session"
        elif self.silent_s is not None:
            out.append(Show("system", f"Your session timed out: this client sent nothing for "
                                      f"{self.silent_s:.0f} s (it was stopped, or the computer "
                                      f"slept), and the server ended it. Please log in again."))
            why = "the session timed out"
        elif reason == "timed_out":
            # (the server says so: its requests lost in an outage, say)
            out.append(shown({"type": "logged_out", "reason": "timed_out"}))
            why = "the session timed out"
        else:
            out.append(Show("system", "Your session has ended. Please log in again."))
            why = "the session ended"
        self.silent_s = None
        self._session_lost(out, why)

    def _session_lost(self, out, why):
        """The server ended the session: a person logs in again; a script stops, since its
        next lines are commands, not a user name and password (a trial's sent a message as a
        user name, and the next as its password)."""
        self._back_to_username(out, ask=False)
        if self._script_stops(out, why):
            return
        self._say_waiting(out)      # (a restart said only to log in again: a trial's)
        # the lines typed while it ended were for the session: its messages wait for the next
        # login, the rest are not taken for a name (a soak's queued "online" was "Wrong
        # username.")
        unused = [line for line in self.lines if not self._kept_for_next_login(line, out, False)]
        self.lines.clear()
        if unused:
            said = plural(len(unused), "line")
            out.append(Show("system", f"What you typed as it ended ({said}) was not used."))
        out.append(Prompt(Stage.USERNAME))

    def _back_to_username(self, out, ask=True):
        """Forget the session and ask for a username (`ask` False: do not ask)."""
        if self.stage is Stage.LOGGED_IN:
            self._cancel(HeartbeatDue(), out)
        self.stage = Stage.USERNAME
        self.token = None
        self.proof = None
        self.detached = False
        self.logging_out = False
        self._end_consents(out)         # consent ends with the session, on both sides
        if ask:
            out.append(Prompt(Stage.USERNAME))
