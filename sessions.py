"""The server's sessions: one per logged-in user, found by name, token, proof or connection.

A session is one login of a user: its random token (which every request carries), its proof
(the key its deliveries to a listening port prove; none if it stays), the address its
deliveries go to, when it last spoke, what is on its way to it (delivery.Window), and, for a
client that stays connected, the connection it is reached on. A later login of the same name
replaces the session; a connection carries at most one session.

`by_user` is kept in order of last request, the longest silent first: the time-out is one
constant, so that is also the order the sessions time out in, and the core's one idle check
(chat_server) finds every session due at its front. A timer per session was 700 bytes of each
idle user's 2 KB (its wheel entry, key, deadline and re-arms).
"""
import base64
import os
from dataclasses import dataclass

# A secret is SECRET_CHARS of URL-safe base64, 6 random bits each: 132 bits, more than
# secrets.token_hex(16)'s 128, in 22 characters, not 32. A string object of 22 takes an
# allocation of 80 bytes where 32 took 96, and a token with the run's name before it 80
# where it took 96 too: 32 bytes of each idle user (a token and a proof).
SECRET_CHARS = 22
SECRET_DRAW_BYTES = 33      # two secrets' randomness: 33 bytes are exactly 44 characters
SECRETS_PER_DRAW = 64       # secrets drawn from the system at once: a login takes two
ENDED_KEPT = 4              # a user's ended sessions whose end is remembered


def shown_address(address):
    """(host, port) -> "host:port" for the log; a client with no listening port is its host."""
    host, port = address
    return host if port is None else f"{host}:{port}"


@dataclass(slots=True)
class Session:
    """One login of a user: how to reach them, when they last spoke, what is on its way."""
    user: str
    token: str
    proof: str | None       # the key its deliveries to `port` prove; None: it stays (no port)
    # where its deliveries go: the host (the one string for every session from it) and the
    # listening port (None: a staying client's, reached on its connection only). Two fields,
    # not an (host, port) tuple: 48 bytes less of each user (address makes one on demand)
    host: str
    port: int | None
    last_seen: float
    # what is on its way (delivery.Window), or None while nothing is (delivery.settle), with
    # the number its client has acknowledged: a session's first window reads the store
    window: object = None
    acked: int = 0
    stays: bool = False         # the client keeps a connection open and is reached only on it
    conn: int | None = None     # that connection while it lasts; None: detached, until a resume

    @property
    def address(self):
        """(host, listening port or None), for a Deliver and a log line."""
        return (self.host, self.port)


@dataclass(slots=True)
class LateAcks:
    """A session that ended with messages on their way to its client (its staying connection,
    or its listening port): its user, the last number sent, and the last its client
    acknowledged (moved by late acks)."""
    user: str
    last_sent: int
    acked: int


