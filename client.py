"""The chat client: the `ChatClient` core, and the glue that runs it (line helpers: commands.py).

The core takes `(event, now)` and returns a list of actions; it never touches a socket, the
screen or the clock. The glue at the bottom maps its actions onto `reactor.py` and the
`Terminal`, and is the only part that does I/O.

Run: python3 client.py HOST PORT [--heartbeat S] [--gui] [--stay-connected [--no-listen]]
"""
import argparse
import hmac
import os
import secrets
import socket
import ssl
import sys
from collections import deque
from dataclasses import dataclass, field

from commands import (DEFAULT_ATTEMPTS, Command, Usage, delivery_look, described, error_code,
                      error_text, help_lines, is_seq, parse_command, presence_notices, render,
                      reply_lines, seconds_text, times_text)
import options
import peer
import protocol
from peer import LinkClosed, LinkIn
from reactor import FRAME_TIME_S, Handler, RealClock, Reactor
from terminal import Terminal

HEARTBEAT_S = 30.0          # the server ends a session silent for 31 s
EXIT_WAIT_S = 2.0           # how long an exiting client waits for its logout reply
REQUEST_TIMEOUT_S = 10.0    # a request connection with no answer by then counts as failed
DELIVERY_IDLE_S = 60.0      # an accepted connection silent this long is closed
RETRY_FIRST_S = 1.0         # a message the server did not take is sent again after this,
RETRY_MAX_S = 30.0          # doubling up to this, until the server acknowledges it
HEARTBEAT_KEY = ("heartbeat",)
EXIT_KEY = ("exit",)
RETRY_KEY = ("retry",)
PRIVATE_SEEN_MAX = 10_000

ASK_USER = "Please enter username:"
ASK_PASSWORD = "Please enter password:"


# -- events and actions -----------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    """The client is up; ask for a username."""


@dataclass(frozen=True)
class LineIn:
    """The user typed a line (without its newline)."""
    text: str


@dataclass(frozen=True)
class InputEnded:
    """Standard input is finished (end of file, or Ctrl-D on an empty line)."""


@dataclass(frozen=True)
class Interrupted:
    """Ctrl-C or SIGTERM."""


@dataclass(frozen=True)
class Replied:
    """The server answered request `request_id` with `frame`."""
    request_id: int
    frame: dict


@dataclass(frozen=True)
class RequestFailed:
    """Request `request_id` got no answer: the server could not be reached or hung up."""
    request_id: int
    reason: str


@dataclass(frozen=True)
class Incoming:
    """A decoded frame arrived on connection `conn` accepted by our listening port."""
    conn: int
    frame: dict


@dataclass(frozen=True)
class Accepted:
    """Our listening port accepted connection `conn`; `nonce` is fresh for its challenge."""
    conn: int
    nonce: str


@dataclass(frozen=True)
class IncomingClosed:
    """An accepted connection is gone."""
    conn: int


@dataclass(frozen=True)
class LinkUp:
    """Our staying connection to the server is open (--stay-connected), at the start or again
    after it was lost; requests go on it from now on, this event's first."""


@dataclass(frozen=True)
class Pushed:
    """The server sent `frame` unasked on our staying connection `conn`: a delivery. The
    connection is our own, so it needs no hello; acks go back on it."""
    conn: int
    frame: dict


@dataclass(frozen=True)
class Expired:
    """The timer armed with `key` is due."""
    key: tuple


@dataclass(frozen=True)
class Print:
    """Show one line on the screen. `kind` and `sender` are for screens that show lines apart
    (the GUI); the terminal prints `text` alone.

    kind: "system" (the default), "message", "broadcast", "offline" (a message or broadcast
    kept for this login), "joined"/"left" (sender is the user), "online" (a line of the reply
    to `online`), "outage" (the server cannot be reached), "private" (from a peer, the sender).
    """
    text: str
    kind: str = "system"
    sender: str | None = None


@dataclass(frozen=True)
class ShowOnline:
    """The reply to `online`: these other users are online (a screen may keep a list)."""
    users: tuple


@dataclass(frozen=True)
class AskSecret:
    """True: do not echo the next input (a password); False: echo again."""
    secret: bool


@dataclass(frozen=True)
class Request:
    """Send `frame` to the server on a short connection, tagged with `request_id`."""
    request_id: int
    frame: dict


@dataclass(frozen=True)
class SendTo:
    """Send `frame` on accepted connection `conn`."""
    conn: int
    frame: dict


@dataclass(frozen=True)
class CloseConn:
    """Close accepted connection `conn`."""
    conn: int


@dataclass(frozen=True)
class Arm:
    """Deliver Expired(key) at clock time `at`; the same key replaces the old timer."""
    key: tuple
    at: float


@dataclass(frozen=True)
class Cancel:
    """Forget the timer armed with `key`."""
    key: tuple


@dataclass(frozen=True)
class Log:
    """A diagnostic line for stderr (never a password)."""
    text: str


@dataclass(frozen=True)
class Exit:
    """End the program with `code`."""
    code: int


@dataclass
class Settings:
    """What the core needs to know about its surroundings."""
    listen_port: int | None     # None: nothing listens, so no peer (nor short delivery) reaches us
    stay: bool = False          # keep one connection to the server for requests and deliveries
    heartbeat_s: float = HEARTBEAT_S
    exit_wait_s: float = EXIT_WAIT_S
    client_id: str = "c"        # starts every message id; random per run in production


