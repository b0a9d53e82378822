"""What the client core keeps of a request on its way to the server: what it was for, and the
words shared by the parts that send them."""
import enum
from dataclasses import dataclass

# why a request failed, when it certainly never reached the server (reactor and stay.py words)
NEVER_SENT = ("refused", "not connected")
# the longest a login or command the server asked to slow down waits before it goes again
RETRY_MAX_S = 60.0


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
class Pending:
    """A request waiting for its reply: what it was for, and the session it belongs to."""
    purpose: Purpose
    blocks_input: bool
    sent_at: float
    token: str | None = None
    command: object = None     # the commands.Command typed, for its reply's words
