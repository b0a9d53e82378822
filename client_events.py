"""The client core's events (what happened) and actions (what to do), its stage and its timer
keys.

ChatClient (chat_client.py) takes these events and returns these actions; the glue
(client_glue.py), the staying link (stay.py), the screens (terminal.py, gui.py) and the test
harnesses make and carry them out, all importing them from here. What the user sees is data
(`Show`, `AskConsent`, `ConsentLapsed`, `Prompt`, `ShowOnline`, `Status`, and the user's own
messages with `ShowSending` and `ShowFate`); each screen words and draws it.
"""
import enum
from dataclasses import dataclass

from core_events import Arm, Cancel, Expired, Log

# the shared Arm, Expired and Log are this core's too
__all__ = ["Accepted", "Arm", "AskConsent", "Cancel", "CloseConn", "ConsentLapsed", "DrainDue",
           "EndLink", "Exit", "ExitDue", "Expired", "Fate", "HeartbeatDue", "HungUp", "Incoming",
           "IncomingClosed", "InputEnded", "Interrupted", "LineIn", "LinkClosed", "LinkDown",
           "LinkIdle", "LinkIn", "LinkUp", "Log", "LoginAbandoned", "LoginRetry", "OpenLink",
           "OutageWaitDue", "OutboxRetry", "PauseInput", "Probe", "ProbeDue", "Prompt", "Pushed",
           "Replied", "RequestFailed", "ResumeInput", "SendOnLink", "SendRequest", "SendTo",
           "Show", "ShowFate", "ShowOnline", "ShowSending", "Stage", "Started", "Status",
           "TagLines", "REQUEST_TIMEOUT_S"]

# A request with no answer by then counts as failed (RequestFailed): the glue times its
# connections so, and the core plans a staying client's heartbeat around it.
REQUEST_TIMEOUT_S = 10.0



class Stage(enum.Enum):
    """Where the user is: what the next typed line means."""
    USERNAME = "username"
    PASSWORD = "password"
    LOGGED_IN = "logged in"


class Fate(enum.Enum):
    """What became of one of the user's own messages."""
    SENT = "sent"           # the server stored it (or the peer took a private one)
    WAITING = "waiting"     # the server could not be reached: it is kept and sent again
    REFUSED = "refused"     # it will not go (the server refused it, or it was given up)
    UNSURE = "unsure"       # given up after a try with no answer: the server may have taken it


# --- Events: what happened -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Started:
    """The client is up; ask for a username."""


@dataclass(frozen=True, slots=True)
class LineIn:
    """The user typed a line (without its newline)."""
    text: str