# -- the core ---------------------------------------------------------------------------------

# Where the user is: what the next input line means.
USERNAME, PASSWORD, LOGGED_IN = "username", "password", "logged in"


@dataclass
class _Pending:
    """A request waiting for its reply: what it was for, and the session it belongs to."""
    kind: str
    blocks_input: bool
    token: str | None = None
    command: Command | None = None


@dataclass
class _Outgoing:
    """A message or broadcast waiting for the server's acknowledgement, in the order typed."""
    mid: str                    # our id for it: a retry is recognised, never stored twice
    user: str                   # who typed it: it is sent only in that user's session
    command: Command
    ref: str | None = None      # the private message id, when a peer could not be reached


@dataclass
class _Delivery:
    """An accepted connection: unproven until its hello, then trusted or refused."""
    state: str = "new"                          # "new", "held", "trusted", "peer", "refused"
    held: list = field(default_factory=list)    # frames that wait for the login's proof
    nonce: str | None = None                    # the challenge a peer must answer
    peer: str | None = None                     # a proven peer ("peer" state), and the key
    key: str | None = None                      # it proved: a new consent does not renew it


class ChatClient:
    """The client's logic: `handle(event, now)` -> list of actions."""

    def __init__(self, settings):
        self.settings = settings
        self.stage = USERNAME
        self.user = None
        self.token = None
        self.proof = None
        self.lines = deque()            # typed lines waiting for the one in flight
        self.waiting_for = None         # request id of the line in flight, if any
        self.pending = {}               # request id -> _Pending
        self.deliveries = {}            # accepted conn -> _Delivery
        self.shown_upto = {}            # user -> highest seq of a stored message shown
        self.outbox = deque()           # _Outgoing, oldest first; the head is sent alone
        self.outbox_sending = None      # request id of the head in flight, if any
        self.retry_s = 0.0              # the wait before the next try; doubles per failure
        self._mids = 0
        self.peers = peer.Peers(settings.client_id)   # addresses and keys given by consent, links
        # (sender, pid) of private messages shown, so one that also comes through the server
        # (its acknowledgement was lost) is shown once; oldest forgotten past PRIVATE_SEEN_MAX
        self.private_seen = {}
        self.last_request_at = None     # the last request carrying our token: a sign of life
        self.outage = False             # "cannot reach" was shown; quiet until a reply arrives
        self.detached = False           # staying: the server has not yet taken our resume
        self.no_port_told = False       # without a listening port: said so at the first private
        self.input_ended = False
        self.exiting = False
        self.done = False               # Exit was returned: nothing more happens
        self._ids = 0

    def handle(self, event, now):
        """One event -> the actions it causes."""
        if self.done:
            return []
        out = []
        handler = getattr(self, "_on_" + type(event).__name__)
        handler(event, now, out)
        self._run_lines(now, out)
        return out

    # -- events -------------------------------------------------------------------------------

    def _on_Started(self, event, now, out):
        out.append(Print(ASK_USER))

    def _on_LineIn(self, event, now, out):
        self.lines.append(event.text)

    def _on_InputEnded(self, event, now, out):
        # queued lines still run; _run_lines starts the exit once they are done
        self.input_ended = True

    def _on_Interrupted(self, event, now, out):
        self.lines.clear()
        if self.exiting or self.token is None:
            self._exit(out)       # not logged in, or a second Ctrl-C: leave at once
        else:
            self._start_exit(now, out)

    def _on_Replied(self, event, now, out):
        pending = self._finish(event.request_id, out)
        if pending is None:
            return
        self.outage = False
        getattr(self, "_reply_" + pending.kind)(pending, event.frame, now, out)

    def _on_RequestFailed(self, event, now, out):
        pending = self._finish(event.request_id, out)
        if pending is None:
            return
        # the user hears about an outage once; a line they typed always gets an answer
        if pending.blocks_input or not self.outage:
            out.append(Print(f"Cannot reach the server ({event.reason}).", "outage"))
        self.outage = True
        getattr(self, "_fail_" + pending.kind, self._fail_quietly)(pending, now, out)

    def _on_Expired(self, event, now, out):
        if event.key == HEARTBEAT_KEY:
            self._heartbeat_due(now, out)
        elif event.key == EXIT_KEY and self.exiting:
            out.append(Log("no reply to logout; exiting anyway"))
            self._exit(out)
        elif event.key == RETRY_KEY:
            if self.stage == LOGGED_IN and not self.exiting:
                self._send_head(now, out, blocks_input=False)
        elif event.key[0] == "link":
            self._peer_items(self.peers.link_idle(event.key[1], now), out)

    def _on_Incoming(self, event, now, out):
        delivery = self.deliveries.setdefault(event.conn, _Delivery())
        if delivery.state == "refused":
            return
        if delivery.state == "held":
            delivery.held.append(event.frame)
        elif delivery.state == "new":
            self._check_hello(event.conn, delivery, event.frame, now, out)
        elif delivery.state == "peer":
            self._peer_frame(event.conn, delivery, event.frame, out)
        else:
            self._delivered(event.conn, event.frame, now, out)

    def _on_IncomingClosed(self, event, now, out):
        self.deliveries.pop(event.conn, None)

    def _on_Accepted(self, event, now, out):
        # every accepted connection is challenged; the server's deliveries ignore it
        self.deliveries[event.conn] = _Delivery(nonce=event.nonce)
        out.append(SendTo(event.conn, {"type": "challenge", "nonce": event.nonce}))

    def _on_LinkIn(self, event, now, out):
        self._peer_items(self.peers.link_frame(self.user, event.link, event.frame), out)

    def _on_LinkClosed(self, event, now, out):
        self._peer_items(self.peers.link_closed(event.link, event.reason), out)

    def _on_LinkUp(self, event, now, out):
        if self.stage != LOGGED_IN or self.exiting:
            return
        # the server reaches this session on the connection its resume comes on, and sends
        # again, in order, everything not yet acknowledged; the outbox need not wait its turn
        self.detached = True
        self._resume(now, out)
        self.retry_s = 0.0
        self._send_head(now, out, blocks_input=False)

    def _resume(self, now, out):
        self.last_request_at = now
        self._request("resume", {"type": "resume", "token": self.token}, out, blocks_input=False)

    def _on_Pushed(self, event, now, out):
        if self.stage != LOGGED_IN:
            out.append(Log(f"{event.frame.get('type')!r} pushed while logged out ignored"))
            return
        self._delivered(event.conn, event.frame, now, out)

    # -- typed lines ----------------------------------------------------------------------------

    def _run_lines(self, now, out):
        """Handle queued lines in order, one at a time: a line that asks the server waits."""
        while self.waiting_for is None and self.lines and not self.exiting:
            self._line(self.lines.popleft(), now, out)
        if (self.input_ended and self.waiting_for is None and not self.lines and not self.exiting
                and self.outbox_sending is None):
            if self.token is None:
                self._exit(out)
            else:
                self._start_exit(now, out)

    def _line(self, text, now, out):
        if self.stage == USERNAME:
            self._username_line(text.strip(), out)
        elif self.stage == PASSWORD:
            self._password_line(text.strip(), out)
        else:
            self._command_line(text, now, out)

    def _username_line(self, name, out):
        if not name:
            out.append(Print(ASK_USER))
            return
        self.user = name
        self._request("check_user", {"type": "check_user", "user": name}, out, blocks_input=True)

    def _password_line(self, password, out):
        if not password:
            out.append(Print(ASK_PASSWORD))
            return
        frame = {"type": "login", "user": self.user, "password": password}
        if self.settings.stay:
            frame["stay"] = True    # deliveries come on our staying connection, not the port
        if self.settings.listen_port is not None:
            frame["port"] = self.settings.listen_port
        self._request("login", frame, out, blocks_input=True)

    def _command_line(self, text, now, out):
        command = parse_command(text)
        if command is None:
            return
        if isinstance(command, Usage):
            out.append(Print(command.text))
            return
        if command.name == "help":
            out.extend(Print(line) for line in help_lines())
            return
        if command.name == "private":
            self._private(command, now, out)
            return
        if command.name in ("message", "broadcast"):
            self._post(command, now, out, blocks_input=True)
            return
        frame = {"type": command.name, "token": self.token}
        if command.name in ("Y", "N"):
            frame.update(type="consent", user=command.user, agree=command.name == "Y")
        elif command.user is not None:
            frame["user"] = command.user
        if command.name == "logout":
            out.append(Cancel(HEARTBEAT_KEY))
        self.last_request_at = now
        self._request("command", frame, out, blocks_input=True, command=command)

    # -- the outbox: messages are acknowledged by the server, or retried -------------------------

    def _post(self, command, now, out, blocks_input, ref=None):
        """Queue a message or broadcast; send it now unless older ones still wait."""
        self._mids += 1
        self.outbox.append(_Outgoing(f"{self.settings.client_id}-{self._mids}", self.user, command,
                                     ref))
        if len(self.outbox) == 1:
            self._send_head(now, out, blocks_input)
        else:
            out.append(Print(f"The server has not taken your earlier messages yet; this one "
                             f"waits behind them ({len(self.outbox)} waiting)."))

    def _send_head(self, now, out, blocks_input):
        """Send the oldest waiting message alone, so the server takes them in order."""
        if not self.outbox or self.outbox_sending is not None:
            return
        head = self.outbox[0]
        frame = {"type": head.command.name, "token": self.token, "mid": head.mid,
                 "text": head.command.text}
        if head.command.name == "message":
            frame["to"] = head.command.user
        if head.ref is not None:
            frame["ref"] = head.ref
        self.last_request_at = now
        self.outbox_sending = self._request("outbox", frame, out, blocks_input, head.command)

    def _reply_outbox(self, pending, frame, now, out):
        self.outbox_sending = None
        if error_code(frame) == "slow_down":
            # kept, not refused: the server takes it once we wait as long as it says
            wait_s = frame.get("seconds")
            if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or wait_s <= 0:
                wait_s = RETRY_FIRST_S
            wait_s = min(wait_s, RETRY_MAX_S)
            out.extend([Print(f"The server asks us to slow down; your message is kept and sent "
                              f"in {wait_s:g} s."), Arm(RETRY_KEY, now + wait_s)])
            return
        if error_code(frame) == "no_session":
            # kept: it goes out again once this user has logged in again
            if not self._stale(pending):
                self._session_ended(out, frame)
            return
        self.outbox.popleft()
        self.retry_s = 0.0
        lines = reply_lines(pending.command, frame)
        if lines is None:
            out.append(Log(f"unexpected reply to {pending.command.name}: {frame.get('type')}"))
        out.extend(Print(line) for line in lines or [])
        if self.stage == LOGGED_IN:
            self._send_head(now, out, blocks_input=False)

    def _fail_outbox(self, pending, now, out):
        self.outbox_sending = None
        if not self.retry_s:        # an outage begins: say which messages wait
            out.extend(Print("Waiting to be sent: " + described(entry.command))
                       for entry in self.outbox)
        self.retry_s = min(2 * self.retry_s or RETRY_FIRST_S, RETRY_MAX_S)
        waiting = len(self.outbox)
        out.append(Print(f"Your message is kept and will be sent when the server answers "
                         f"({waiting} waiting; next try in {self.retry_s:g} s)."))
        out.append(Arm(RETRY_KEY, now + self.retry_s))

    def _outbox_after_login(self, now, out):
        """Messages typed before the session ended go out now, if this is the same user."""
        if not self.outbox:
            return
        if self.outbox[0].user != self.user:
            self._report_unsent(out, "you logged in as someone else")
            return
        self.retry_s = 0.0
        self._send_head(now, out, blocks_input=False)

    def _report_unsent(self, out, why):
        out.extend(Print(f"Not sent ({why}): " + described(entry.command))
                   for entry in self.outbox)
        self.outbox.clear()

    # -- requests and replies -------------------------------------------------------------------

    def _request(self, kind, frame, out, blocks_input, command=None):
        self._ids += 1
        self.pending[self._ids] = _Pending(kind, blocks_input, self.token, command)
        if blocks_input:
            self.waiting_for = self._ids
        out.append(Request(self._ids, frame))
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
            self.stage = PASSWORD
            out.extend([Print(ASK_PASSWORD), AskSecret(True)])
        elif error_code(frame) == "unknown_user":
            out.extend([Print("Wrong username."), Print(ASK_USER)])
        else:
            out.extend([Print(error_text(frame)), Print(ASK_USER)])

    def _reply_login(self, pending, frame, now, out):
        if frame.get("type") == "welcome":
            self._logged_in(frame, now, out)
            return
        self._refuse_held(out)
        code = error_code(frame)
        if code == "wrong_password":
            out.extend([Print("Wrong password. Please try again."), Print(ASK_PASSWORD)])
            return
        if code == "too_many_attempts":
            attempts = frame.get("attempts")
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                attempts = DEFAULT_ATTEMPTS
            seconds = seconds_text(frame.get("seconds"))
            out.append(Print(f"You have entered wrong password {times_text(attempts)} times. "
                             f"You will be blocked for {seconds} seconds."))
        elif code == "locked":
            out.append(Print("You are still blocked, please try again later"))
        elif code == "unknown_user":
            out.append(Print("Wrong username."))
        else:
            out.extend([Print(error_text(frame)), Print(ASK_PASSWORD)])
            return
        self._back_to_username(out)

    def _logged_in(self, frame, now, out):
        self.stage = LOGGED_IN
        self.token = frame.get("token")
        self.proof = frame.get("proof")
        self.last_request_at = now
        self.outage = False
        out.extend([AskSecret(False), Print("You have successfully logged in."),
                    Arm(HEARTBEAT_KEY, now + self.settings.heartbeat_s)])
        self._release_held(now, out)
        self._outbox_after_login(now, out)

    def _reply_command(self, pending, frame, now, out):
        command = pending.command
        if self._stale(pending):
            return
        if command.name == "logout":
            self._logged_out(out)
            return
        if error_code(frame) == "no_session":
            self._session_ended(out, frame)
            return
        lines = reply_lines(command, frame)
        if lines is None:
            out.append(Log(f"unexpected reply to {command.name}: {frame.get('type')}"))
            return
        if frame.get("type") == "ok":
            self._peer_reply(command, frame, out)
        if command.name == "online" and frame.get("type") == "online":
            out.append(ShowOnline(tuple(u for u in frame.get("users") or [] if isinstance(u, str))))
            out.extend(Print(line, "online") for line in lines)
            return
        out.extend(Print(line) for line in lines)

    def _reply_heartbeat(self, pending, frame, now, out):
        if not self._stale(pending) and error_code(frame) == "no_session":
            self._session_ended(out, frame)

    def _reply_exit(self, pending, frame, now, out):
        self._exit(out)

    def _reply_resume(self, pending, frame, now, out):
        if self._stale(pending):
            return
        if error_code(frame) == "no_session":
            self._session_ended(out, frame)     # timed out meanwhile, or the server restarted
        elif frame.get("type") == "ok":
            self.detached = False
            out.append(Log("the session resumed on a new connection"))
        else:
            # (slow_down, say) the next heartbeat is a resume instead, until one is taken
            out.append(Log(f"resume refused: {error_text(frame)}"))

    def _fail_check_user(self, pending, now, out):
        out.append(Print(ASK_USER))

    def _fail_login(self, pending, now, out):
        out.append(Print(ASK_PASSWORD))
        self._refuse_held(out)

    def _fail_command(self, pending, now, out):
        if pending.command.name == "logout" and not self._stale(pending):
            # the server ends the session itself once our heartbeats stop
            self._logged_out(out)

    def _fail_exit(self, pending, now, out):
        self._exit(out)

    def _fail_quietly(self, pending, now, out):
        """A heartbeat that failed: the next one tries again."""

    # -- sessions -------------------------------------------------------------------------------

    def _heartbeat_due(self, now, out):
        if self.stage != LOGGED_IN or self.exiting:
            return
        # any request with our token is a sign of life, so a heartbeat is due only after silence
        due_at = self.last_request_at + self.settings.heartbeat_s
        if now >= due_at and self.detached:
            self._resume(now, out)      # a resume the server refused is tried again
            due_at = now + self.settings.heartbeat_s
        elif now >= due_at:
            self.last_request_at = now
            self._request("heartbeat", {"type": "heartbeat", "token": self.token}, out,
                          blocks_input=False)
            due_at = now + self.settings.heartbeat_s
        out.append(Arm(HEARTBEAT_KEY, due_at))

    def _logged_out(self, out):
        out.append(Print("You have logged out."))
        self._back_to_username(out)

    def _session_ended(self, out, frame=None):
        if frame is not None and frame.get("restarted") is True:
            out.append(Print("The server has restarted, which ended your session. "
                             "Please log in again."))
        else:
            out.append(Print("Your session has ended. Please log in again."))
        self._back_to_username(out)

    def _back_to_username(self, out):
        """Forget the session and ask for a username."""
        if self.stage == LOGGED_IN:
            out.append(Cancel(HEARTBEAT_KEY))
        elif self.stage == PASSWORD:
            out.append(AskSecret(False))
        self.stage = USERNAME
        self.token = None
        self.proof = None
        self.detached = False
        # consent ends with the session, on both sides
        self._peer_items(self.peers.forget_all(), out)
        self._close_peers(lambda name: True, out)
        out.append(Print(ASK_USER))

    def _start_exit(self, now, out):
        """Log out, then exit on the reply, a failure, or after exit_wait_s."""
        self.exiting = True
        out.append(Cancel(HEARTBEAT_KEY))
        self._request("exit", {"type": "logout", "token": self.token}, out, blocks_input=False)
        out.append(Arm(EXIT_KEY, now + self.settings.exit_wait_s))

    def _exit(self, out):
        self._report_unsent(out, "the server never acknowledged it")
        self.exiting = self.done = True
        out.append(Exit(0))

    # -- deliveries -----------------------------------------------------------------------------

    def _check_hello(self, conn, delivery, frame, now, out):
        if frame.get("type") in ("peer_hello", "private"):
            self._peer_hello(conn, delivery, frame, out)
        elif frame.get("type") == "hello" and self.proof is None and self._login_in_flight():
            # the server may deliver stored messages before our welcome reply is handled
            delivery.state = "held"
            delivery.held.append(frame)
        elif frame.get("type") == "hello" and self._proof_ok(frame.get("proof")):
            delivery.state = "trusted"
        elif frame.get("type") == "error":     # our reactor's name for a frame it could not read
            self._refuse(conn, delivery, f"a bad frame ({frame.get('code')}) before hello", out)
        else:
            self._refuse(conn, delivery, "no hello with the right proof", out)

    def _proof_ok(self, proof):
        if not isinstance(proof, str) or not isinstance(self.proof, str):
            return False
        return hmac.compare_digest(proof.encode(), self.proof.encode())

    def _login_in_flight(self):
        return any(p.kind == "login" for p in self.pending.values())

    def _refuse(self, conn, delivery, why, out):
        delivery.state = "refused"
        delivery.held.clear()
        out.extend([Log(f"refused delivery connection {conn}: {why}"), CloseConn(conn)])

    def _release_held(self, now, out):
        """The welcome gave us the proof: judge the connections that waited for it."""
        for conn, delivery in list(self.deliveries.items()):
            if delivery.state != "held":
                continue
            frames, delivery.held, delivery.state = delivery.held, [], "new"
            for frame in frames:
                self._on_Incoming(Incoming(conn, frame), now, out)

    def _refuse_held(self, out):
        for conn, delivery in self.deliveries.items():
            if delivery.state == "held":
                self._refuse(conn, delivery, "the login it waited for failed", out)

    def _delivered(self, conn, frame, now, out):
        kind = frame.get("type")
        if kind == "bye":
            out.append(CloseConn(conn))
        elif kind == "logged_out":
            if self.stage == LOGGED_IN:
                out.append(Print(render(frame)))
                self._back_to_username(out)
        elif kind in ("message", "broadcast") and is_seq(frame.get("seq")):
            self._numbered(conn, frame, out)
        elif kind == "presence":
            notices = presence_notices(frame, self.user)
            if notices is None:
                out.append(Log("malformed presence delivery ignored"))
            for notice in notices or ():
                self._show(notice, out)
        elif kind in ("message", "broadcast"):
            self._show(frame, out)
        elif kind in peer.PEER_DELIVERIES:
            self._peer_items(self.peers.delivered(frame), out)
        elif kind == "consent_revoked":
            # the user's session ended: the key we gave it is void
            self._revoke_consent(frame.get("user"), out)
        else:
            out.append(Log(f"delivery of unknown type {kind!r} ignored"))

    def _numbered(self, conn, frame, out):
        """A stored message: shown once, in order, whatever the server repeats; acknowledged.

        Sequence numbers only grow, so anything at or below the highest shown is a repeat
        (a redelivery after a lost acknowledgement): acknowledged again, not shown again.
        """
        seq = frame["seq"]
        if seq > self.shown_upto.get(self.user, 0):
            self.shown_upto[self.user] = seq
            if self._first_private_sight(frame.get("from"), frame.get("ref")):
                self._show(frame, out)
        out.append(SendTo(conn, {"type": "ack", "seq": seq}))

    @staticmethod
    def _show(frame, out):
        """A message, broadcast or presence notice -> its line, or a log line if malformed."""
        text = render(frame)
        out.append(Print(text, *delivery_look(frame)) if text is not None
                   else Log(f"malformed {frame['type']} delivery ignored"))

    # -- peer to peer (the rules live in peer.py) -----------------------------------------------

    def _peer_items(self, items, out):
        """Peers' items -> our actions; link actions go to the glue as they are."""
        for item in items:
            kind = type(item)
            if kind is peer.Notice:
                out.append(Print(item.text))
            elif kind is peer.Note:
                out.append(Log(item.text))
            elif kind is peer.Wake:
                out.append(Arm(item.key, item.at))
            elif kind is peer.Resend:
                self._resend(item, out)
            else:
                out.append(item)

    def _private(self, command, now, out):
        if self.settings.listen_port is None and not self.no_port_told:
            # we can still dial a peer; only the way back is missing
            self.no_port_told = True
            out.append(Print("This client has no listening port, so it cannot take private "
                             "messages: others can answer you with message, not private."))
        if command.user not in self.peers.addresses:
            out.append(Print(f"You don't have {command.user}'s address. "
                             f"Type getaddress {command.user} first."))
            return
        self._peer_items(self.peers.send(self.user, command.user, command.text, now), out)

    def _resend(self, item, out):
        """The peer was unreachable: the message goes through the server, delivered or kept."""
        if self.token is None:
            out.append(Print(f"Your message to {item.user} was not delivered."))
            return
        out.append(Print(f"Sending your message to {item.user} through the server instead."))
        self._post(Command("message", item.user, item.text), self.last_request_at, out,
                   blocks_input=False, ref=item.pid)

    def _peer_reply(self, command, frame, out):
        """What an ok to a command changes for peers."""
        if command.name == "Y" and isinstance(frame.get("key"), str):
            self.peers.grant(command.user, frame["key"])
        elif command.name == "block":
            # the blocked user's key ends here, so our listener refuses its next private
            self._revoke_consent(command.user, out)

    def _revoke_consent(self, user, out):
        self.peers.revoke(user)
        self._close_peers(lambda name: name == user, out)

    def _close_peers(self, chosen, out):
        """Close the accepted connections of proven peers whose name is `chosen`."""
        for conn, delivery in self.deliveries.items():
            if delivery.state == "peer" and chosen(delivery.peer):
                delivery.state = "refused"
                out.append(CloseConn(conn))

    def _peer_hello(self, conn, delivery, frame, out):
        try:
            delivery.peer, delivery.key = self.peers.check_hello(self.user, frame, delivery.nonce)
        except peer.PeerRefused as refusal:
            self._refuse_peer(conn, delivery, refusal, out)
            return
        delivery.state = "peer"
        out.append(SendTo(conn, {"type": "ok"}))

    def _peer_frame(self, conn, delivery, frame, out):
        if frame.get("type") == "bye":
            out.append(CloseConn(conn))
            return
        try:
            text = self.peers.check_private(delivery.peer, delivery.key, frame)
        except peer.PeerRefused as refusal:
            self._refuse_peer(conn, delivery, refusal, out)
            return
        if self._first_private_sight(delivery.peer, frame.get("pid")):
            out.append(Print(f"{delivery.peer} (private): {text}", "private", delivery.peer))
        out.append(SendTo(conn, {"type": "ok"}))

    def _first_private_sight(self, sender, pid):
        """False if this private message (by its sender's id) was shown already; else note it."""
        if not isinstance(pid, str) or not pid:
            return True         # not a private message, or a peer that numbers none
        if (sender, pid) in self.private_seen:
            return False
        self.private_seen[(sender, pid)] = None
        if len(self.private_seen) > PRIVATE_SEEN_MAX:
            del self.private_seen[next(iter(self.private_seen))]
        return True

    def _refuse_peer(self, conn, delivery, refusal, out):
        """Told once per connection, logged, answered not_allowed and closed."""
        delivery.state = "refused"
        out.extend([Print(refusal.line), Log(f"refused peer connection {conn}: {refusal.why}"),
                    SendTo(conn, protocol.error("not_allowed")), CloseConn(conn)])


