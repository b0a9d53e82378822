"""The chat client's core: ChatClient turns events into actions.

It takes `(event, now)` and returns a list of actions (client_events.py); it never touches a
socket, the screen or the clock. It routes each event to its handler and keeps the session; the
parts with state of their own live beside it: outbox.py (messages the server has not yet taken),
doorkeeper.py (who gets in on our listening port), peer.py (private links), and commands.py (what
a typed line means, what a reply says). client.py builds and runs it.
"""
import enum
import secrets
from collections import deque
from dataclasses import dataclass, field

import limits
import peer
from client_events import (REQUEST_TIMEOUT_S, Accepted, Arm, Cancel, CloseConn, CommandRetry,
                           DrainDue, Exit, ExitDue, Expired, Fate, HeartbeatDue, HungUp, Incoming,
                           IncomingClosed, InputEnded, Interrupted, LineIn, LinkClosed, LinkDown,
                           LinkIdle, LinkIn, LinkUp, Log, LoginAbandoned, LoginRetry,
                           OutageWaitDue, OutboxRetry, PauseInput, Probe, ProbeDue, Prompt,
                           Pushed, Replied, RequestFailed, ResumeInput, SendRequest, SendTo,
                           Show, ShowFate, ShowOnline, ShowSending, Stage, Started, Status)
from commands import (DEFAULT_ATTEMPTS, Command, Usage, case_hint, described, error_code,
                      error_text, is_message_line, parse_command, presence_notices, refusal,
                      reply_lines, seconds_text, shown, times_text)
from doorkeeper import Delivered, Door, Doorkeeper, HeadSeen, PeerTurnedAway, PrivateIn
from outage import Outage
from outbox import Outbox
from protocol import CONSENT_S, MAX_NAME_CHARS, MAX_SEQ, MAX_TEXT_CHARS, MIN_HEARTBEAT_S
from words import plural

HEARTBEAT_S = 30.0          # the server ends a session silent for 31 s
# A staying connection that died without a word (a NAT's mapping dropped) is found only by a
# request's missing reply, REQUEST_TIMEOUT_S after it: heartbeats every 30 s found it 40 s
# after the last request, past the server's 31 s, and every such session was lost (a trial's).
# At 15 s, or sooner for a shorter time-out, the resume comes within it, STAY_MARGIN_S early
# (the connection made again, at its first try 1 s on).
STAY_HEARTBEAT_S = 15.0
STAY_MARGIN_S = 5.0
# typed at the name prompt, most likely a command, not a name: told how to leave
COMMAND_LIKE_WORDS = ("quit", "exit", "logout", "bye", "help")
# ... and these leave, as at the command prompt, when no account has the name
QUIT_WORDS = ("quit", "exit")
UNREACHED_WORDS = ("Messages wait for you that the server cannot deliver: it cannot connect to "
                   "this client's listening port (behind NAT or a firewall, say). Quit, and "
                   "start the client with --stay-connected (make client ... STAY=1): it takes "
                   "them on its own connection.")
EXIT_WAIT_S = 2.0           # how long an exiting client waits for its logout reply
DRAIN_WAIT_S = 5.0          # how long the input's end waits for what waited for this login
MAX_TIMEOUT_S = 10 ** 9     # a welcome's time-out past this is no number to heed
OUTAGE_WAIT_S = 30.0        # how long the input's end waits for a server away to take messages
MAX_WAITING = 1000          # a script's lines and messages held for the server (_pace_input)
TURNED_AWAY_PER_S = 0.1     # refused peer connections said: one every 10 s ...
TURNED_AWAY_BURST = 3       # ... after a first 3
LOGIN_RETRY_MAX_S = 60.0    # the longest a login asked to slow down waits before it goes again
# A message numbered more than this above the highest number the server has said it gave is
# refused: numbers grow by one a message, so this is many hours of the busiest server's traffic
# between two heartbeats (each tells the head), and far below a forged "900000000000".
SEQ_SLACK = 2 ** 30
# why a request failed, when it certainly never reached the server (reactor and stay.py words)
NEVER_SENT = ("refused", "not connected")
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


def _is_seq(value):
    """True for a stored message's number: a whole number from 1 to MAX_SEQ."""
    return type(value) is int and 0 < value <= MAX_SEQ


class Purpose(enum.Enum):
    """What a request was for: its reply (or failure) is handled by that."""
    CHECK_USER = "check_user"
    LOGIN = "login"
    COMMAND = "command"
    OUTBOX = "outbox"
    HEARTBEAT = "heartbeat"
    RESUME = "resume"
    EXIT = "exit"
    PROBE = "probe"


@dataclass
class _Pending:
    """A request waiting for its reply: what it was for, and the session it belongs to."""
    purpose: Purpose
    blocks_input: bool
    sent_at: float
    token: str | None = None
    command: Command | None = None


