"""The server's sessions: one per logged-in user, found by name, token, proof or connection.

A session is one login of a user: its random token (which every request carries), its proof
(which its deliveries carry), the address its deliveries go to, when it last spoke, what is on
its way to it (delivery.Window), and, for a client that stays connected, the connection it is
reached on. A later login of the same name replaces the session; a connection carries at most
one session.

`by_user` is kept in order of last request, the longest silent first: the time-out is one
constant, so that is also the order the sessions time out in, and the core's one idle check
(chat_server) finds every session due at its front. A timer per session was 700 bytes of each
idle user's 2 KB (its wheel entry, key, deadline and re-arms).
"""
from dataclasses import dataclass, field

from delivery import Window


@dataclass(slots=True)
class Session:
    """One login of a user: how to reach them, when they last spoke, what is on its way."""
    user: str
    token: str
    proof: str
    address: tuple              # (host, listening port or None)
    last_seen: float
    window: Window = field(default_factory=Window)
    stays: bool = False         # the client keeps a connection open and is reached only on it
    conn: int | None = None     # that connection while it lasts; None: detached, until a resume


class Sessions:
    """The live sessions and the ways to find one. The dicts are for reading (a look-up is
    on every request's path); only these methods change them, all four together (but for the
    order of by_user, see below)."""

    def __init__(self):
        # user -> Session, the longest silent first: ChatServer._on_request moves a session
        # to the end at each request (inline, not a call here: every request comes that way)
        self.by_user = {}
        self.by_token = {}          # token -> Session
        self.by_proof = {}          # proof -> Session, for acknowledgements and failed deliveries
        self.by_conn = {}           # staying connection -> the Session it carries

    def add(self, session):
        """`session` is its user's from now on (the caller has ended any older one)."""
        self.by_user[session.user] = session
        self.by_token[session.token] = session
        self.by_proof[session.proof] = session

    def longest_silent(self):
        """The session silent longest (the first to time out), or None if there is none."""
        return next(iter(self.by_user.values()), None)

    def end(self, user):
        """`user`'s session is over -> it."""
        session = self.by_user.pop(user)
        del self.by_token[session.token]
        del self.by_proof[session.proof]
        if self.by_conn.get(session.conn) is session:
            del self.by_conn[session.conn]
        return session

    def attach(self, session, conn):
        """From now on the session is reached on `conn`, and only there."""
        previous = self.by_conn.get(conn)
        if previous is not None and previous is not session:
            previous.conn = None    # one session per connection: a later login takes it over
        self.by_conn.pop(session.conn, None)
        session.conn = conn
        self.by_conn[conn] = session

    def detach(self, conn):
        """Staying connection `conn` is gone -> the session it carried (now detached), or None."""
        session = self.by_conn.pop(conn, None)
        if session is not None:
            session.conn = None
        return session