# -- glue: the core on the reactor ------------------------------------------------------------

_REASON_WORDS = {"eof": "the connection closed before a reply"}


def _decoded(line):
    """A received frame's bytes -> dict; a bad frame becomes the error frame that names it."""
    try:
        return protocol.decode(line)
    except protocol.FrameError as exc:
        return protocol.error(exc.code, detail=str(exc))


class _Requests(Handler):
    """Short connections to the server, one request and its bye each; the first frame back
    is the reply."""

    def __init__(self, glue):
        self.glue = glue

    def on_frame(self, conn, line):
        self._replied(conn, _decoded(line))

    def on_oversize(self, conn):
        self._replied(conn, protocol.error("too_long"))

    def _replied(self, conn, frame):
        if "replied" not in conn.data:
            conn.data["replied"] = True
            self.glue.feed(Replied(conn.data["request_id"], frame))

    def on_closed(self, conn, reason):
        conn.data["timer"].cancel()
        if "replied" not in conn.data:
            reason = _REASON_WORDS.get(reason, reason)
            self.glue.feed(RequestFailed(conn.data["request_id"], reason))


class _Deliveries(Handler):
    """Connections the server opens to our listening port to deliver frames."""

    def __init__(self, glue):
        self.glue = glue

    def on_accepted(self, conn):
        self.glue.incoming[conn.id] = conn
        self._wake_idle(conn, FRAME_TIME_S)     # one that sends nothing is gone soon
        self.glue.feed(Accepted(conn.id, secrets.token_hex(16)))

    def on_frame(self, conn, line):
        self._wake_idle(conn)
        self.glue.feed(Incoming(conn.id, _decoded(line)))

    def on_oversize(self, conn):
        self.glue.feed(Incoming(conn.id, protocol.error("too_long")))

    def on_closed(self, conn, reason):
        conn.data["idle"].cancel()
        self.glue.incoming.pop(conn.id, None)
        self.glue.feed(IncomingClosed(conn.id))

    def _wake_idle(self, conn, limit_s=DELIVERY_IDLE_S):
        if "idle" in conn.data:
            conn.data["idle"].cancel()
        conn.data["idle"] = self.glue.reactor.call_later(limit_s, lambda: conn.close("idle"))


