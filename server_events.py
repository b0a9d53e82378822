"""The server core's events (what happened) and actions (what to do), its timer keys, and the
one function that turns a line from a client into an event.

ChatServer (chat_server.py) takes these events and returns these actions; the glue
(server_glue.py) and the replay harnesses (tests/) make and carry them out, all importing them
from here.
"""
from dataclasses import dataclass, field

from core_events import Arm, Expired, Log
from protocol import MAX_FRAME_BYTES, MAX_SEQ, FrameError, decode, int_field

# the shared Arm, Expired and Log are this core's too
__all__ = ["Acked", "Arm", "AskLapses", "BadFrame", "Close", "Closed", "Deliver", "DeliverEach",
           "DeliverRun", "Expired", "IdleCheck", "Log", "PresenceBatch", "PresenceHeld",
           "Redeliver", "Replies", "Reply", "Request", "StoreRecovered", "TimeQuiet",
           "Undelivered", "accepted_event", "delivery_event"]


# --- Events: what happened -------------------------------------------------------------------
# The events and actions made once or more per message (Request, Acked, Reply, Deliver,
# DeliverEach, and Close and Closed, once per short connection) are not frozen: a frozen
# dataclass sets each field through object.__setattr__, 0.28 us more per object here. They are
# values all the same: nothing changes one once it is made.

@dataclass(slots=True)
class Request:
    """One decoded frame (a dict with a str "type") from accepted connection `conn`; `irc`
    when the connection is on the IRC port (its frames are the IRC link's words, translated)."""
    conn: int
    frame: dict
    host: str
    irc: bool = False


@dataclass(slots=True)
class BadFrame:
    """A frame from accepted connection `conn` that could not be decoded: `code` says why;
    `frame_id`, its "id" where one was read."""
    conn: int
    host: str
    code: str
    detail: str = ""
    frame_id: object = None
    wait_s: float = 0.0     # (slow_down: a long frame not read, limits.LONG_FRAME_BYTES)


@dataclass(slots=True)
class Acked:
    """On a delivery connection, the client of the session with `proof` says it has shown
    every message up to `seq`."""
    proof: str
    seq: int


# Undelivered's reasons that say the listening port was never reached (nothing was delivered):
# a client behind NAT or a firewall, told so at its heartbeat; not one that took the connection
# and then went quiet (stopped, asleep) or broke the protocol. ("stalled": a connect given up
# at the socket cap before it completed; delivery_links)
UNREACHED = ("refused", "timed out", "unreachable", "stalled")


@dataclass(frozen=True, slots=True)
class Undelivered:
    """The delivery connection to `address` for the session with `proof` ended (or never
    began) before its client acknowledged what it carried; `reason` says how. `unsent`: the
    notices on it that were never written (its listener never proved itself), which the
    client cannot have seen."""
    address: tuple
    proof: str
    reason: str
    unsent: tuple = ()


@dataclass(slots=True)
class Closed:
    """Accepted connection `conn` is gone; a session staying on it waits for a resume."""
    conn: int


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """A commit succeeded after commits had failed: what waited for the disk is kept."""


# --- Actions: what to do ---------------------------------------------------------------------

@dataclass(slots=True)
class Reply:
    """Send `frame` as the answer on connection `conn`. A `durable` reply says yes to
    something the store keeps: it goes out only once that is committed, and becomes an
    `unavailable` error if the commit fails. `line`, when the core has it from a template
    (the usual reply to a message or a broadcast), is the frame's line already: the glue
    sends it as it is, unless the commit failed."""
    conn: int
    frame: dict
    durable: bool = False
    line: bytes = field(default=None, compare=False)


@dataclass(slots=True)
class Replies:
    """The usual yes, {"type": "ok", "stored": false, "id": N}, to each of a run's messages
    (reach._Run) on connection `conn`, one for each whole-number id N of `ids`, in order:
    each durable as a Reply is (the commit failed: an `unavailable` error each). One action,
    and one append of the lines made from their template, for the run, not a Reply each."""
    conn: int
    ids: list

    def frames(self):
        """The replies as frames, each as the core would have made it alone."""
        return [{"type": "ok", "stored": False, "id": frame_id} for frame_id in self.ids]


