"""How the server core answers a request: `reply_to`, a Reply that repeats the request's id, and
`Refused`, which a rule raises to have the request answered with an error frame instead
(ChatServer._refuse words it and its log line)."""
import protocol
from server_events import Reply


def reply_to(conn, frame_id, frame, durable=False):
    """A Reply carrying `frame`, repeating the request's id when it had one; `durable`: it
    says yes to something the store keeps (server_events.Reply)."""
    if frame_id is not None:
        frame["id"] = frame_id
    return Reply(conn, frame, durable)


class Refused(Exception):
    """A request the core answers with an error frame: `extra` adds fields to it; `log_text`
    replaces the usual log line, and `logged` False leaves it out (a flood logs once).
    `durable`: the refusal tells of a write (a wrong password counted), so it waits for the
    commit like a yes (server_events.Reply)."""

    def __init__(self, code, detail="", logged=True, log_text=None, durable=False, **extra):
        super().__init__(detail or protocol.ERRORS[code])
        self.code = code
        self.extra = extra
        self.logged = logged
        self.log_text = log_text
        self.durable = durable