class _Links(Handler):
    """Our connections to peers' listening ports (peer.py has the link protocol)."""

    def __init__(self, glue):
        self.glue = glue

    def on_frame(self, conn, line):
        self.glue.feed(LinkIn(conn.data["link"], _decoded(line)))

    def on_oversize(self, conn):
        self.glue.feed(LinkIn(conn.data["link"], protocol.error("too_long")))

    def on_closed(self, conn, reason):
        if "abort" in conn.data:
            conn.data["abort"].cancel()
        self.glue.links.pop(conn.data["link"], None)
        self.glue.feed(LinkClosed(conn.data["link"], reason))


class ClientGlue:
    """Feeds reactor events to a ChatClient and carries out its actions."""

    def __init__(self, reactor, terminal, server, tls=None, server_name=None):
        self.reactor = reactor
        self.terminal = terminal
        self.server = server            # (host, port)
        self.tls = tls                  # an ssl.SSLContext when the server speaks TLS
        self.server_name = server_name  # the name its certificate must carry
        self.core = None                # set once the listening port is known
        self.requests = _Requests(self)
        self.deliveries = _Deliveries(self)
        self.incoming = {}              # conn id -> accepted Connection
        self.link_handler = _Links(self)
        self.links = {}                 # link id -> our Connection to a peer
        self.stay = None                # a stay.StayLink with --stay-connected: it carries requests
        self.timers = {}                # Arm key -> reactor Timer
        self.exit_code = None
        self.input_done = False
        self._events = deque()
        self._feeding = False

    def feed(self, event):
        """Hand one event to the core and carry out its actions, in arrival order."""
        # an action (a refused connect, say) may report back at once: queue, do not recurse
        self._events.append(event)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._events:
                for action in self.core.handle(self._events.popleft(), self.reactor.clock.now()):
                    getattr(self, "_do_" + type(action).__name__)(action)
        finally:
            self._feeding = False

    def on_input(self, data):
        """Raw stdin bytes -> typed lines, and the end of input on Ctrl-D."""
        for line in self.terminal.feed(data):
            self.feed(LineIn(line))
        if self.terminal.ended:
            self._input_ended()

    def on_input_end(self, reason):
        """Standard input closed: its last unterminated line still counts."""
        for line in self.terminal.finish():
            self.feed(LineIn(line))
        self._input_ended()

    def on_signal(self, signum):
        self.feed(Interrupted())

    def _input_ended(self):
        if not self.input_done:
            self.input_done = True
            self.feed(InputEnded())

    def _do_Print(self, action):
        self.terminal.show(action.text)

    def _do_ShowOnline(self, action):
        """The terminal shows the list through the Print lines that follow."""

    def _do_AskSecret(self, action):
        self.terminal.set_secret(action.secret)

    def _do_Log(self, action):
        self.terminal.log(action.text)

    def _do_Request(self, action):
        if self.stay is not None:
            self.stay.request(action.request_id, action.frame)
            return
        conn = self.reactor.connect(*self.server, self.requests, tls=self.tls,
                                    server_hostname=self.server_name)
        conn.data["request_id"] = action.request_id
        conn.data["timer"] = self.reactor.call_later(REQUEST_TIMEOUT_S,
                                                     lambda: conn.abort("no reply"))
        conn.send(protocol.encode({**action.frame, "id": action.request_id}))
        conn.send(protocol.encode({"type": "bye"}))

    def _do_SendTo(self, action):
        if action.conn in self.incoming:
            self.incoming[action.conn].send(protocol.encode(action.frame))
        elif self.stay is not None:
            self.stay.send_on(action.conn, action.frame)

    def _do_CloseConn(self, action):
        if action.conn in self.incoming:
            self.incoming[action.conn].close("done")

    def _do_OpenLink(self, action):
        conn = self.reactor.connect(action.host, action.port, self.link_handler,
                                    timeout_s=peer.PEER_CONNECT_S)
        conn.data["link"] = action.link
        self.links[action.link] = conn

    def _do_SendOnLink(self, action):
        if action.link in self.links:
            self.links[action.link].send(protocol.encode(action.frame))

    def _do_EndLink(self, action):
        conn = self.links.get(action.link)
        if conn is None or "abort" in conn.data:
            return
        conn.send(protocol.encode({"type": "bye"}))
        # the peer's listener closes first; one that does not is dropped after a while
        conn.data["abort"] = self.reactor.call_later(REQUEST_TIMEOUT_S,
                                                     lambda: conn.abort("no close after bye"))

    def _do_Arm(self, action):
        self._do_Cancel(action)
        self.timers[action.key] = self.reactor.call_at(action.at, lambda: self._expired(action.key))

    def _do_Cancel(self, action):
        timer = self.timers.pop(action.key, None)
        if timer is not None:
            timer.cancel()

    def _expired(self, key):
        self.timers.pop(key, None)
        self.feed(Expired(key))

    def _do_Exit(self, action):
        self.exit_code = action.code
        self.reactor.stop()