class RandomSecrets:
    """Fresh unguessable secrets (tokens, proofs, consent keys), SECRET_CHARS of URL-safe
    base64 each (letters, digits, "-" and "_": text any client keeps and sends back as is).

    They come from os.urandom, as secrets.token_urlsafe's do, but SECRETS_PER_DRAW at a time:
    a system call per login was 2% of its time. Each slice is handed out once, so every
    secret is as unpredictable as one drawn alone; what is drawn and not yet handed out
    is no more exposed than the live tokens beside it in memory.
    """

    def __init__(self, per_draw=SECRETS_PER_DRAW):
        self._draw_bytes = SECRET_DRAW_BYTES * ((per_draw + 1) // 2)
        self._drawn = ""            # base64 of random bytes, handed out from `_at` on
        self._at = 0

    def __call__(self):
        """-> a secret never handed out before."""
        at = self._at
        if at >= len(self._drawn):
            self._drawn = base64.urlsafe_b64encode(os.urandom(self._draw_bytes)).decode("ascii")
            at = 0
        self._at = at + SECRET_CHARS
        return self._drawn[at:at + SECRET_CHARS]


class Sessions:
    """The live sessions and the ways to find one. The dicts are for reading (a look-up is
    on every request's path); only these methods change them, all four together (but for the
    order of by_user, see below)."""

    def __init__(self):
        # user -> Session, the longest silent first: ChatServer._on_request moves a session
        # to the end at each request (inline, not a call here: every request comes that way)
        self.by_user = {}
        self.by_token = {}          # token -> Session
        # proof -> Session, for acknowledgements and failed deliveries on a delivery
        # connection (a session that stays from its login has no proof, and is not here)
        self.by_proof = {}
        self.by_conn = {}           # staying connection -> the Session it carries
        # staying connection -> the LateAcks of a session that ended with messages on their
        # way there: the client shows them, and acknowledges them, before it learns the
        # session is over (a trial's client, stopped past its time-out, showed 50 messages
        # twice: again at its next login). Until the connection closes.
        self.acks_after_end = {}
        # proof -> the LateAcks of a short session that ended with messages sent to its
        # listening port: their acks come on the delivery connection and may be read after
        # the logout, which came on a connection of its own (a window closed as its backlog
        # was drawn showed it all again in the next: a trial's). The newest of each user
        # (user -> its proof there), until its next login.
        self.proof_acks_after_end = {}
        self._late_proof_of = {}
        # token -> why its session ended ("elsewhere", "timed_out"), for the no_session its
        # client gets later: a client stopped meanwhile missed the notice, and said its session
        # had timed out when another login had ended it (a trial's). The newest ENDED_KEPT of
        # each user (user -> its tokens there, oldest first): one account's 4,200 logins in
        # 16 s had pushed every other user's out of a list they shared (a re-attack's)
        self.ended_why = {}
        self._ended_of = {}

    def add(self, session):
        """`session` is its user's from now on (the caller has ended any older one)."""
        self.by_user[session.user] = session
        self.by_token[session.token] = session
        if session.proof is not None:
            self.by_proof[session.proof] = session
        if self._late_proof_of:     # (the new session's window has what the old one sent)
            self.proof_acks_after_end.pop(self._late_proof_of.pop(session.user, None), None)

    def longest_silent(self):
        """The session silent longest (the first to time out), or None if there is none."""
        return next(iter(self.by_user.values()), None)

    def end(self, user, why=None):
        """`user`'s session is over (`why`, when not its own logout) -> it."""
        session = self.by_user.pop(user)
        del self.by_token[session.token]
        if why is not None:
            self.ended_why[session.token] = why
            tokens = self._ended_of.setdefault(user, [])
            tokens.append(session.token)
            if len(tokens) > ENDED_KEPT:
                del self.ended_why[tokens.pop(0)]
        if session.proof is not None:
            del self.by_proof[session.proof]
            window = session.window
            if window is not None and window.sent:
                late = LateAcks(user, window.sent[-1], window.acked)
                self.proof_acks_after_end[session.proof] = late
                self._late_proof_of[user] = session.proof
        if self.by_conn.get(session.conn) is session:
            del self.by_conn[session.conn]
            window = session.window
            if window is not None and window.sent:
                self.acks_after_end[session.conn] = LateAcks(user, window.sent[-1], window.acked)
        return session

    def attach(self, session, conn):
        """From now on the session is reached on `conn`, and only there."""
        previous = self.by_conn.get(conn)
        if previous is not None and previous is not session:
            # (not while the core refuses a login, or another's resume, on a connection that
            # carries a session: kept so that a connection never carries two)
            previous.conn = None
        self.acks_after_end.pop(conn, None)
        self.by_conn.pop(session.conn, None)
        session.conn = conn
        self.by_conn[conn] = session

    def detach(self, conn):
        """Staying connection `conn` is gone -> the session it carried (now detached), or None."""
        self.acks_after_end.pop(conn, None)
        session = self.by_conn.pop(conn, None)
        if session is not None:
            session.conn = None
        return session