@dataclass(slots=True)
class Deliver:
    """Send `frame` to `user`'s client: on its staying connection `conn` when it has one (no
    hello: that connection is the client's own), else to its listening port, once a hello has
    proved the session's key `proof` (and the listener has proved it back)."""
    address: tuple
    proof: str
    frame: dict
    conn: int | None = None
    user: str = ""


@dataclass(slots=True)
class DeliverEach:
    """Send `frame` to each of the staying connections `conns`: a stored message (a
    protocol.Numbered: one line for all) or a notice (encoded once), its staying recipients in
    one action, so a delivery costs the glue a buffer append and no call of its own."""
    conns: list
    frame: dict


@dataclass(slots=True)
class DeliverRun:
    """Send the stored messages `frames` (protocol.Numbered, in order) to each of the staying
    connections `conns`: a run (a session's broadcasts, or its messages to one user, read
    together) or a window's top-up, so each recipient's share is one buffer append of the
    lines joined once."""
    conns: list
    frames: list


@dataclass(slots=True)
class Close:
    """Close accepted connection `conn` once what is queued on it is written; with `drop`, at
    once with a reset, what is queued and what the system holds for it dropped."""
    conn: int
    reason: str
    drop: bool = False


@dataclass(frozen=True, slots=True)
class TimeQuiet:
    """Accepted connection `conn` stays open but carries no session any more (it ended, or
    went on to another connection): time its quiet again, as a connection's that never logged
    in. While it carried one, the session's own time-out stood for that."""
    conn: int


# --- Timer keys: what an Arm wakes the core for ----------------------------------------------

@dataclass(frozen=True, slots=True)
class IdleCheck:
    """Has a user been silent for the time-out? One timer for all, at the longest silent
    user's time-out."""


@dataclass(frozen=True, slots=True)
class AskLapses:
    """`requester`'s getaddress to `target` is unanswered for the consent time."""
    requester: str
    target: str


@dataclass(frozen=True, slots=True)
class Redeliver:
    """Send again what the session with `proof` has not acknowledged."""
    user: str
    proof: str


@dataclass(frozen=True, slots=True)
class PresenceBatch:
    """Presence changes waiting for their batch go out."""


@dataclass(frozen=True, slots=True)
class PresenceHeld:
    """`user`'s presence changes, held back (presence.py), are let go."""
    user: str


BYE_LINE = b'{"type":"bye"}'

# --- From the wire ---------------------------------------------------------------------------

def accepted_event(conn, host, line):
    """A line (bytes, no newline) from accepted connection `conn` at `host` -> the event for the
    core: a Request, or a BadFrame naming why it could not be decoded; or None for a blank
    line, which is skipped. `line` None stands for a frame longer than the limit, which the
    reactor discarded. The glue and the test harnesses all read lines with this one function."""
    if line is None or len(line) >= MAX_FRAME_BYTES:
        return BadFrame(conn, host, "too_long")
    if line == BYE_LINE:    # every short connection's last line, as every client words it
        return Request(conn, {"type": "bye"}, host)
    if not line:
        return None         # a blank line (an empty one: found without a decode)
    try:
        return Request(conn, decode(line), host)
    except FrameError as exc:
        if not line.strip():
            # (a writer that puts blank lines between records: each was refused bad_json, and
            # 64 in one read closed the connection as a flood, a fuzzer's)
            return None
        return BadFrame(conn, host, exc.code, str(exc), exc.frame_id)


def delivery_event(proof, line):
    """A line a client's listener sent on the delivery connection for the session with `proof`
    -> Acked, or None: a listener says nothing else that the core needs to hear."""
    try:
        frame = decode(line)
        if frame["type"] != "ack":
            return None
        return Acked(proof, int_field(frame, "seq", 1, MAX_SEQ))
    except FrameError:
        return None     # the listener has nobody to tell: a bad ack acknowledges nothing