def parse_args(argv):
    """Command-line words -> namespace (host resolved to an IPv4 address); exits 2 if bad."""
    parser = argparse.ArgumentParser(prog="client.py", description="The chat room client.")
    parser.add_argument("host", help="the server's name or IPv4 address")
    parser.add_argument("port", type=options.port, help="the server's port")
    parser.add_argument("--heartbeat", type=options.seconds, default=HEARTBEAT_S,
                        metavar="S",
                        help=f"seconds between heartbeats (default {HEARTBEAT_S:g})")
    parser.add_argument("--gui", action="store_true", help="open a window instead of the terminal")
    parser.add_argument("--verbose", action="store_true",
                        help="show diagnostics (refused connections, closed links) on a terminal "
                             "too; they always go to standard error when it is not a terminal")
    parser.add_argument("--tls", action="store_true",
                        help="speak TLS to the server (it must run with --tls-cert/--tls-key)")
    parser.add_argument("--cafile", metavar="FILE",
                        help="trust the certificates in FILE (a self-signed server's cert.pem); implies --tls")
    parser.add_argument("--stay-connected", action="store_true",
                        help="keep one connection open for requests and deliveries, made again "
                             "if lost (works behind NAT or a firewall)")
    parser.add_argument("--no-listen", action="store_true",
                        help="with --stay-connected: open no listening port (no one can send "
                             "this client private messages)")
    args = parser.parse_args(argv)
    if args.no_listen and not args.stay_connected:
        parser.error("--no-listen needs --stay-connected: otherwise the server delivers to the "
                     "listening port")
    if args.gui and args.stay_connected:
        parser.error("--stay-connected is not yet available with --gui")
    args.tls_context = None
    if args.tls or args.cafile:
        try:
            args.tls_context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot use --cafile {args.cafile}: {exc}")
    try:
        # resolve once here: the reactor's connect would block the loop on every request
        args.address = socket.gethostbyname(args.host)
    except OSError:
        parser.error(f"cannot resolve host {args.host!r}")
    return args


