"""The chat client's core: ChatClient turns events into actions.

It takes `(event, now)` and returns a list of actions (client_events.py); it never touches a
socket, the screen or the clock. It routes each event to its handler, runs typed lines one at a
time, and asks the server (requests, their replies and failures). Its parts are its base
classes, a module each: client_login.py (the way in), client_session.py (heartbeats, a staying
link's resume, the session's end), client_sending.py (messages and commands),
client_deliveries.py (what reaches us, and peers) and client_leaving.py (the end). The parts
with state of their own live beside it: outbox.py (messages the server has not yet taken),
doorkeeper.py (who gets in on our listening port), peer.py (private links), outage.py (whether
the server can be reached), and commands.py (what a typed line means, what a reply says).
client.py builds and runs it.
"""
import secrets
from collections import deque
from dataclasses import dataclass, field

import limits
import peer
from client_deliveries import TURNED_AWAY_BURST, TURNED_AWAY_PER_S, Deliveries
from client_events import (Accepted, Arm, Cancel, CommandRetry, DrainDue, ExitDue, Expired,
                           HeartbeatDue, HungUp, Incoming, IncomingClosed, InputEnded,
                           Interrupted, LineIn, LinkClosed, LinkDown, LinkIdle, LinkIn, LinkUp,
                           Log, LoginAbandoned, LoginRetry, OutageWaitDue, OutboxRetry, Probe,
                           ProbeDue, Prompt, Pushed, Replied, RequestFailed, SendRequest, Show,
                           Stage, Started, Status)
from client_leaving import Leaving
from client_login import LoginSteps
from client_requests import NEVER_SENT, Pending, Purpose
from client_sending import Sending
from client_session import HEARTBEAT_S, SessionKeeping
from commands import (Command, Usage, error_code, error_text, is_message_line, parse_command,
                      refusal)
from doorkeeper import Door, Doorkeeper
from outage import Outage
from outbox import Outbox

EXIT_WAIT_S = 2.0           # how long an exiting client waits for its logout reply
DRAIN_WAIT_S = 5.0          # how long the input's end waits for what waited for this login
OUTAGE_WAIT_S = 30.0        # how long the input's end waits for a server away to take messages
# the timers whose firing contacts the server: during an outage, the next of them is the next try
_TRIES = (HeartbeatDue, OutboxRetry, ProbeDue)


def _random_client_id():
    """A fresh id for one run of a client: its messages' ids repeat another run's only if two
    runs draw the same 64 random bits. (32 were 1 in 4 million a run against a user's 1,024
    kept ids, and a collision's messages are taken for repeats: a review's.)"""
    return secrets.token_hex(8)


@dataclass
class Settings:
    """What the core needs to know about its surroundings."""
    listen_port: int | None     # None: nothing listens, so no peer (nor short delivery) reaches us
    stay: bool = False          # keep one connection to the server for requests and deliveries
    heartbeat_s: float = HEARTBEAT_S
    exit_wait_s: float = EXIT_WAIT_S
    drain_wait_s: float = DRAIN_WAIT_S
    outage_wait_s: float = OUTAGE_WAIT_S
    # starts every message id: random per run unless a test fixes it
    client_id: str = field(default_factory=_random_client_id)
    # input from a file or a pipe: its lines answer the prompts as a person's would, the
    # original's transcripts replayed; a refused login, or input that ends before any login
    # succeeded, makes the run's status 1, with a line on standard error; no server to try
    # the login at ends it (no one is there to type again)
    scripted: bool = False
    # "HOST:PORT" as the user gave it, for the words that say the server cannot be reached
    server: str | None = None
    # see that the server is there before asking for a username, and look again with backoff
    # while it cannot be reached and no one is logged in (client.run sets it; the harnesses'
    # transcripts begin at the username)
    check_server: bool = False
    # the client speaks TLS (--tls): a reset from the server is then no hint that it does
    tls: bool = False
    cafile: str | None = None       # the certificates it trusts (--cafile), for the words