@dataclass(frozen=True, slots=True)
class InputEnded:
    """Standard input is finished (end of file, or Ctrl-D on an empty line)."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """Ctrl-C (or Ctrl-\\), or the window closed."""


@dataclass(frozen=True, slots=True)
class HungUp:
    """The terminal went (SIGHUP: its window closed), or the system asks the client to end
    (SIGTERM): as Ctrl-C, but never a second one that leaves at once."""


@dataclass(frozen=True, slots=True)
class LoginAbandoned:
    """The user gave up logging in as the name whose password is asked for (a window's form
    got another name): ask for a username again."""


@dataclass(frozen=True, slots=True)
class Replied:
    """The server answered request `request_id` with `frame`."""
    request_id: int
    frame: dict


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """Request `request_id` got no answer: the server could not be reached or hung up."""
    request_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """Our listening port accepted connection `conn`; `nonce` is fresh for its challenge."""
    conn: int
    nonce: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """A decoded frame arrived on connection `conn` accepted by our listening port."""
    conn: int
    frame: dict


@dataclass(frozen=True, slots=True)
class IncomingClosed:
    """An accepted connection is gone."""
    conn: int


@dataclass(frozen=True, slots=True)
class LinkUp:
    """Our staying connection to the server is open (--stay-connected), at the start or again
    after it was lost; requests go on it from now on, this event's first."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """Our staying connection is lost, or could not be made (`reason` says why); the staying
    link tries again at `retry_at`."""
    reason: str
    retry_at: float


@dataclass(frozen=True, slots=True)
class Pushed:
    """The server sent `frame` unasked on our staying connection `conn`: a delivery. The
    connection is our own, so it needs no hello; acks go back on it."""
    conn: int
    frame: dict


@dataclass(frozen=True, slots=True)
class LinkIn:
    """A decoded frame arrived on our link `link` to a peer."""
    link: int
    frame: dict


@dataclass(frozen=True, slots=True)
class LinkClosed:
    """Our link `link` to a peer is gone: closed, or never connected (`reason` says why)."""
    link: int
    reason: str


# --- Actions: what the user sees -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Show:
    """Something for the conversation. `kind` says what it is:

    "message", "broadcast", "offline" (one kept for this login): `sender` wrote `text`;
    "private": `sender` wrote `text` straight to us, peer to peer;
    "joined", "left": `sender` logged in or out (no text);
    "listed", "unlisted": a block between us and `sender` ended or began while both are online,
    so the others online, as `online` lists them, now include `sender` or leave it out (no text;
    nothing to say, a list of users to keep);
    "system": a notice in `text`; "outage": the server cannot be reached, `text` says why;
    "back": the server answers again after an outage.

    A private talk's notices are data too, so that each screen words them its own way (the
    terminal names the commands to type, a window its buttons); `sender` is the other user:
    "asked": our getaddress went to them ("asked_again": once sent again, after a wait);
    "address": they agreed, `text` is "host port";
    "no_address": a private message to them needs their consent first; "asking": ... which
    our getaddress has asked for, and no answer has come yet; "address_void": their
    address is no longer valid (they logged out or in again; "address_taken_back": they
    took back their yes, with N); "peer_refused": their client
    no longer takes our private messages; "no_answer": their client took our connection but
    did not prove itself in time (a ShowFate per message follows, then "try_message");
    "no_reply": their client, on a link that was open, did not acknowledge what it was sent
    (a ShowFate per message, UNSURE for those sent, follows, then "try_message");
    "unreachable": their client could not be reached
    (a ShowFate per message follows), then "try_message": the message can go through the
    server instead; "peer_no_port": they agreed, but their client takes no private messages;
    "no_port" (no sender): this client cannot take private messages; "type_ahead" (no
    sender): no server at the start, and the username may be typed meanwhile.
    So are the answers to a typed command: "help" lists the commands (`text` empty), or
    names one (`text`, for `help <command>`); "usage": a command was
    typed wrong, `text` is its format ("message <user> <text>"); "unknown_command": `text` was
    typed as a command's name, and no command has it; "not_done", "perhaps_not_done": command
    `text` ("block seas") could not reach the server, or reached it and got no answer;
    "ended_not_done": it was not done, the session having ended first.
    """
    kind: str
    text: str = ""
    sender: str | None = None
    sent_at: float | None = None    # "offline": when the server took it (wall-clock seconds)


@dataclass(frozen=True, slots=True)
class AskConsent:
    """`user` asks for our address: answer with Y or N."""
    user: str


@dataclass(frozen=True, slots=True)
class ConsentLapsed:
    """`user`'s question for our address lapsed before we answered (unanswered in time, or
    `left`: their session ended): there is nothing to answer any more."""
    user: str
    left: bool = False


@dataclass(frozen=True, slots=True)
class Prompt:
    """Ask the user for `stage`'s input (Stage.USERNAME or Stage.PASSWORD)."""
    stage: Stage


@dataclass(frozen=True, slots=True)
class ShowOnline:
    """The reply to `online`: these other users are online."""
    users: tuple


@dataclass(frozen=True, slots=True)
class Status:
    """The client's state after an event, when it changed: its stage (a password is typed
    unseen) and the user name it is for, how many typed lines and messages the server has not
    yet taken, why it cannot be reached (or None), whether a typed line is waiting for the
    server's answer, to whom it may send private messages and who may send them to it (its
    yes, which N takes back). During an outage, `retry_at` is
    when the client tries the server again by itself (a time already past while a try is under
    way), or None when only a typed line will."""
    stage: Stage
    user: str | None
    waiting: int
    outage: str | None
    busy: bool
    private_to: tuple = ()      # the users whose consent lets us send private messages, sorted
    retry_at: float | None = None
    agreed_to: tuple = ()       # the users our consent lets send us private messages, sorted
    commands: int = 0           # of `waiting`, commands on their way (a logout, a block): not
                                # messages, which a screen's count called them (a trial's)


