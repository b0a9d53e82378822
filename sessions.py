"""The server's sessions: one per logged-in user, found by name, token, proof or connection.

A session is one login of a user: its random token (which every request carries), its proof
(which its deliveries carry), the address its deliveries go to, when it last spoke, what is on
its way to it (delivery.Window), and, for a client that stays connected, the connection it is
reached on. A later login of the same name replaces the session; a connection carries at most
one session.
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
    """The live sessions and the ways to find one."""

    def __init__(self):
        self._by_user = {}          # user -> Session
        self._by_token = {}         # token -> Session
        self._by_proof = {}         # proof -> Session, for acknowledgements and failed deliveries
        self._by_conn = {}          # staying connection -> the Session it carries

    def __len__(self):
        return len(self._by_user)

    def __contains__(self, user):
        return user in self._by_user

    def get(self, user):
        """`user`'s session, or None."""
        return self._by_user.get(user)

    def of_token(self, token):
        return self._by_token.get(token)

    def of_proof(self, proof):
        return self._by_proof.get(proof)

    def of_conn(self, conn):
        return self._by_conn.get(conn)

    def users(self):
        """Names with a live session, sorted."""
        return sorted(self._by_user)

    def sorted_items(self):
        """(user, session) for every live session, by name."""
        return sorted(self._by_user.items())

    def add(self, session):
        """`session` is its user's from now on (the caller has ended any older one)."""
        self._by_user[session.user] = session
        self._by_token[session.token] = session
        self._by_proof[session.proof] = session

    def end(self, user):
        """`user`'s session is over -> it."""
        session = self._by_user.pop(user)
        del self._by_token[session.token]
        del self._by_proof[session.proof]
        if self._by_conn.get(session.conn) is session:
            del self._by_conn[session.conn]
        return session

    def attach(self, session, conn):
        """From now on the session is reached on `conn`, and only there."""
        previous = self._by_conn.get(conn)
        if previous is not None and previous is not session:
            previous.conn = None    # one session per connection: a later login takes it over
        self._by_conn.pop(session.conn, None)
        session.conn = conn
        self._by_conn[conn] = session

    def detach(self, conn):
        """Staying connection `conn` is gone -> the session it carried (now detached), or None."""
        session = self._by_conn.pop(conn, None)
        if session is not None:
            session.conn = None
        return session