def run(args, stdin_fd, terminal, reactor):
    """Run the client until it exits; returns the exit code."""
    glue = ClientGlue(reactor, terminal, (args.address, args.port),
                      tls=args.tls_context, server_name=args.host)
    listener = _listen(args, reactor, glue, terminal.log)
    port = None if listener is None else listener.port
    glue.core = ChatClient(Settings(port, stay=args.stay_connected,
                                    heartbeat_s=args.heartbeat, client_id=secrets.token_hex(4)))
    if args.stay_connected:
        import stay     # the one-connection transport, only when asked for
        glue.stay = stay.StayLink(glue, (args.address, args.port), terminal.log,
                                  tls=args.tls_context, server_name=args.host)
    reactor.watch_input(stdin_fd, glue.on_input, glue.on_input_end)
    reactor.on_signals(glue.on_signal)
    glue.feed(Started())
    if glue.stay is not None:
        glue.stay.open()
    reactor.run()
    if listener is not None:
        listener.close()
    return glue.exit_code


def _listen(args, reactor, glue, log):
    """Our listening port (for deliveries and peers), or None: with --no-listen, or when a
    staying client cannot bind one (it is reached on its connection; only peers miss it)."""
    if args.no_listen:
        return None
    try:
        return reactor.listen("0.0.0.0", 0, glue.deliveries)   # deliveries may come from afar
    except OSError as exc:
        if not args.stay_connected:
            raise
        log(f"cannot open a listening port ({exc.strerror}); no one can send private messages "
            f"to this client")
        return None


def _is_terminal(stream):
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError):
        return False


def main(argv=None):
    """python3 client.py HOST PORT [--heartbeat S] [--gui] [--stay-connected [--no-listen]]"""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.gui:
        import gui      # imported here so that the terminal client never loads tkinter
        return gui.main(args)
    stdin_fd = sys.stdin.fileno()
    # diagnostics are for a log file or a curious user, not for everyone's screen
    diagnostics = sys.stderr.buffer if args.verbose or not _is_terminal(sys.stderr) else None
    with Terminal(stdin_fd, sys.stdout.buffer, diagnostics) as terminal:
        reactor = Reactor(RealClock(), log=terminal.log)
        return run(args, stdin_fd, terminal, reactor)


if __name__ == "__main__":
    # run as the module `client`, the one that stay.py and gui.py import, not as a second copy
    import client
    sys.exit(client.main())