class ChatClient(LoginSteps, SessionKeeping, Sending, Deliveries, Leaving):
    """The client's logic: `handle(event, now)` -> list of actions."""

    def __init__(self, settings):
        self.settings = settings
        self.stage = Stage.USERNAME
        self.user = None
        self.token = None
        self.proof = None
        self.lines = deque()            # typed lines waiting for the one in flight
        self.waiting_for = None         # request id of the line in flight, if any
        # a login the server asked to wait (slow_down), sent again by LoginRetry: typed lines
        # wait behind it as behind a login in flight
        self.login_again = None
        self.login_waits = False        # login_again waits for the server to answer (an outage)
        # the wait before a login (or name) that failed unanswered goes again once the server
        # is seen: 0 until one has, then doubling (a server that took the look and closed the
        # login without a word had it sent, password and all, every second: a trial's)
        self.login_backoff_s = 0.0
        self.login_tries_unanswered = 0
        # (code, when) the login was first answered unavailable or slow_down, until it gets
        # another answer: a script waits so long at most (_login_held)
        self._login_held_since = None
        # when the server first asked to slow down the message now oldest, and has taken none
        # since: a script's end waits for it outage_wait_s at most (a re-check's server that
        # slowed everything down kept a script running for ever)
        self.slowed_since = None
        # a command the server asked to wait (slow_down), sent again by CommandRetry: typed
        # lines wait behind it, as behind a command in flight
        self.command_again = None
        self.sent_again = None      # ... and once sent again, so that its answer says which
        self._login_sent = None         # the login in flight
        self.pending = {}               # request id -> Pending
        # (store, user) -> the highest seq of a stored message shown: a store's numbers mean
        # nothing in another (a wiped or new data directory), and only grow within one
        self.shown_upto = {}
        self.store = None               # the server's store, named by the welcome
        self.head_seen = 0              # the highest number the server says it has given
        self.outbox = Outbox(settings.client_id)
        # mids of messages carried over a login (typed before the session ended): their
        # answers name them, since nothing typed just now shows which (a trial's read "seas is
        # offline; your message will be delivered" twice after a restart, not knowing which)
        self.carried = set()
        # messages that will not go: refused by the server (no such user, blocked...) or as
        # typed (too long): a script's exit status says so (a trial's ran with status 0)
        self.refused = 0
        self.peers = peer.Peers()       # addresses and keys given by consent, and our links
        self.doorkeeper = Doorkeeper(self.peers)     # who may use our listening port
        self.last_request_at = None     # the last request carrying our token: a sign of life
        self.answered_at = None         # when the server last answered or pushed
        self.server_timeout_s = HEARTBEAT_S + 1     # a silent session's end (the welcome's)
        self.silent_s = None            # how long the client sent nothing before a late heartbeat
        # whether the server can be reached
        self.outage = Outage(settings.server, settings.tls, settings.cafile)
        self.awaiting_server = False    # check_server: the username waits for the server
        self.told_to_type = False       # ... and the user was told typing may begin
        self.detached = False           # staying: the server has not yet taken our resume
        self.no_port_told = False       # without a listening port: said so at the first private
        self.input_ended = False
        self.logged_in_once = False     # a login succeeded in this run (see Settings.scripted)
        self.refused_logins = 0         # a script's names and passwords refused: status 1
        self.not_understood = 0         # ... and commands it could not be (Usage): status 1
        self.not_done = 0               # ... and commands not done (an outage, a session's end)
        self.refused_commands = 0       # ... and commands refused (block nobody)
        self.unread_messages = 0        # ... and messages typed, unread at a quit (not sent)
        self.unread_lines = 0           # ... and other lines unread at a quit (before a login)
        self.perhaps_done = 0           # ... and commands sent, never answered
        self.privates_undelivered = 0   # ... private messages not delivered
        self.privates_unsure = 0        # ... and perhaps not delivered
        self.waiting_said = 0           # the most messages waiting said so while the queue lasts
        self.login_head = 0             # the highest number given before this login (welcome)
        self.session_user = None        # whose session this run last had
        self.said_unreached = False     # told that the server cannot reach our port, this
                                        # session, since the last delivery
        # the messages that waited for this login (its welcome says how many) and are not yet
        # shown: the input's end waits for them (_draining), up to drain_wait_s
        self.backlog_left = 0
        self.backlog_upto = 0           # the highest number counted off backlog_left
        self.drain = None               # None, "waiting" (DrainDue armed), or "over"
        self.logging_out = False        # a `logout` is on its way
        self.came_while_leaving = False     # a message came as this session ended (said)
        self.peer_wait_said = False     # the end's wait for private messages was said
        self.heartbeat_s = settings.heartbeat_s     # or less: within the server's time-out
        self.outage_wait = None         # None, "waiting" (OutageWaitDue armed), or "over"
        self.input_paused = False       # a script's input is read no further (_pace_input)
        self.exiting = False
        self.done = False               # Exit was returned: nothing more happens
        self._stop_why = None           # a script stops once its message in flight is answered
        self._status = None             # the last Status said
        self._ids = 0
        self._turned_away_said = limits.RateLimiter(TURNED_AWAY_PER_S, TURNED_AWAY_BURST)
        self._turned_away_unsaid = 0    # refused peer connections not said (_turned_away)
        self._private_refs = 0          # numbers the user's private messages for ShowFate
        self._run_notices = set()       # sending notices said while the outbox has not emptied
        self._now = 0.0                 # the time of the event being handled
        self._events = {
            Started: self._on_started, LineIn: self._on_line, InputEnded: self._on_input_ended,
            Interrupted: self._on_interrupted, HungUp: self._on_hung_up,
            LoginAbandoned: self._on_login_abandoned,
            Replied: self._on_replied,
            RequestFailed: self._on_request_failed, Expired: self._on_expired,
            Accepted: self._on_accepted, Incoming: self._on_incoming,
            IncomingClosed: self._on_incoming_closed, LinkIn: self._on_link_in,
            LinkClosed: self._on_link_closed, LinkUp: self._on_link_up, Pushed: self._on_pushed,
            LinkDown: self._on_link_down,
        }
        self._timers = {HeartbeatDue: self._heartbeat_due, ExitDue: self._exit_due,
                        DrainDue: self._drain_due, OutageWaitDue: self._outage_wait_due,
                        OutboxRetry: self._outbox_retry, LinkIdle: self._link_idle,
                        ProbeDue: self._probe_due, LoginRetry: self._login_retry,
                        CommandRetry: self._command_retry}
        self._replies = {
            Purpose.CHECK_USER: self._reply_check_user, Purpose.LOGIN: self._reply_login,
            Purpose.COMMAND: self._reply_command, Purpose.OUTBOX: self._reply_outbox,
            Purpose.HEARTBEAT: self._reply_heartbeat, Purpose.RESUME: self._reply_resume,
            Purpose.EXIT: self._reply_exit, Purpose.PROBE: self._reply_probe,
        }
        self._failures = {
            Purpose.CHECK_USER: self._fail_check_user, Purpose.LOGIN: self._fail_login,
            Purpose.COMMAND: self._fail_command, Purpose.OUTBOX: self._fail_outbox,
            Purpose.HEARTBEAT: self._fail_quietly, Purpose.RESUME: self._fail_quietly,
            Purpose.EXIT: self._fail_exit, Purpose.PROBE: self._fail_probe,
        }

    def trusts(self, conn):
        """True if accepted connection `conn` has proven itself: the server's, or a peer's."""
        visitor = self.doorkeeper.visitors.get(conn)
        return visitor is not None and visitor.door in (Door.TRUSTED, Door.PEER)

    def peer_link(self, conn):
        """True if accepted connection `conn` is a proven peer's (not the server's)."""
        return self.doorkeeper.peer_link(conn)

    def needs_link(self):
        """True while a staying client needs its link kept open: logged in, its deliveries
        come on it (at the login prompt one may close unused, and be opened again)."""
        return self.stage is Stage.LOGGED_IN

    def handle(self, event, now):
        """One event -> the actions it causes."""
        if self.done:
            return []
        handler = self._events.get(type(event))
        if handler is None:
            raise TypeError(f"not a client event: {event!r}")
        out = []
        self._now = now
        handler(event, now, out)
        self._run_lines(now, out)
        self._say_status(out)
        return out

    # -- events -------------------------------------------------------------------------------

    def _on_started(self, event, now, out):
        if not self.settings.check_server:
            out.append(Prompt(Stage.USERNAME))
            return
        # the username is asked once the server is known to be there; a staying client's
        # link opening is the check (LinkUp or LinkDown follows)
        self.awaiting_server = True
        if not self.settings.stay:
            self._request(Purpose.PROBE, None, out, blocks_input=False)

    def _on_line(self, event, now, out):
        self.lines.append(event.text)

    def _on_input_ended(self, event, now, out):
        # queued lines still run; _run_lines starts the exit once they are done
        self.input_ended = True
        self._leave_if_ended_while_waiting(now, out)

    def _leave_if_ended_while_waiting(self, now, out):
        """Ctrl-D while a name or a login waits for a server that does not answer, or
        before its try in flight fails so: leave now, as Ctrl-C does (a trial's waited
        without a word, and logged in and out when the server came back, a minute later)."""
        if (self.input_ended and not self.settings.scripted and self.token is None
                and not self.exiting and (self.login_waits or self.awaiting_server
                                          or (self.login_again and self.login_backoff_s))):
            self._on_interrupted(None, now, out)

    def _on_interrupted(self, event, now, out):
        self._report_unread(out)
        if self.exiting or (self.token is None and self._login_sent is None):
            self._exit(out)       # not logged in, or a second Ctrl-C: leave at once
        elif self.token is None:
            # a login on its way: its answer is waited for (exit_wait_s at most), and a
            # welcome logged out at once (left, the session stayed online until it timed out,
            # 31 s later: a trial's Ctrl-C just after the password)
            self.exiting = True
            out.append(Arm(ExitDue(), now + self.settings.exit_wait_s))
        else:
            self._start_exit(now, out)

    def _on_hung_up(self, event, now, out):
        """As Ctrl-C, but never "a second Ctrl-C": a hang-up also ends the input (whose end
        starts the logout) and may come twice, and the logout on its way must go out (the
        exit waits exit_wait_s at most)."""
        if not self.exiting:
            self._on_interrupted(event, now, out)

    def _on_login_abandoned(self, event, now, out):
        if self.login_waits:                # (waiting for the server: given up at once)
            self.login_again, self.login_waits = None, False
        if (self.stage is not Stage.PASSWORD or self.waiting_for is not None or self.lines
                or self.login_again is not None):
            # logged in, or the name's check or login is on its way: its answer decides
            out.append(Log("a login could not be abandoned now; ignored"))
            return
        self.stage = Stage.USERNAME
        self.user = None
        out.append(Prompt(Stage.USERNAME))

    def _on_replied(self, event, now, out):
        pending = self._finish(event.request_id, out)
        if pending is None:
            return
        if self._left_a_tls_port(event.frame, out):
            return
        self._reached(out)
        self._replies[pending.purpose](pending, event.frame, now, out)
        self._stopped_when_answered(out)

    def _on_request_failed(self, event, now, out):
        pending = self._finish(event.request_id, out)
        if pending is None:
            return
        # (a command's own line says it was not done: the outage is said once, not again
        # with each command typed in it, as a trial's window did three times in 8 s). A
        # staying client's probe is no outage: its link says when there is one (a re-attack's
        # probe, refused by a server allowing one connection an address, said so)
        if not (pending.purpose is Purpose.PROBE and self.settings.stay):
            out.extend(self.outage.failed(event.reason, typed=pending.blocks_input
                                          and pending.purpose is not Purpose.COMMAND))
        if pending.purpose is Purpose.OUTBOX and event.reason not in NEVER_SENT:
            self.outbox.lost_on_the_way()
        self._consents_lapsed(now, out)
        self._failures[pending.purpose](pending, now, out)
        self._stopped_when_answered(out)
        if (self.settings.check_server and self.stage is not Stage.LOGGED_IN
                and not self.settings.stay and not self.done):
            self._probe_later(now, out)     # with no session, nothing else would look again

    def _on_expired(self, event, now, out):
        handler = self._timers.get(type(event.key))
        if handler is None:
            raise TypeError(f"not a client timer: {event.key!r}")
        self.outage.unplanned(type(event.key))
        handler(event.key, now, out)

    def _on_accepted(self, event, now, out):
        out.extend(self.doorkeeper.accepted(event.conn, event.nonce))

    def _on_incoming(self, event, now, out):
        visitor = self.doorkeeper.visitors.get(event.conn)
        if visitor is not None and visitor.door is Door.TRUSTED:
            self._delivered(event.conn, event.frame, out)   # the server's, proven: the usual way
            return
        self._consents_lapsed(now, out)     # (before a peer is let in on a key)
        login_pending = any(p.purpose is Purpose.LOGIN for p in self.pending.values())
        items = self.doorkeeper.incoming(event.conn, event.frame, self.user, self.proof,
                                         login_pending)
        self._admitted(items, out)

    def _on_incoming_closed(self, event, now, out):
        self.doorkeeper.closed(event.conn)

    def _on_link_in(self, event, now, out):
        self._from_peers(self.peers.link_frame(self.user, event.link, event.frame, now), out)

    def _on_link_closed(self, event, now, out):
        self._from_peers(self.peers.link_closed(event.link, event.reason), out)

    def _on_link_down(self, event, now, out):
        out.extend(self.outage.failed(event.reason))
        self._consents_lapsed(now, out)
        self.outage.planned(LinkDown, event.retry_at)
        if self.awaiting_server:
            self._missing_at_start(out)

    def _on_link_up(self, event, now, out):
        self.outage.unplanned(LinkDown)
        if self.stage is Stage.LOGGED_IN and not self.exiting:
            # the server reaches this session on the connection its resume comes on, and sends
            # again, in order, everything not yet acknowledged; the outbox need not wait its
            # turn. The resume's answer says the server is back: the kernel takes a connection
            # for a server that is stopped too (a trial's said so of one stopped by SIGSTOP)
            self.detached = True
            self._resume(now, out)
            # (the outbox's backoff starts again once the resume is answered: restarted at
            # each connection, a stopped server's kernel ended an input's 30 s wait and began
            # another, for as long as the server stayed stopped: a lossy trial's)
            self._send_head(now, out, blocks_input=False)
            return
        if self.login_waits:
            # the name or login that waited goes; its answer says the server is back (a
            # trial's said so at each connection a stopped server's kernel took)
            self.login_waits = False
            self._login_retry(None, now, out)
            return
        self._reached(out)          # it took our connection
        if self.awaiting_server and not self._probing():
            # a port that speaks TLS takes a plain connection too, and says so only to what
            # comes on it: a probe's bye has it say so now, before the name is typed (a
            # trial's staying client asked for the name, then left with the TLS line)
            self._request(Purpose.PROBE, None, out, blocks_input=False)

    def _left_a_tls_port(self, frame, out):
        """True, and the program leaving, if `frame` says the server's port speaks TLS and we
        do not: nothing we send will ever be answered there (a trial's client asked for the
        name again and again, each time told why; a staying one tried for ever)."""
        if error_code(frame) != "tls_required":
            return False
        self.lines.clear()
        self._exit(out, 1, error_text(frame))
        return True

    def _on_pushed(self, event, now, out):
        if self._left_a_tls_port(event.frame, out):
            return
        if self.stage is not Stage.LOGGED_IN:
            out.append(Log(f"{event.frame.get('type')!r} pushed while logged out ignored"))
            return
        self.answered_at = now
        self._delivered(event.conn, event.frame, out)

    # -- what the user sees of the client's state ---------------------------------------------

    def _say_status(self, out):
        """A Status whenever the stage, the count of waiting lines or the outage changes. It
        goes first: a screen knows the state an event left before it shows what it said (a
        line said on logging out belongs to the login form)."""
        # typed lines not yet handled, messages the server has not acknowledged, and a command
        # in flight (the outbox head in flight is counted once, in the outbox)
        in_flight = self.waiting_for is not None and self.waiting_for != self.outbox.sending
        retry_at = self.outage.retry_at(pending.sent_at for pending in self.pending.values())
        # lines typed before the server was first seen wait for it too
        busy = (self.waiting_for is not None or self.login_again is not None
                or self.command_again is not None or (self.awaiting_server and bool(self.lines)))
        waiting = len(self.lines) + len(self.outbox.entries) + in_flight
        self._pace_input(waiting, busy, out)
        status = Status(self.stage, self.user, waiting, self.outage.reason, busy,
                        tuple(sorted(self.peers.addresses)), retry_at,
                        tuple(sorted(self.peers.granted)),
                        self._commands_waiting(in_flight))
        if status != self._status:
            self._status = status
            out.insert(0, status)

    def _commands_waiting(self, in_flight):
        """Of what waits for the server, the commands (a block, a logout): typed, or the one
        on its way (`in_flight`). Before a login, what waits is the login, and a screen says
        so; after it, a re-attack's `block google` typed behind a message was a message."""
        if self.stage is not Stage.LOGGED_IN:
            return 0
        typed = sum(1 for line in self.lines if not is_message_line(line)) if self.lines else 0
        return typed + int(in_flight)

    def _reached(self, out):
        """The server answered: an outage, if there was one, is over, and the user hears it;
        a login that waited for it goes."""
        self.answered_at = self._now
        out.extend(self.outage.answered())
        self._cancel(ProbeDue(), out)
        if self.login_waits:
            self.login_waits = False
            if self.login_backoff_s:
                self._arm(LoginRetry(), self._now + self.login_backoff_s, out)
            else:
                self._login_retry(None, self._now, out)

    def _arm(self, key, at, out):
        """Arm a timer; one that contacts the server is a try the outage knows of."""
        if type(key) in _TRIES:
            self.outage.planned(type(key), at)
        out.append(Arm(key, at))

    def _cancel(self, key, out):
        """Cancel a timer; a ProbeDue only when one is armed (every reply would cancel it)."""
        if self.outage.unplanned(type(key)) or type(key) is not ProbeDue:
            out.append(Cancel(key))

    # -- typed lines ----------------------------------------------------------------------------

    def _run_lines(self, now, out):
        """Handle queued lines in order, one at a time: a line that asks the server waits."""
        if self.outage_wait is not None and not self._kept_by_outage():
            self._outage_wait_over(out)
        while (self.waiting_for is None and self.lines and not self.exiting
               and not self.awaiting_server and self.login_again is None
               and self.command_again is None and not self._leaving_waits(now, out)):
            self._line(self.lines.popleft(), now, out)
        # messages kept only because the server asked us to slow down go before the end:
        # a script's 200 lines sent 101 and reported the rest "Not sent" (an outage, a
        # retry's backoff, still ends it, listing what waits)
        slowed = (self.token is not None and self.outbox.entries and not self.outbox.retry_s
                  and not self._slowed_too_long(now))
        # (a try in flight when the outage's wait runs out is not waited for: a trial's said
        # "waiting up to 30 s" and listed what was not sent 9 s later, at the try's time-out)
        if (self.input_ended and self.waiting_for is None and not self.lines and not self.exiting
                and (self.outbox.sending is None or self.outage_wait == "over")
                and not slowed and self.login_again is None and self.command_again is None):
            if self.token is None and self.settings.scripted and not self.logged_in_once:
                self._exit(out, 1, "the input ended before a login succeeded")
            elif self.token is None and self.settings.scripted and self.stage is Stage.PASSWORD:
                # (a name given again after a logout, its password never: a trial's ended 0)
                self._exit(out, 1, f"the input ended before the password of {self.user} "
                                   f"was given")
            elif self.token is None:
                self._exit(out)
            elif (not self._held_by_outage(now, out) and not self._draining(now, out)
                  and not self._held_by_peers(out)):
                self._start_exit(now, out)
        elif (self.input_paused and self.token is not None and self._kept_by_outage()
              and self.outbox.sending is None and not self.exiting
              and not self._held_by_outage(now, out)):
            # paused with MAX_WAITING for a server that did not come back: what the rest of
            # the input holds cannot wait in memory for it (a reviewer's script hung so)
            self._report_unread(out)
            # (_exit counts what was not sent)
            self._exit(out, 1, f"the server took no message in "
                               f"{self.settings.outage_wait_s:g} s; the rest of the input was "
                               f"not read")

    def _slowed_too_long(self, now):
        """True for a script whose messages the server has asked to slow down for
        outage_wait_s without taking one: its end waits for them no longer."""
        return (self.settings.scripted and self.slowed_since is not None
                and now - self.slowed_since >= self.settings.outage_wait_s)

    def _line(self, text, now, out):
        if self.stage is Stage.USERNAME:
            self._username_line(text.strip(), out)
        elif self.stage is Stage.PASSWORD:
            self._password_line(text.strip(), out)
        else:
            self._command_line(text, now, out)

    def _command_line(self, text, now, out):
        command = parse_command(text)
        if command is None:
            return
        alone = text.strip().removeprefix("/")     # ("/y": a window's or IRC's habit)
        if isinstance(command, Usage) and alone in ("Y", "y", "N", "n"):
            command = self._answer_alone(alone.upper(), out)
            if command is None:
                return
        if isinstance(command, Usage):
            # (a script's `message seas` without its text, or a typo, ended with status 0)
            self.not_understood += 1
            out.append(Show("usage", command.form) if command.unknown is None
                       else Show("unknown_command", command.unknown))
            return
        refused = refusal(command, self.session_user)
        if refused is not None:
            if command.name in ("message", "broadcast", "private"):
                self.refused += 1
            else:
                self.refused_commands += 1
            out.append(Show("system", refused))
            return
        if command.name == "help":
            # each screen lists the commands its way (`text`: one command's name, or all)
            out.append(Show("help", command.text or ""))
            return
        if command.name == "quit":
            # as Ctrl-C: what was typed after it is said not done, then a logout, and the exit
            # on its reply (a trial's script ran on past its `quit`, unsaid, status 0)
            self._report_unread(out)
            self._start_exit(now, out)
            return
        if command.name == "private":
            self._private(command, now, out)
            return
        if command.name in ("message", "broadcast"):
            self._post(command, now, out, blocks_input=True)
            return
        if command.name == "logout":
            self._cancel(HeartbeatDue(), out)
            self.logging_out = True         # (_numbered: what comes now waits for the next login)
        self._send_command(command, now, out)

    def _answer_alone(self, name, out):
        """`Y` or `N` typed without a name -> the answer to the only question waiting, or None
        when none or several wait (said why): a trial's new user answered "Do you agree to
        have a private talk with bob? Y bob/N bob" with a `y`, and read its usage."""
        waiting = list(self.peers.asked_by)
        if len(waiting) == 1:
            return Command(name, user=waiting[0])
        self.not_understood += 1
        out.append(Show("system", "Nobody is waiting for your answer." if not waiting else
                        f"{len(waiting)} users are waiting for your answer "
                        f"({', '.join(waiting)}): type {name} <user>."))
        return None

    # -- requests and replies -------------------------------------------------------------------

    def _request(self, purpose, frame, out, blocks_input, command=None):
        self._ids += 1
        self.pending[self._ids] = Pending(purpose, blocks_input, self._now, self.token, command)
        if blocks_input:
            self.waiting_for = self._ids
        if purpose is Purpose.PROBE:
            out.append(Probe(self._ids))
        else:
            # a heartbeat must beat the server's time-out, and may come twice
            out.append(SendRequest(self._ids, frame, urgent=purpose is Purpose.HEARTBEAT))
        return self._ids

    def _finish(self, request_id, out):
        """Forget a request that got its answer; None if it was not ours."""
        pending = self.pending.pop(request_id, None)
        if pending is None:
            out.append(Log(f"reply to unknown request {request_id} ignored"))
            return None
        if self.waiting_for == request_id:
            self.waiting_for = None
        return pending

    def _stale(self, pending):
        """A reply for a session that has since ended (logout, elsewhere, expiry)."""
        return pending.token != self.token