class ChatClient:
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
        # when the login was first answered unavailable, until it gets another answer
        self._login_unavailable_at = None
        # a command the server asked to wait (slow_down), sent again by CommandRetry: typed
        # lines wait behind it, as behind a command in flight
        self.command_again = None
        self.sent_again = None      # ... and once sent again, so that its answer says which
        self._login_sent = None         # the login in flight
        self.pending = {}               # request id -> _Pending
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
                and not self.exiting and (self.login_waits or self.awaiting_server)):
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

    def _missing_at_start(self, out):
        """check_server found no server before the first username: a script stops there; a
        person is told, once, that typing may begin (a trial's screen said only that the
        server could not be reached, and the user guessed)."""
        if self.settings.scripted:
            self.lines.clear()
            self._exit(out, 1, f"cannot reach {self.outage.where()} ({self.outage.reason}); "
                               f"the input was not read")
        else:
            if not self.told_to_type:
                self.told_to_type = True
                out.append(Show("type_ahead"))
            self._leave_if_ended_while_waiting(self._now, out)

    def _reached(self, out):
        """The server answered: an outage, if there was one, is over, and the user hears it;
        a login that waited for it goes."""
        out.extend(self.outage.answered())
        self._cancel(ProbeDue(), out)
        if self.login_waits:
            self.login_waits = False
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
        slowed = self.token is not None and self.outbox.entries and not self.outbox.retry_s
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

    def _leaving_waits(self, now, out):
        """True while a script's `logout` or `quit` waits, as the input's end does, for the
        messages typed before it to be taken (in an outage, up to outage_wait_s): a reviewer's
        3,000 broadcasts and a logout listed 717 as not sent; then for those that waited for
        this login to be shown (_draining): a trial's script that logged in and out read them
        in some runs only, and in others after its logout, again at each later login; then
        for private messages on their way to peers (peer.Peers.holding)."""
        if not (self.settings.scripted and self.stage is Stage.LOGGED_IN):
            return False
        command = parse_command(self.lines[0])
        if type(command) is not Command or command.name not in ("logout", "quit"):
            return False
        if self.outbox.entries:
            return not self.outbox.retry_s or self._held_by_outage(now, out)
        return self._draining(now, out) or self._held_by_peers(out)

    def _held_by_outage(self, now, out):
        """True while a script waits, up to outage_wait_s, for a server that could not be
        reached (or could not store) to take the messages kept for it (the outbox retries
        meanwhile): at the input's end, or with its input paused. A trial's script ended a
        second into a server's restart and listed 95 messages as not sent, right after it had
        said they would be."""
        if not self._kept_by_outage():
            self._outage_wait_over(out)
            return False
        if self.outage_wait == "over":
            return False
        if self.outage_wait is None:
            self.outage_wait = "waiting"
            self._arm(OutageWaitDue(), now + self.settings.outage_wait_s, out)
            why = "The input has ended" if self.input_ended else "The input waits"
            out.append(Show("system", f"{why}: waiting up to {self.settings.outage_wait_s:g} s "
                                      f"for the server to take "
                                      f"{plural(len(self.outbox.entries), 'message')}."))
        return True

    def _held_by_peers(self, out):
        """True while the end waits for private messages on their way to peers, said once (a
        re-attack's Ctrl-D waited 10 s for a stopped peer without a word)."""
        holding = self.peers.holding()
        if holding and not self.peer_wait_said:
            self.peer_wait_said = True
            out.append(Show("system", f"Waiting up to {peer.PEER_PROOF_S:g} s for "
                                      f"{plural(holding, 'private message')} to be "
                                      f"acknowledged."))
        return bool(holding)

    def _kept_by_outage(self):
        """True while messages wait for a server that could not take them (a retry's
        backoff runs)."""
        return bool(self.outbox.entries) and bool(self.outbox.retry_s)

    def _outage_wait_over(self, out):
        """The server took what waited: an outage's wait is over, and a later outage has its
        own (a script that waited one out at a logout, logged in again, did not wait at the
        next)."""
        if self.outage_wait == "waiting":
            out.append(Cancel(OutageWaitDue()))
        self.outage_wait = None

    def _outage_wait_due(self, key, now, out):
        if self.outage_wait == "waiting":
            out.append(Log(f"the server took no message in {self.settings.outage_wait_s:g} s; "
                           f"{plural(len(self.outbox.entries), 'message')} waiting"))
            self.outage_wait = "over"   # _run_lines, after this event, exits

    def _pace_input(self, waiting, busy, out):
        """A script's input (a file, a pipe) is read no further while MAX_WAITING lines and
        messages wait for the server, and again once half of them have gone: a trial's `yes |
        client.py` grew by 25 MB a second while the server took 20 messages. Out of a session,
        with no login under way, it is read whatever waits: the next login is in it."""
        if not self.settings.scripted or self.input_ended:
            return
        wants_input = self.stage is not Stage.LOGGED_IN and not busy
        if not self.input_paused and waiting >= MAX_WAITING and not wants_input:
            self.input_paused = True
            out.append(PauseInput())
        elif self.input_paused and (waiting <= MAX_WAITING // 2 or wants_input):
            self.input_paused = False
            out.append(ResumeInput())

    def _draining(self, now, out):
        """True while the input's end still waits for the messages that waited for this login:
        shown and acknowledged before the logout, they are not kept for the next run (a script
        that logs in reads them). Bounded by drain_wait_s; the rest waits on the server."""
        if self.drain == "over":
            return False
        if self.backlog_left > 0 or (self.backlog_upto and self.doorkeeper.servers_open()):
            if self.drain is None:
                self.drain = "waiting"
                self._arm(DrainDue(), now + self.settings.drain_wait_s, out)
            return True
        if self.drain == "waiting":
            out.append(Cancel(DrainDue()))
        self.drain = "over"
        return False

    def _drain_due(self, key, now, out):
        if self.drain == "waiting":
            out.append(Log(f"the session ends; {self.backlog_left} of the messages that "
                           f"waited for this login still wait for the next"))
            self.drain = "over"     # _run_lines, after this event, logs out

    def _line(self, text, now, out):
        if self.stage is Stage.USERNAME:
            self._username_line(text.strip(), out)
        elif self.stage is Stage.PASSWORD:
            self._password_line(text.strip(), out)
        else:
            self._command_line(text, now, out)

    def _username_line(self, name, out):
        if not name:
            out.append(Prompt(Stage.USERNAME))
            return
        if " " in name and self._kept_for_next_login(name, out):
            return
        if len(name) > MAX_NAME_CHARS:
            # no account has such a name: not sent (one past the frame limit came back in the
            # protocol's words, "frame longer than 65536 bytes": a trial's)
            out.append(Show("system", "Wrong username."))
            self._login_refused(out)
            out.append(Prompt(Stage.USERNAME))
            return
        self.user = name
        self._request(Purpose.CHECK_USER, {"type": "check_user", "user": name}, out,
                      blocks_input=True)

    def _kept_for_next_login(self, line, out, ask=True):
        """A message typed as the session ended (a restart, a time-out) reached the user name
        prompt: no name holds a space, so it is a message, kept like those the session left
        unsent, for the next login as the same user -> True if it was (a trial's typed lines
        were each "Wrong username.", and lost). `ask`: ask for the name again after it."""
        command = parse_command(line)
        user = self.session_user       # (not the last name typed: a trial's was a password)
        if (user is None or type(command) is not Command
                or command.name not in ("message", "broadcast")):
            return False
        refused = refusal(command, user)
        if refused is not None:         # (said now: no name holds a space either)
            self.refused += 1
            out.append(Show("system", refused))
            if ask:
                out.append(Prompt(Stage.USERNAME))
            return True
        entry = self.outbox.add(user, command)
        out.extend([ShowSending(entry.mid, command.user, command.text),
                    Show("system", f"You are not logged in: your message waits, and goes once "
                                   f"you log in again as {user}.")])
        if ask:
            out.append(Prompt(Stage.USERNAME))
        return True

    def _password_line(self, password, out):
        if not password:
            out.append(Prompt(Stage.PASSWORD))
            return
        if len(password) > MAX_TEXT_CHARS:      # (the server's words for it are a developer's)
            out.append(Show("system", f"No password is longer than {MAX_TEXT_CHARS:,} "
                                      f"characters. Please try again."))
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        # our run's id (our mids begin with it): the server keeps which of them it took for as
        # long as we run, so a message retried after a day away is still not stored twice
        frame = {"type": "login", "user": self.user, "password": password,
                 "client": self.settings.client_id}
        if self.settings.stay:
            frame["stay"] = True    # deliveries come on our staying connection, not the port
        if self.settings.listen_port is not None:
            frame["port"] = self.settings.listen_port
        self._login_sent = frame        # held until its answer: a slow_down sends it again
        self._request(Purpose.LOGIN, frame, out, blocks_input=True)

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

    def _send_command(self, command, now, out):
        frame = {"type": command.name, "token": self.token}
        if command.name in ("Y", "N"):
            self.peers.answered(command.user)
            frame.update(type="consent", user=command.user, agree=command.name == "Y")
        elif command.user is not None:
            frame["user"] = command.user
        self.last_request_at = now
        self._request(Purpose.COMMAND, frame, out, blocks_input=True, command=command)

    def _command_retry(self, key, now, out):
        command, self.command_again = self.command_again, None
        if command is None:
            return
        if self.stage is Stage.LOGGED_IN and not self.exiting:
            self.sent_again = command
            self._send_command(command, now, out)
        else:       # (said to go again: its end is said too)
            self._not_done("ended_not_done", command, out)

    # -- the outbox: messages are acknowledged by the server, or retried -------------------------

    def _post(self, command, now, out, blocks_input):
        """Queue a message or broadcast; send it now unless older ones still wait."""
        entry = self.outbox.add(self.user, command)
        out.append(ShowSending(entry.mid, command.user, command.text))
        waiting = len(self.outbox.entries)
        if waiting == 1:
            self.waiting_said = 0
            self._send_head(now, out, blocks_input)
        elif (waiting == 2 or waiting % 100 == 0) and waiting > self.waiting_said:
            # said when the queue begins, then every 100 (a paste of 100 lines said it 100
            # times), each count once while the queue lasts (a pipe that kept it between 500
            # and 1,000 said each 4 to 6 times); the status line counts them meanwhile
            self.waiting_said = waiting
            out.append(Show("system", f"The server has not taken your earlier messages yet; "
                                      f"this one waits behind them ({waiting} waiting)."))

    def _send_head(self, now, out, blocks_input):
        """Send the oldest waiting message alone, so the server takes them in order."""
        head = self.outbox.head()
        if head is None:
            return
        self.last_request_at = now
        self.outbox.sending = self._request(Purpose.OUTBOX, head.frame(self.token), out,
                                            blocks_input, head.command)

    def _login_retry(self, key, now, out):
        frame, self.login_again = self.login_again, None
        if frame is None or self.exiting:
            return
        if frame["type"] == "check_user" and self.stage is Stage.USERNAME:
            self._request(Purpose.CHECK_USER, frame, out, blocks_input=True)
        elif frame["type"] == "login" and self.stage is Stage.PASSWORD:
            self._login_sent = frame
            self._request(Purpose.LOGIN, frame, out, blocks_input=True)

    def _outbox_retry(self, key, now, out):
        if self.stage is Stage.LOGGED_IN and not self.exiting:
            self._send_head(now, out, blocks_input=False)

    def _reply_outbox(self, pending, frame, now, out):
        if error_code(frame) == "slow_down":
            # kept, not refused: the server takes it once we wait as long as it says
            wait_s = self.outbox.slowed(frame.get("seconds"))
            self._notice(f"The server asks us to slow down; your message is kept and sent in "
                         f"{wait_s:g} s.", out, key="slow down")
            self._arm(OutboxRetry(), now + wait_s, out)
            return
        if error_code(frame) == "unavailable":
            # kept, not refused: the server could not store it; tried again with backoff. The
            # server holds the write and commits it once it can: given up at exit, it is
            # "perhaps" sent (a trial's "Not sent" message arrived)
            self.outbox.lost_on_the_way()
            said = self.outbox.retry_s
            retry_s = self.outbox.failed()
            if not said:
                out.append(Show("system", "The server cannot store messages just now; yours "
                                          "is kept and sent again until it can."))
            self._arm(OutboxRetry(), now + retry_s, out)
            return
        if error_code(frame) == "no_session":
            # kept: it goes out again once this user has logged in again
            self.outbox.kept()
            if not self._stale(pending):
                self._session_ended(out, frame)
            return
        mid = self.outbox.taken().mid
        lines = reply_lines(pending.command, frame)
        named = mid in self.carried
        self.carried.discard(mid)
        if lines is None:
            # neither stored nor refused in words we know: it is not shown as sent
            out.extend([Log(f"unexpected reply to {pending.command.name}: {frame.get('type')}"),
                        ShowFate(mid, Fate.REFUSED)])
        elif frame.get("type") == "error":
            self.refused += 1
            out.extend(ShowFate(mid, Fate.REFUSED, line) for line in lines)
            if self.settings.scripted:
                # a script's lines are not echoed: which one it was (a trial's 4,000 refusals
                # were one line 4,000 times)
                out.append(ShowFate(mid, Fate.REFUSED, f"Not sent: {described(pending.command)}"))
        else:
            out.append(ShowFate(mid, Fate.SENT))
            for line in lines:
                self._notice(f"{line} ({described(pending.command)})" if named else line, out,
                             key=line)
        if self.outbox.head() is None and not self.lines:
            self._run_notices.clear()       # the run is over: the next message is told again
        if self.stage is Stage.LOGGED_IN:
            self._send_head(now, out, blocks_input=False)

    def _notice(self, text, out, key=None):
        """A notice about sending ("seas is offline; ..."), once in a run of messages (while
        the outbox has not emptied): a file of 300 messages to one offline user said it 197
        times. A message typed on its own, sent before the next, is told each time."""
        key = key or text
        if key not in self._run_notices:
            self._run_notices.add(key)
            out.append(Show("system", text))

    def _fail_outbox(self, pending, now, out):
        outage_begins = not self.outbox.retry_s
        retry_s = self.outbox.failed()
        if outage_begins:           # say which messages wait, once: Status says the rest
            out.extend(ShowFate(entry.mid, Fate.WAITING,
                                "Waiting to be sent: " + described(entry.command))
                       for entry in self.outbox.entries)
            out.append(Show("system", f"Your message is kept and will be sent when the server "
                                      f"answers ({len(self.outbox.entries)} waiting; next try "
                                      f"in {retry_s:g} s)."))
        self._arm(OutboxRetry(), now + retry_s, out)

    def _outbox_after_login(self, now, out):
        """Messages typed before the session ended go out now, if this is the same user."""
        waiting = list(self.outbox.entries)
        if not waiting:
            return
        if waiting[0].user != self.user:
            self._report_unsent(out, "you logged in as someone else")
            return
        self.outbox.fresh_start()
        self.carried = {entry.mid for entry in waiting}
        self._send_head(now, out, blocks_input=False)

    def _report_unsent(self, out, why, at_exit=False):
        """List each waiting message as not sent, or perhaps not sent -> how many."""
        entries, unanswered = self.outbox.drop_all()
        for entry in entries:
            if unanswered:      # (the oldest: it went out unanswered, or `unavailable`)
                unanswered = False
                out.append(ShowFate(entry.mid, Fate.UNSURE, f"Perhaps not sent (the server may "
                                    f"have it; it may yet arrive): {described(entry.command)}",
                                    "the server may have it; it may yet arrive", at_exit))
            else:
                out.append(ShowFate(entry.mid, Fate.REFUSED,
                                    f"Not sent ({why}): " + described(entry.command), why,
                                    at_exit))
        return len(entries)

    # -- requests and replies -------------------------------------------------------------------

    def _request(self, purpose, frame, out, blocks_input, command=None):
        self._ids += 1
        self.pending[self._ids] = _Pending(purpose, blocks_input, self._now, self.token, command)
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

    def _reply_check_user(self, pending, frame, now, out):
        if frame.get("type") == "ok":
            self.stage = Stage.PASSWORD
            out.append(Prompt(Stage.PASSWORD))
        elif error_code(frame) in ("unknown_user", "bad_field"):
            if str(self.user).lower() in QUIT_WORDS and not case_hint(frame):
                # no account's name (nor one in another case, which is hinted at): the way out
                # it looks like (a trial's new user, asked again, thought it could not leave)
                self._on_interrupted(None, now, out)
                return
            # a name no account can have (a space, a control character, too long) is as wrong
            # as an unknown one, and said in the same words, not in the protocol's
            leaving = str(self.user).lower() in COMMAND_LIKE_WORDS and not self.settings.scripted
            out.append(Show("system", "Wrong username." + case_hint(frame)
                            + (" (Type an account's name; Ctrl-D or Ctrl-C leaves.)" if leaving
                               else "")))
            self._login_refused(out)
            out.append(Prompt(Stage.USERNAME))
        else:
            out.append(Show("system", error_text(frame)))
            self._login_refused(out)
            out.append(Prompt(Stage.USERNAME))

    def _reply_login(self, pending, frame, now, out):
        sent, self._login_sent = self._login_sent, None     # (the password is held no longer)
        if error_code(frame) != "unavailable":
            self._login_unavailable_at = None   # (the next full disk is said again)
        if self.exiting:            # (Ctrl-C as it went: _on_interrupted)
            if frame.get("type") == "welcome" and isinstance(frame.get("token"), str):
                self.token = frame["token"]
                self._request(Purpose.EXIT, {"type": "logout", "token": self.token}, out,
                              blocks_input=False)
            else:
                self._exit(out)
            return
        if frame.get("type") == "welcome":
            self._logged_in(frame, now, out)
            return
        out.extend(self.doorkeeper.refuse_held())
        code = error_code(frame)
        if code == "wrong_password":
            out.append(Show("system", "Wrong password. Please try again."))
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        if code == "too_many_attempts":
            attempts = frame.get("attempts")
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                attempts = DEFAULT_ATTEMPTS
            seconds = seconds_text(frame.get("seconds"))
            out.append(Show("system", f"You have entered wrong password {times_text(attempts)} "
                                      f"times. You will be blocked for {seconds} seconds."))
        elif code == "locked":
            seconds = frame.get("seconds")      # (the original's words, and how long)
            left = f" (in {seconds} s)" if type(seconds) is int and seconds > 0 else ""
            out.append(Show("system", f"You are still blocked, please try again later{left}"))
            # the password is asked again, as the original's transcript does: once the time
            # is up it is typed again, not the name first
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        elif code == "unknown_user":
            out.append(Show("system", "Wrong username."))
        elif code == "slow_down":
            # not refused: the server checks only so many passwords a second (hashed, each
            # costs it milliseconds); the same login goes again once it has waited as asked
            wait_s = limits.asked_wait(frame.get("seconds"), 1.0, LOGIN_RETRY_MAX_S)
            self.login_again = sent
            out.append(Show("system", f"The server is busy logging people in; trying again "
                                      f"in {wait_s:g} s."))
            self._arm(LoginRetry(), now + wait_s, out)
            return
        elif code == "unavailable":
            # not refused either: the server cannot store anything just now (a full disk); a
            # trial's user was asked the password again, as if it were wrong, and a login
            # typed again was all that got in once the disk had room
            wait_s = limits.asked_wait(frame.get("seconds"), 1.0, LOGIN_RETRY_MAX_S)
            if self._login_unavailable_at is None:
                self._login_unavailable_at = now
                out.append(Show("system", f"The server cannot store anything just now; your "
                                          f"login is tried again every {wait_s:g} s until it "
                                          f"can (Ctrl-C leaves)."))
            elif (self.settings.scripted
                  and now - self._login_unavailable_at >= self.settings.outage_wait_s):
                # a script waits as long as for its messages in an outage (a review's retried
                # for as long as the disk stayed full); a person leaves with Ctrl-C
                self._script_stops(out, f"the login failed (the server could not store "
                                        f"anything for {self.settings.outage_wait_s:g} s)")
                return
            self.login_again = sent
            self._arm(LoginRetry(), now + wait_s, out)
            return
        else:
            out.append(Show("system", error_text(frame)))
            self._login_refused(out)
            out.append(Prompt(Stage.PASSWORD))
            return
        self._login_refused(out)
        self._back_to_username(out)

    def _login_refused(self, out):
        """A name or a password was refused. A script's next line answers the next prompt,
        as in the original's transcripts (a wrong name, then the right one; three wrong
        passwords, then the name again): it reads on, and ends with status 1. A person is asked
        again, and what they typed ahead, meant for the prompt that would have come next (a
        password, say), is not used: told how much, never what (a trial's password, typed after
        a mistyped name, went to the server as the next name, and showed)."""
        if self.settings.scripted:
            self.refused_logins += 1
        else:
            self._forget_typed_ahead(out)

    def _script_fails(self, why, out):
        """A login that cannot be tried (no server): a run reading a file or a pipe stops
        there -> True if it did; a person's lines typed ahead are not used."""
        if self._script_stops(out, f"the login failed ({why})"):
            return True
        self._forget_typed_ahead(out)
        return False

    def _forget_typed_ahead(self, out):
        if self.lines:
            said = plural(len(self.lines), "line")
            self.lines.clear()
            out.append(Show("system", f"What you typed after it ({said}) was not used."))

    def _script_stops(self, out, why):
        """A run reading a file or a pipe stops where a person would have to decide what to
        type next, with status 1 and `why` -> True if it did."""
        if not self.settings.scripted:
            return False
        if self.lines or not self.input_ended:
            why += "; the rest of the input was not read"   # (said only when there was one)
        self.lines.clear()
        if self.outbox.sending in self.pending:
            # its answer is on the way: waited for (exit_wait_s at most), the list of what was
            # not sent says whether the server took it. (A script stopped past its time-out
            # said "Perhaps not sent" of a message the server then refused: no_session.)
            self.exiting = True
            self._stop_why = why
            out.append(Arm(ExitDue(), self._now + self.settings.exit_wait_s))
        else:
            self._exit(out, 1, why)
        return True

    def _stopped_when_answered(self, out):
        """A script's stop that waited for its message in flight goes on once it is answered."""
        if self._stop_why is not None and self.outbox.sending is None and not self.done:
            self._exit(out, 1, self._stop_why)

    def _logged_in(self, frame, now, out):
        self.stage = Stage.LOGGED_IN
        self.logged_in_once = True
        self.session_user = self.user
        # a run of notices is one session's ("seas is offline" said to one user was never said
        # to the next user of the same client: a trial's piped run)
        self._run_notices.clear()
        self.said_unreached = False     # (said once a session: a re-check's second wasn't)
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
        self.heartbeat_s = heartbeat_within(self.settings.heartbeat_s, frame.get("timeout"))
        if self.settings.stay:
            self.heartbeat_s = staying_heartbeat(self.heartbeat_s, frame.get("timeout"))
        out.append(Show("system", "You have successfully logged in."))
        self._arm(HeartbeatDue(), now + self.heartbeat_s, out)
        self._admitted(self.doorkeeper.release(self.user, self.proof), out)
        self._outbox_after_login(now, out)

    def _reply_command(self, pending, frame, now, out):
        command = pending.command
        if self._stale(pending):
            return
        if command.name == "logout":
            self._logged_out(out)
            return
        if error_code(frame) == "no_session":
            # (a trial's `online` typed after a restart was not spoken of again)
            self._not_done("ended_not_done", command, out)
            self._session_ended(out, frame)
            return
        if error_code(frame) == "slow_down":
            # not refused: sent again once we have waited as asked, what was typed after it
            # waiting behind it, as for a message (a trial's blocks typed after 150 `online`
            # were answered "too many requests", and never done)
            wait_s = limits.asked_wait(frame.get("seconds"), 1.0, LOGIN_RETRY_MAX_S)
            self.command_again = command
            self._notice(f"The server asks us to slow down; {described(command)} goes again "
                         f"in {wait_s:g} s.", out, key="command slowed")
            self._arm(CommandRetry(), now + wait_s, out)
            return
        self._run_notices.discard("command slowed")
        if command.name == "getaddress" and frame.get("type") == "ok":
            self.peers.asking[command.user] = now
            # each screen words it; one sent again after a wait names its user (a trial's bare
            # "request sent" came after another getaddress had been typed)
            out.append(Show("asked_again" if command is self.sent_again else "asked",
                            sender=command.user))
            return
        lines = reply_lines(command, frame)
        if lines is None:
            out.append(Log(f"unexpected reply to {command.name}: {frame.get('type')}"))
            return
        if frame.get("type") == "ok":
            self._peer_reply(command, frame, out)
        elif frame.get("type") == "error":
            # (a trial's script ended 0 after "User nobody does not exist." to a block, and 1
            # after it to a message)
            self.refused_commands += 1
        if command.name == "online" and frame.get("type") == "online":
            out.append(ShowOnline(tuple(u for u in frame.get("users") or [] if isinstance(u, str))))
            return
        out.extend(Show("system", line) for line in lines)

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

    def _reply_exit(self, pending, frame, now, out):
        self._exit(out)

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

    def _reply_probe(self, pending, frame, now, out):
        if self.awaiting_server:
            self.awaiting_server = False
            out.append(Prompt(Stage.USERNAME))

    def _fail_probe(self, pending, now, out):
        if not self.awaiting_server:
            return
        if self.settings.stay:
            # its link was taken (LinkUp): only the look at the port failed (a server that
            # allows one connection an address, or stopped meanwhile), and the link carries
            # the name as it did before the look (a re-attack's staying client, its probe
            # failed, never asked the server again)
            self.awaiting_server = False
            out.append(Prompt(Stage.USERNAME))
            return
        self._missing_at_start(out)

    def _probe_later(self, now, out):
        """Look for the server again after a backoff, unless a look is planned or under way."""
        if ProbeDue in self.outage.tries_at or self._probing():
            return
        self._arm(ProbeDue(), now + self.outage.next_probe_s(), out)

    def _probing(self):
        """True while a probe is on its way."""
        return any(p.purpose is Purpose.PROBE for p in self.pending.values())

    def _probe_due(self, key, now, out):
        if (self.stage is not Stage.LOGGED_IN and not self.exiting
                and self.outage.reason is not None):
            self._request(Purpose.PROBE, None, out, blocks_input=False)

    def _waits_for_server(self):
        """True if something will look for the server by itself (probes, or a staying
        client's link, made again with backoff), so a name or login can wait for it; a client
        that does neither would wait for nothing, and asks again."""
        return self.settings.check_server or self.settings.stay

    def _fail_check_user(self, pending, now, out):
        if self._script_fails(f"cannot reach the server: {self.outage.reason}", out):
            return
        if str(self.user).lower() in QUIT_WORDS:
            self._on_interrupted(None, now, out)       # (a way out, whatever the server says)
        elif str(self.user).lower() in COMMAND_LIKE_WORDS:
            # most likely a way out, not a name: asked again, not held for the server (a
            # trial's "quit" in an outage waited as a name, with what was typed after it)
            out.append(Show("system", f"{self.user} was not checked: the server cannot be "
                                      f"reached. Type an account's name; Ctrl-D or Ctrl-C "
                                      f"leaves."))
            out.append(Prompt(Stage.USERNAME))
        elif self._waits_for_server():
            # the name waits for the server, as a login does (_fail_login), and the lines typed
            # after it with it: asked again, the password typed next was shown, and taken for
            # a name (a trial's, after a logout with the server down; another's staying client)
            self.login_again = {"type": "check_user", "user": self.user}
            self.login_waits = True
            out.append(Show("system", "Your user name waits for the server, and is checked as "
                                      "soon as it answers."))
            self._leave_if_ended_while_waiting(self._now, out)
        else:
            out.append(Prompt(Stage.USERNAME))

    def _fail_login(self, pending, now, out):
        out.extend(self.doorkeeper.refuse_held())
        if self.exiting:            # (Ctrl-C as it went: nothing to log out of)
            self._login_sent = None
            self._exit(out)
            return
        if self._script_fails(f"cannot reach the server: {self.outage.reason}", out):
            return
        # the password typed is kept, not asked for again: the login goes again once a probe
        # finds the server (_reached), or a staying client's link is made again (LinkUp), as
        # typed lines wait (a trial's had to be typed again; another's staying client took a
        # message typed after it for the password)
        sent, self._login_sent = self._login_sent, None
        self.login_again = sent if self._waits_for_server() else None
        self.login_waits = self.login_again is not None
        if self.login_waits:
            out.append(Show("system", "Your login waits for the server, and goes as soon as "
                                      "it answers."))
            self._leave_if_ended_while_waiting(self._now, out)
        else:
            out.append(Prompt(Stage.PASSWORD))

    def _fail_command(self, pending, now, out):
        if pending.command.name == "logout" and not self._stale(pending):
            # the server ends the session itself once our heartbeats stop
            self._logged_out(out)
        elif not self._stale(pending):
            # (a trial's block typed in an outage was never spoken of again, and had been
            # done: the request reached a stopped server, which did it once it went on)
            kind = "not_done" if self.outage.reason in NEVER_SENT else "perhaps_not_done"
            self._not_done(kind, pending.command, out)

    def _not_done(self, kind, command, out):
        """Say `command` was not done (or may not have been: `kind`, each screen words it),
        and count it for a script's status."""
        out.append(Show(kind, described(command)))
        if kind == "perhaps_not_done":
            self.perhaps_done += 1
        else:
            self.not_done += 1

    def _fail_exit(self, pending, now, out):
        self._exit(out)

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

    # -- sessions -------------------------------------------------------------------------------

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

    def _resume(self, now, out):
        self.last_request_at = now
        self._request(Purpose.RESUME, {"type": "resume", "token": self.token}, out,
                      blocks_input=False)

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
        # consent ends with the session, on both sides
        out.extend(self.peers.forget_all())
        out.extend(self.doorkeeper.close_peers(lambda name: True, session_ended=True))
        if ask:
            out.append(Prompt(Stage.USERNAME))

    def _start_exit(self, now, out):
        """Log out, then exit on the reply, a failure, or after exit_wait_s."""
        self.exiting = True
        self._cancel(HeartbeatDue(), out)
        self._request(Purpose.EXIT, {"type": "logout", "token": self.token}, out,
                      blocks_input=False)
        out.append(Arm(ExitDue(), now + self.settings.exit_wait_s))

    def _exit_due(self, key, now, out):
        if self._stop_why is not None:
            out.append(Log("no answer to the message in flight; stopping anyway"))
            self._exit(out, 1, self._stop_why)
        elif self.exiting and self.token is None and self._login_sent is not None:
            # (a trial's Ctrl-C as a stopped server held the login left without a word; the
            # server went on, took it, and showed the user online until its time-out). Said as
            # the program ends, so that a window, closing, shows it too (a re-attack's did not)
            self._exit(out, 0, "the login got no answer: if the server takes it later, you "
                               "show as online until it times the session out")
        elif self.exiting:
            out.append(Log("no reply to logout; exiting anyway"))
            self._exit(out, 0, "the logout got no answer: you may show as online until the "
                               "server times the session out")

    def _report_unread(self, out):
        """Lines typed and not yet taken (a line before them waits for the server) go unread
        when the user quits: a message is listed as not sent, the rest counted, never shown
        (before a login one may be a password). A trial's Ctrl-C, as a stopped server held the
        line before them, lost them without a word."""
        unread = 0
        for line in self.lines:
            command = parse_command(line) if self.stage is Stage.LOGGED_IN else None
            if type(command) is Command and command.name in ("message", "broadcast", "private"):
                self.unread_messages += 1
                out.append(ShowFate(None, Fate.REFUSED, "Not sent (you quit before it went): "
                                    + described(command), "you quit before it went", True))
            elif type(command) is Command and command.name not in ("logout", "quit"):
                # (named: a trial's "Not read: 1 line" did not say which command was not done)
                self.not_done += 1
                out.append(ShowFate(None, Fate.REFUSED, "Not done (you quit before it went): "
                                    + described(command), "you quit before it went", True))
            else:
                unread += 1
        if unread:
            self.unread_lines += unread
            out.append(ShowFate(None, Fate.REFUSED, f"Not read: {plural(unread, 'line')} you "
                                                    f"typed before quitting.", "", True))
        self.lines.clear()

    def _exit(self, out, code=0, reason=""):
        leaving = self.exiting          # (the user chose to leave, before this)
        self.exiting = self.done = True
        # left at a name prompt by choice, what was kept for the next login waited for it (a
        # trial's was said never acknowledged by the server); a session that ended as the
        # user left (a restart) is no choice of theirs (a reviewer's window said so)
        why = ("the server never acknowledged it" if self.token is not None or code
               or self.session_user is None
               else "the session ended before the server took it" if leaving
               else f"you did not log in again as {self.session_user}")
        for pending in self.pending.values():
            if (leaving and pending.purpose is Purpose.COMMAND
                    and pending.command.name not in ("logout", "online")):
                # sent, never answered: a stopped server may still do it (a trial's unblock,
                # left at a Ctrl-C without a word, was done once the server went on)
                self.perhaps_done += 1
                out.append(ShowFate(None, Fate.UNSURE, "Perhaps not done (you quit before the "
                                    "server answered): " + described(pending.command),
                                    "you quit before the server answered", True))
        listed = len(out)
        self._report_unsent(out, why, at_exit=True)
        sent = [item.fate for item in out[listed:] if type(item) is ShowFate]
        undelivered = self.peers.left_undelivered()
        out.extend(undelivered)
        private = [item.fate for item in undelivered if type(item) is ShowFate]
        # counted as each was listed (a trial's private message, which its peer had shown,
        # was counted "not sent" under the line that said "Perhaps not delivered")
        unsure, unsure_private = sent.count(Fate.UNSURE), private.count(Fate.UNSURE)
        unsent = len(sent) + len(private) - unsure - unsure_private + self.unread_messages
        failures = [(unsent, "message", "not sent (listed above)"),
                    (unsure, "message", "perhaps not sent (listed above)"),
                    (unsure_private, "private message", "perhaps not delivered (listed above)"),
                    (self.refused, "message", "refused (said above)"),
                    (self.refused_logins, "login", "refused (said above)"),
                    (self.not_understood, "line", "not understood (said above)"),
                    (self.not_done, "command", "not done (said above)"),
                    (self.perhaps_done, "command", "perhaps not done (said above)"),
                    (self.unread_lines, "line", "not read (said above)"),
                    (self.refused_commands, "command", "refused (said above)"),
                    (self.privates_undelivered, "private message",
                     "not delivered (said above)"),
                    (self.privates_unsure, "private message",
                     "perhaps not delivered (said above)")]
        if any(count for count, _, _ in failures) and self.settings.scripted:
            # what reads a script's status cannot read the lines above it (a trial's ran to
            # its end with three listed as not sent, status 0; another's with one refused;
            # another's three wrong passwords said only that no login had succeeded)
            said = _failures_said(failures)
            reason = f"{reason}; {said}" if reason else said
            code = 1
        elif unsent or unsure or unsure_private:
            # said as the program ends too, not only above it: a window's lines go with it (a
            # reviewer's closed without a word, its message not sent), and it shows this
            said = _failures_said([(unsent, "message", "not sent"),
                                   (unsure, "message", "perhaps not sent"),
                                   (unsure_private, "private message", "perhaps not delivered")])
            reason = f"{reason}; {said}" if reason else said
        out.append(Exit(code, reason))

    # -- deliveries -----------------------------------------------------------------------------

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
            out.append(Log(f"message {seq} came while logging out; it waits for the next login"))
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
        out.append(show if show is not None else Log(f"malformed {frame['type']} delivery ignored"))

    # -- peer to peer (the rules live in peer.py) -----------------------------------------------

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

    def _revoke_consent(self, user, out, blocked=False):
        self.peers.revoke(user, blocked)
        out.extend(self.doorkeeper.close_peers(lambda name: name == user))


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


def _failures_said(failures):
    """[(count, what is counted, what became of them)] -> "2 messages were not sent; ..."."""
    return "; ".join(f"{plural(count, word)} {'were' if count > 1 else 'was'} {fate}"
                     for count, word, fate in failures if count)