@dataclass(frozen=True, slots=True)
class ShowSending:
    """The user's own message `ref` is on its way: `text` to `to` (None: everyone), straight
    to the peer when `private`. A ShowFate with the same `ref` follows once it is known what
    became of it; a window shows it as pending until then. The terminal prints nothing (the
    user has just typed it)."""
    ref: str
    to: str | None
    text: str
    private: bool = False


@dataclass(frozen=True, slots=True)
class ShowFate:
    """What became of the user's message `ref` (a ShowSending's): `fate`, and the `line` the
    terminal prints for it ("" for none): a refusal's reason, say, in the original's words.
    `why`, when given, is the reason alone, for a screen that shows the message itself (the
    terminal's line quotes it as a command to type again). `at_exit`: told as the client exits
    (a window that is closing says it elsewhere)."""
    ref: str
    fate: Fate
    line: str = ""
    why: str = ""
    at_exit: bool = False


@dataclass(frozen=True, slots=True)
class PauseInput:
    """Read no more of a script's input (a file, a pipe) until ResumeInput: enough of it
    waits for the server."""


@dataclass(frozen=True, slots=True)
class ResumeInput:
    """Read a script's input again."""


@dataclass(frozen=True, slots=True)
class Exit:
    """End the program with `code`; a `reason` is said on standard error (a script's failure)."""
    code: int
    reason: str = ""


# --- Actions: what goes on the wire ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send `frame` to the server, tagged with `request_id`; Replied or RequestFailed follows.
    `urgent`: it must arrive within a second (a heartbeat), so a connection that is slow to be
    made is tried again at once (client_glue.py); only for a request that may come twice."""
    request_id: int
    frame: dict
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class Probe:
    """See whether the server is there, asking it nothing: a short connection that says only
    bye. Replied(request_id, {}) once the server has closed it as the protocol says (it read
    the bye), RequestFailed if it cannot be made or ends otherwise."""
    request_id: int


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send `frame` on connection `conn`: one our listener accepted, or our staying one.
    `acknowledges`: it says what was just shown reached the user, and goes once the screen
    has drawn it (a window draws at most every 50 ms: closed meanwhile, a trial's lost the
    messages it had acknowledged and never drawn)."""
    conn: int
    frame: dict
    acknowledges: bool = False


@dataclass(frozen=True, slots=True)
class TagLines:
    """From now on every line on `conn` (an accepted connection; with `link`, our link of that
    id) is tagged, both ways, with the handshake's `secret` and nonces (line_tags.py): the
    handshake just proved both ends, and what follows must come from them too."""
    conn: int
    secret: str
    listener_nonce: str
    dialer_nonce: str
    link: bool = False


@dataclass(frozen=True, slots=True)
class CloseConn:
    """Close accepted connection `conn`."""
    conn: int


@dataclass(frozen=True, slots=True)
class OpenLink:
    """Connect to a peer's listening port; its frames come back as LinkIn(link, ...)."""
    link: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SendOnLink:
    """Send `frame` on link `link` (queued while it connects)."""
    link: int
    frame: dict


@dataclass(frozen=True, slots=True)
class EndLink:
    """Say bye on link `link`; the peer closes it. `at_once`: close it now, saying nothing, for
    that reason (a peer that talks on past our bye, which it should have closed on; one that
    stopped answering)."""
    link: int
    at_once: str | None = None


# --- Timer keys ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """Time to tell the server we are here, unless a request did lately."""


@dataclass(frozen=True, slots=True)
class DrainDue:
    """The input ended, and the messages that waited for this login had their time to come."""


@dataclass(frozen=True, slots=True)
class OutageWaitDue:
    """The input ended in an outage, and the messages kept for the server had their time to
    go."""


@dataclass(frozen=True, slots=True)
class ExitDue:
    """The logout before exiting had its time to be answered."""


@dataclass(frozen=True, slots=True)
class OutboxRetry:
    """Send the oldest message the server has not taken again."""


@dataclass(frozen=True, slots=True)
class LoginRetry:
    """The server asked the login to wait (slow_down): send it again."""


@dataclass(frozen=True, slots=True)
class CommandRetry:
    """The server asked a command to wait (slow_down): send it again."""


@dataclass(frozen=True, slots=True)
class ProbeDue:
    """Time to see again whether the server is there (it could not be reached)."""


@dataclass(frozen=True, slots=True)
class LinkIdle:
    """Has the link to `user` gone unused long enough to end?"""
    user: str
