"""The chat server's core: ChatServer turns events into actions.

It is a plain object: `handle(event, now)` takes one event (a decoded request,
a timer that fired, a delivery that failed; server_events.py lists them) and returns a list of
actions (reply, deliver, arm a timer, log). It never touches a socket or reads the clock: `now`
is monotonic seconds from the glue. It routes each event to its handler and keeps the sessions;
the rules with state of their own live beside it: lockouts.py (wrong passwords), consents.py
(peer-to-peer addresses), presence.py (when presence goes out), delivery.py (what each client
has on its way), sessions.py (who is logged in); reach.py, its base class, keeps messages and
turns what goes out into actions. PROTOCOL.md is the contract it keeps; server.py runs it.
"""
import math
import sys
from dataclasses import dataclass

import limits
import passwords
import protocol
from consents import Consents
from delivery import Deliveries
from lockouts import Lockouts
from presence import Presence
from reach import RUN_KINDS, Reach
from senders import LAST, NEW, TOO_OLD
from protocol import MAX_REASON_CHARS, FrameError, whole
from server_events import (UNREACHED, Acked, Arm, AskLapses, BadFrame, Close, Closed, Expired,
                           IdleCheck, Log, PresenceBatch, PresenceHeld, Redeliver, Replies, Reply,
                           Request, StoreRecovered, TimeQuiet, Undelivered)
from sessions import RandomSecrets, Session, Sessions
from shares import Shares
from storage import StoreUnavailable
from words import plural


@dataclass(frozen=True)
class Settings:
    """Limits and durations; the defaults are the course's."""
    lockout_s: float = 30.0       # a name locked after max_attempts wrong passwords (--block-time)
    timeout_s: float = 31.0
    max_attempts: int = 3
    max_text_chars: int = protocol.MAX_TEXT_CHARS
    consent_s: float = protocol.CONSENT_S   # how long a getaddress waits for its answer
    delivery_window: int = 1024  # messages in flight to one client before its acknowledgements,
    delivery_window_bytes: int = 2 * 1024 * 1024   # ... and bytes: half the output limit, so a
                                # long backlog goes out in steps, never past that limit
    retry_first_s: float = 1.0  # an unacknowledged delivery is retried after this, doubling
    retry_max_s: float = 30.0   # ... up to this, for as long as the session lives
    counters_kept_s: float = 86400.0   # a client id's counter is kept this long after its last use
    # Token buckets (limits.py); a rate of 0 turns that limit off. A person types far below
    # these; a client's outbox catching up after an outage is paced by slow_down, not refused.
    user_rate_per_s: float = 20.0     # requests a second per logged-in user ...
    user_burst: int = 100             # ... with this many at once
    address_rate_per_s: float = 200.0   # requests a second per address (users behind one NAT
    address_burst: int = 1000           # share it), framing errors and logins included
    failed_logins_per_s: float = 10 / 60   # failed logins per address: 10 a minute ...
    failed_logins_burst: int = 10          # ... after a first 10
    # With hashed passwords every login costs one scrypt (3.5 ms of the one thread), right
    # password or wrong: checks are limited per address and in all, so no address, nor many
    # together, can take the loop from everyone else with logins (at most 35% of it, and
    # 175 ms at once). Plain passwords cost nothing and are not limited so.
    address_checks_per_s: float = 5.0      # hashed-password checks a second per address ...
    address_checks_burst: int = 20         # ... after a first 20 (a class behind one NAT)
    checks_per_s: float = 100.0            # hashed-password checks a second in all ...
    checks_burst: int = 50                 # ... after a first 50; and per name logged in as
    name_checks_per_s: float = 1.0         # (one account's logins from many addresses took
    name_checks_burst: int = 5             # all of everyone's: a trial's 30 addresses)
    slow_log_quiet_s: float = 60.0    # a flood is logged once per this, per user or address
    # Quotas: what may wait in the store for one recipient, and in all; past them the sender
    # is refused (inbox_full, store_full), never silently dropped.
    inbox_messages: int = 10_000
    inbox_bytes: int = 16 * 1024 * 1024
    store_messages: int = 1_000_000   # deliveries waiting: a broadcast counts once per recipient
    store_bytes: int = 256 * 1024 * 1024
    # What one sender may leave users who are away (shares.py): 1/sender_share of an absent
    # user's inbox quota, and of the store's for all of them together.
    sender_share: int = 10
    # Presence notices (presence.py): at once within this many deliveries a second, else batched.
    presence_rate_per_s: float = 2000.0
    presence_burst: int = 2000
    presence_batch_s: float = 1.0     # the shortest wait of a batch
    presence_flaps_per_s: float = 1 / 6   # one user's changes told a second (10 a minute) ...
    presence_flaps_burst: int = 10        # ... after a first 10; past them, held (presence.py)
    asks_per_s: float = 1 / 6         # address requests (getaddress) a user makes a second ...
    asks_burst: int = 10              # ... after a first 10
    # A token is good only from the host its login came from, so another user's token, copied,
    # is refused like a forged one. main() turns it on; off, unit tests may name hosts freely.
    tokens_bound_to_host: bool = False


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


def _share_full(over, recipient):
    """The refusal of a message that would overfill its sender's share (shares.py): of what
    may wait for `recipient` ("inbox"), or for all such users ("store")."""
    if over == "inbox":
        return Refused("inbox_full", f"you have left {recipient} as many messages as one sender "
                                     f"may until they read them", share=True)
    return Refused("store_full", "you have left users who are away as many messages as one "
                                 "sender may until they read them", share=True)


_TRAILING_MARKS = ":,;.!?"   # typed after a name by habit ("seas:"), never part of one here
                            # (and "@" before it: "@seas")
IDLE_CHECK_LATE_S = 0.5     # a time-out check this late found the server held up (_idle_check)
IDLE_GRACE_S = 2.0          # then the silent get this long for what waits unread to be read


_ENDED_WORDS = {"elsewhere": "your account logged in elsewhere, which ended this session",
                "timed_out": "your session timed out"}


def _echoable(value):
    """True for what a request id may be (or None when absent): a string of at most
    MAX_ID_CHARS, a number within +-MAX_SEQ, true or false. Anything else is not repeated
    back (a NaN or a huge number would not be valid JSON everywhere, nor 1e300 a number that
    every client reads back as it sent it)."""
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is str:
        return len(value) <= protocol.MAX_ID_CHARS
    if kind is int:
        return -protocol.MAX_SEQ <= value <= protocol.MAX_SEQ
    return kind is float and -protocol.MAX_SEQ <= value <= protocol.MAX_SEQ    # (NaN: False)


def _port_field(frame):
    """frame["port"] if it is an int in 1..65535, else FrameError."""
    return protocol.int_field(frame, "port", 1, 65535)


def _stay_fields(frame):
    """A login's (stay, port): port may be left out (None) only by a client that stays."""
    stay = protocol.flag_field(frame, "stay", False)
    if stay and frame.get("port") is None:
        return stay, None   # no listening port: reached on its connection, never peer to peer
    return stay, _port_field(frame)


def _shown(address):
    """(host, port) -> "host:port" for the log; a client with no listening port is its host."""
    host, port = address
    return host if port is None else f"{host}:{port}"


def _ends(logout, frame_id):
    """True if a logout frame will end its session (its reason and id pass their checks)."""
    reason = logout.get("reason")
    return ((reason is None or (type(reason) is str and 0 < len(reason) <= MAX_REASON_CHARS))
            and (frame_id is not None or logout.get("id") is None))


def _answer(conn, frame_id, frame, durable=False):
    """A Reply carrying `frame`, repeating the request's id when it had one; `durable`: it
    says yes to something the store keeps (server_events.Reply)."""
    if frame_id is not None:
        frame["id"] = frame_id
    return Reply(conn, frame, durable)


def _from_another_run(token, instance):
    """True if `token` has the shape of this server's tokens (a run's name, a dot, a secret)
    and another run's name: the server restarted since. A made-up token is only unknown (a
    trial's "x" was told the server had restarted, and its client said so)."""
    run, dot, secret = token.partition(".")
    return bool(dot and secret) and len(run) == len(instance) and run != instance


class ChatServer(Reach):
    """The chat logic: `handle(event, now)` -> list of actions."""

    def __init__(self, credentials, store, settings=Settings(), make_secret=None,
                 instance=None):
        self._passwords = credentials
        self._by_lower = None           # lowercased name -> account (_account_field's hint)
        self._store = store
        self._settings = settings
        # make_secret() -> a fresh unguessable token, proof or key
        make_secret = self._make_secret = make_secret or RandomSecrets()
        # Tokens start with this run's name, so a token from before a restart is recognised.
        self._instance = instance
        self._lockouts = Lockouts(store, settings.max_attempts, settings.lockout_s)
        self._shares = Shares(settings.sender_share, settings.inbox_messages,
                              settings.inbox_bytes, settings.store_messages, settings.store_bytes,
                              (settings.delivery_window, settings.delivery_window_bytes))
        self._checker = passwords.Checker(credentials)
        self._user_limit = limits.RateLimiter(settings.user_rate_per_s, settings.user_burst)
        self._long_frames = limits.RateLimiter(
            limits.LONG_FRAMES_PER_S if settings.address_rate_per_s > 0 else 0,
            limits.LONG_FRAMES_BURST)
        self._address_limit = limits.RateLimiter(settings.address_rate_per_s,
                                                 settings.address_burst)
        # False when both request limits are off (bench.py turns them off): no call per request
        self._rate_limited = self._user_limit.enabled or self._address_limit.enabled
        self._failed_logins = limits.RateLimiter(settings.failed_logins_per_s,
                                                 settings.failed_logins_burst)
        self._address_checks = limits.RateLimiter(settings.address_checks_per_s,
                                                  settings.address_checks_burst)
        self._all_checks = limits.RateLimiter(settings.checks_per_s, settings.checks_burst)
        self._name_checks = limits.RateLimiter(settings.name_checks_per_s,
                                               settings.name_checks_burst)
        self._slow_logged = limits.OncePer(settings.slow_log_quiet_s)
        self._asks = limits.RateLimiter(settings.asks_per_s, settings.asks_burst)
        self.refusals = 0       # error replies so far: the glue closes a connection whose one
                                # read brings too many (limits.REFUSALS_PER_READ)
        self.slowed = 0         # ... of which slow_down: the glue counts them by address
        self._presence = Presence(settings.presence_rate_per_s, settings.presence_burst,
                                  settings.presence_batch_s, settings.presence_flaps_per_s,
                                  settings.presence_flaps_burst)
        self._deliveries = Deliveries(store, settings.delivery_window,
                                      settings.delivery_window_bytes, settings.retry_first_s,
                                      settings.retry_max_s)
        # Peer to peer, in memory only, so a restart ends every consent.
        self._consents = Consents(settings.consent_s, make_secret)
        self._seals = 0         # peer keys sealed so far (each seal's pad must be new)
        # user -> {target: the answer to its getaddress that never reached its client}: told
        # again at its next heartbeat or resume, the sign it is back (_answers_owed)
        self._owed = {}
        # proofs of sessions whose listening port a delivery with messages could not reach,
        # until they acknowledge one: their heartbeats say so (_heartbeat)
        self._ports_unreached = set()
        self._sessions = Sessions()
        self._users = self._sessions.by_user       # user -> Session, to read
        # staying connection -> the session it carries, for the glue to read (after every
        # read, so not through a call): a connection carrying a session is timed by the
        # session's time-out, not its own quiet limit, and is never the one shed at the cap
        self.carried = self._sessions.by_conn
        # one IdleCheck timer for every session, due at the longest silent one's time-out;
        # armed while there is a session: when it is due, or None
        self._idle_check_due = None
        self._idle_grace = False        # the check now due is a late one's grace (_idle_check)
        # True while the glue hands in the requests of one read: a run among them (`run`, a
        # _Run: a session's broadcasts, or its messages to one user) is delivered at its end,
        # all together, when the glue calls end_run (attributes, not calls: every short
        # request is a read of two)
        self.reading = False
        self.run = None
        # the usual yes to each of the run's messages so far (a Replies), or None: one action
        # for them all, which goes out before anything else the core says (handle)
        self._yeses = None
        self._events = {Request: self._on_request, BadFrame: self._on_bad_frame,
                        Expired: self._on_expired, Acked: self._on_acked,
                        Closed: self._on_closed, Undelivered: self._on_undelivered,
                        StoreRecovered: self._on_store_recovered}
        self._timers = {IdleCheck: self._idle_check, AskLapses: self._ask_lapsed,
                        Redeliver: self._redeliver, PresenceBatch: self._send_presence_batch,
                        PresenceHeld: self._let_presence_go}
        # Frames about the connection itself: no session, no rate limit, no reply.
        self._connection_frames = {"bye": self._bye, "ack": self._stay_ack}
        self._open_requests = {"check_user": self._check_user, "login": self._login}
        self._session_requests = {
            "message": self._message, "broadcast": self._broadcast,
            "online": self._online, "block": self._block, "unblock": self._unblock,
            "heartbeat": self._heartbeat, "logout": self._logout,
            "getaddress": self._getaddress, "consent": self._consent,
            "resume": self._resume,
        }

    def handle(self, event, now):
        """One event at time `now` (monotonic seconds) -> the list of actions it causes."""
        run = self.run
        if run is not None and not (type(event) is Request and event.conn == run.conn
                                    and event.frame["type"] in RUN_KINDS):
            # anything else first sees the run delivered: its actions come first, in order
            return self.end_run() + self.handle(event, now)
        if run is not None and event.frame["type"] == "message":
            going_on = self._next_in_run(run, event, now)
            if going_on is not None:
                return going_on
        handler = self._events.get(type(event))
        if handler is None:
            raise TypeError(f"not a server event: {event!r}")
        try:
            actions = handler(event, now)
        except StoreUnavailable as trouble:
            # (a request is answered unavailable in _on_request) what a timer or a delivery
            # needed from the store waits for the next ack, retry or StoreRecovered
            refusal = self._unavailable(trouble, now)
            actions = [Log(refusal.log_text)] if refusal.logged else []
        if actions and self._yeses is not None:
            # the run's yeses so far come first: this request was answered on its own (refused,
            # say, or a bye that closes), or ended a run, whose deliveries follow them
            actions = [self._yeses, *actions]
            self._yeses = None
        return actions

    def _unavailable(self, trouble, now):
        """The refusal for a request the store could not serve; logged once a minute."""
        return Refused("unavailable", seconds=protocol.UNAVAILABLE_RETRY_S,
                       logged=self._slow_logged.due("store", now),
                       log_text=f"the store is unavailable ({trouble}); answering unavailable "
                                f"until a commit succeeds")

    def online_users(self):
        """Names with a live session, sorted."""
        return sorted(self._users)

    def online_count(self):
        """How many users have a live session."""
        return len(self._users)

    def is_online(self, user):
        """True while `user` has a live session."""
        return user in self._users

    def awaits_ack(self, proof):
        """True while the session with `proof` has messages on their way, unacknowledged: its
        delivery connection stays open for the acknowledgement."""
        window = self._window_by_proof(proof)
        return window is not None and bool(window.sent)

    def retrying(self, proof):
        """True while the session with `proof` waits to send again what a failed delivery
        carried (its Redeliver is armed): until then nothing numbered goes to it."""
        window = self._window_by_proof(proof)
        return window is not None and window.retrying

    def _window_by_proof(self, proof):
        """The delivery Window of the session with `proof`, or None (no such session, or one
        whose client has taken everything)."""
        session = self._sessions.by_proof.get(proof)
        return None if session is None else session.window

    # --- requests ---

    def _on_request(self, request, now):
        frame = request.frame
        kind = frame["type"]
        connection_frame = self._connection_frames.get(kind)
        if connection_frame is not None:
            return connection_frame(request, now)
        session_request = self._session_requests.get(kind)     # (looked up once)
        # An unknown type is the sender's text: keep it out of the log.
        known = session_request is not None or kind in self._open_requests
        logged_kind = kind if known else "request"
        frame_id = frame.get("id")
        who = None          # named for the log only if refused: "conn N" until known
        try:
            # an id that cannot be repeated is not repeated (a whole number, the usual id, is
            # checked here rather than in _echoable: every request comes this way)
            if type(frame_id) is int:
                if not -protocol.MAX_SEQ <= frame_id <= protocol.MAX_SEQ:
                    frame_id = None
            elif frame_id is not None and not _echoable(frame_id):   # (none: a short
                frame_id = None                                       # client's usual)
            session, refusal = None, None
            if session_request is not None:
                # a live token from its own address; anything else is refused, saying why
                token = frame.get("token")
                session = self._sessions.by_token.get(token) if type(token) is str else None
                if session is None or (self._settings.tokens_bound_to_host
                                       and session.host != request.host):
                    session, refusal = None, self._no_session(frame, session)
            if session is not None and session.last_seen != now:
                # any request with a valid token is a sign of life, even one refused as too
                # many: a user behind a flooded address is slowed down, not timed out; and the
                # session goes to the end of by_user, the order the idle check reads (sessions).
                # (A read's requests share one `now`: the first of them moved it already.)
                session.last_seen = now
                users = self._users
                del users[session.user]
                users[session.user] = session
            # (a logout that ends a session is never too many: it is the flood's own end, and
            # refused, the user would stay online to everyone until the time-out; one that
            # cannot end it, a bad reason or id, is a request like any other)
            if self._rate_limited and not (
                    session is not None and kind == "logout" and _ends(frame, frame_id)):
                self._admit(session, request.host, now)     # (off, as in bench.py: no call)
            if refusal is not None:
                raise refusal
            if frame_id is None and frame.get("id") is not None:
                # (a 65-character string, or 1e308, was told it must be a string or a number)
                raise Refused("bad_field", f"'id' must be a number within +-(2**53-1), a "
                                           f"string of at most {protocol.MAX_ID_CHARS} "
                                           f"characters, true or false")
            if session_request is not None:
                who = session.user
                return session_request(session, request, frame_id, now)
            if kind in self._open_requests:
                who = self._account_named(frame.get("user"), default=None)
                return self._open_requests[kind](request, frame_id, now)
            raise Refused("unknown_type")
        except (Refused, FrameError) as refusal:
            return self._refuse(request, frame_id, logged_kind,
                                who or f"conn {request.conn}", refusal)
        except StoreUnavailable as trouble:
            return self._refuse(request, frame_id, logged_kind, who or f"conn {request.conn}",
                                self._unavailable(trouble, now))

    def _admit(self, session, host, now):
        """Spend the rate-limit token of one request, or raise slow_down.

        A logged-in user spends its own bucket only; an address's is for what no login vouches
        for (a name's check, a login, garbage). A trial's anonymous flood from one address
        held every user logged in behind it to slow_down when both were spent.
        """
        if session is not None:
            wait_s = self._user_limit.take(session.user, now)
            if wait_s:
                raise self._slow_down(session.user, wait_s, now)
            return
        wait_s = self._address_limit.take(host, now)
        if wait_s:
            raise self._slow_down(f"address {host}", wait_s, now)

    def _slow_down(self, who, wait_s, now, detail=""):
        """The slow_down refusal for `who`, logged once per flood."""
        seconds = limits.wait_text(wait_s)
        return Refused("slow_down", detail or f"too many requests; try again in {seconds} s",
                       logged=self._slow_logged.due(who, now),
                       # (`who` is a user, an address, or "logins from ...": a trial's log read
                       # "u50's address requests is over its rate limit")
                       log_text=f"{who}: over the rate limit, answering slow_down for a while",
                       seconds=seconds)

    def long_frame_wait(self, host, size, now):
        """Before a frame of `size` bytes (longer than limits.LONG_FRAME_BYTES) from `host` is
        read -> 0.0 if it may be, else the seconds to wait: then it is a BadFrame, slow_down."""
        return self._long_frames.take(host, now, size)

    def _on_bad_frame(self, event, now):
        """A frame that failed to decode: an error that names why, within the address's limit."""
        who = f"conn {event.conn}"
        if event.code == "slow_down":
            return self._refuse(event, None, "frame", who, self._slow_down(
                f"long frames from address {event.host}", event.wait_s, now,
                f"this address sends more long frames than the server reads; send it again in "
                f"{limits.wait_text(event.wait_s)} s"))
        frame_id = event.frame_id if _echoable(event.frame_id) else None
        try:
            self._admit(None, event.host, now)
        except Refused as refusal:
            return self._refuse(event, frame_id, "frame", who, refusal)
        return self._refuse(event, frame_id, "frame", who, FrameError(event.code, event.detail))

    def _account_named(self, name, default):
        """`name` if it is an account (safe to log), else `default`."""
        return name if isinstance(name, str) and name in self._passwords else default

    def _refuse(self, event, frame_id, kind, who, refusal):
        """The error reply to `event` (a Request or a BadFrame) for `refusal` (a Refused, or a
        FrameError from a field check), and its log line: said once a minute per address and
        kind of refusal (and account, for a login), with a count of the rest (a flood must not
        fill the log)."""
        self.refusals += 1
        if refusal.code == "slow_down":
            self.slowed += 1
        reply = protocol.error(refusal.code, frame_id, str(refusal))
        extra = getattr(refusal, "extra", {})
        reply.update(extra)
        answer = Reply(event.conn, reply, getattr(refusal, "durable", False))
        if not getattr(refusal, "logged", True):
            return [answer]     # a flood: its first refusal was logged
        text = getattr(refusal, "log_text", None)
        if text is None:
            shown_extra = "".join(f" {name}={value}" for name, value in extra.items())
            text = f"refused {kind} from {who} at {event.host}: {refusal.code}{shown_extra}"
        folded = f"refused {kind}: {refusal.code}"
        if kind == "login" and who in self._passwords:
            # a login's per account too: which accounts an address tries must show, and their
            # count is bounded (an operator's trial saw five accounts tried in one line)
            folded += f" for {who}"
        # (the store's trouble is the server's own, said once a minute already: never under
        # the flood bound the clients' refusals may spend)
        who_from = None if refusal.code == "unavailable" else event.host
        return [Log(text, (folded, who_from)), answer]

    def _no_session(self, frame, session):
        """The refusal (Refused, or FrameError for a token that is no string) of a request
        whose token names no live session, or (`session`) one from another address: another
        user's token, copied, gets no_session as a forged one does."""
        if session is not None:
            return Refused("no_session", "that token belongs to a session from another address")
        if frame.get("token") is None:
            return Refused("no_session", "log in first: this request needs a session token")
        try:
            token = protocol.text_field(frame, "token")
        except FrameError as bad:
            return bad
        if self._instance and _from_another_run(token, self._instance):
            return Refused("no_session", "the server restarted; log in again", restarted=True)
        why = self._sessions.ended_why.get(token)
        if why is not None:             # (for a client that missed the notice)
            return Refused("no_session", _ENDED_WORDS[why], reason=why)
        return Refused("no_session")     # (an ended session's token, or a made-up one)

    def _one_session_per_connection(self, conn, session=None):
        """Refuse (already_logged_in) a login, or `session`'s resume, on a staying connection
        that carries another session: a second login there left the first online to everyone,
        its token good, until its time-out, and another's resume left it unreachable (trials')."""
        carried = self._sessions.by_conn.get(conn)
        if carried is not None and carried is not session:
            raise Refused("already_logged_in")

    def _account_field(self, frame, name):
        """frame[name] if it names an account; bad_field or unknown_user otherwise (with
        `like`, the account it names in another case: names are case-sensitive, and a trial's
        "block SEAS" said only that no such user exists)."""
        user = protocol.name_field(frame, name)
        if user not in self._passwords:
            if self._by_lower is None:     # (made at the first miss: most servers never miss)
                self._by_lower = {account.lower(): account for account in self._passwords}
            like = self._by_lower.get(user.lower())
            if like is not None:
                raise Refused("unknown_user", like=like)
            # "message seas: hi" (a trial's): the name with a mark of punctuation after it
            near = self._by_lower.get(user.lstrip("@").rstrip(_TRAILING_MARKS).lower())
            raise Refused("unknown_user", **({"near": near} if near is not None else {}))
        return user

    # --- the connection: bye and a staying client's acknowledgements ---

    def _bye(self, request, now):
        """The side that connected is done: the accepting side closes first (PROTOCOL.md)."""
        return [Close(request.conn, "bye")]

    def _stay_ack(self, request, now):
        """An ack on a staying connection is for the session whose messages went out on it."""
        session = self._sessions.by_conn.get(request.conn)
        try:
            seq = protocol.int_field(request.frame, "seq", 1, protocol.MAX_SEQ)
        except FrameError as refusal:
            # (an ack is never answered, but its refusal repeats its id as every refusal
            # does: an error without one reads as a delivery on a staying connection)
            frame_id = request.frame.get("id")
            return self._refuse(request, frame_id if _echoable(frame_id) else None, "ack",
                                f"conn {request.conn}", refusal)
        if session is None:
            self._late_ack(request.conn, seq)
            return []
        return self._acknowledged(session, seq)

    def _late_ack(self, conn, seq):
        """An ack on a staying connection whose session ended with messages on their way
        there: what it acknowledges is not sent again at the user's next login (unless that
        login came first: its own window has them then). Anything else acknowledges nothing,
        and is not answered (a session just ended leaves a few on their way), but counted as
        refused: a read of thousands is a flood (limits.REFUSALS_PER_READ)."""
        late = self._sessions.acks_after_end.get(conn)
        if (late is None or late.user in self._users or seq <= late.acked
                or late.acked >= late.last_sent):
            self.refusals += 1      # (old news too: a million of them were all taken)
            return
        late.acked = min(seq, late.last_sent)
        self._store.acknowledge(late.user, late.acked)

    # --- logging in ---

    def _spend_check(self, user, host, now):
        """Spend a hashed-password check of `user`'s, `host`'s and everyone's, or raise
        slow_down. Each is spent only once all three have one: a name's checks spent by a
        login its address then turned away let an address that kept its own checks spent
        (its accounts' right passwords) keep any name from logging in, nothing counted (a
        trial's); the address's were not spent while everyone's were gone."""
        wait_s = self._name_checks.check(user, now)
        who = f"logins as {self._account_named(user, 'an unknown name')}"
        if not wait_s:
            wait_s, who = self._all_checks.check(None, now), "logins"
        if not wait_s:
            wait_s, who = self._address_checks.take(host, now), f"logins from {host}"
        if not wait_s:
            self._name_checks.take(user, now)
            self._all_checks.take(None, now)
        if wait_s:
            raise self._slow_down(who, wait_s, now, f"too many logins just now; try again in "
                                                    f"{limits.wait_text(wait_s)} s")

    def _check_user(self, request, frame_id, now):
        self._account_field(request.frame, "user")
        return [_answer(request.conn, frame_id, {"type": "ok"})]

    def _login(self, request, frame_id, now):
        frame = request.frame
        user = protocol.name_field(frame, "user")
        password = protocol.text_field(frame, "password", self._settings.max_text_chars)
        stay, port = _stay_fields(frame)
        # the client run's id, which its mids begin with: its counter is kept however long it
        # was silent (a client retries its oldest message for as long as it runs)
        client = frame.get("client")
        if client is not None:
            client = protocol.text_field(frame, "client", protocol.MAX_ID_CHARS)
        self._one_session_per_connection(request.conn)
        # A login writes (a wrong password is counted): while nothing can be, none is tried, so
        # a right password and a wrong one get the same answer
        self._writable()
        # Failed logins are limited per address too: guessing across many names from one
        # address is slowed, and the password is not even checked meanwhile.
        wait_s = self._failed_logins.check(request.host, now)
        if wait_s:
            raise self._slow_down(f"failed logins from {request.host}", wait_s, now,
                                  f"too many failed logins from your address; try again in "
                                  f"{limits.wait_text(wait_s)} s")
        if user not in self._passwords:
            # no password is checked for a name no account has: unknown names from 800
            # addresses took the checks everyone shares (a trial's), and check_user tells
            # which names exist anyway, as the original's "Invalid username" did
            self._failed_logins.take(request.host, now)
            raise Refused("unknown_user")
        # A blocked name stays blocked whatever the password, and trying does not count.
        left_s = self._lockouts.locked_for(user, now)
        if left_s:
            raise Refused("locked", seconds=math.ceil(left_s))
        if self._checker.hashing:
            self._spend_check(user, request.host, now)
        # the password compared in constant time (passwords.py)
        if not self._checker.check(user, password):
            self._failed_logins.take(request.host, now)
            attempts_left = self._lockouts.fail(user, now)
            if attempts_left == 0:
                raise Refused("too_many_attempts", durable=True,
                              seconds=whole(self._settings.lockout_s))
            raise Refused("wrong_password", durable=True, attempts_left=attempts_left)
        self._lockouts.clear(user)
        # the account's own name string (interned as the accounts were read, passwords.py),
        # not the copy this login decoded: the session keeps it as long as it lives
        user = sys.intern(user)
        return self._start_session(request.conn, frame_id, user, request.host, port, now, stay,
                                   client, request.irc)

    def _start_session(self, conn, frame_id, user, host, port, now, stays=False, client=None,
                       irc=False):
        old = self._users.get(user)
        token = self._make_secret()
        if self._instance:
            token = f"{self._instance}.{token}"
        # the proof is the session's key: deliveries to its listening port prove it (and
        # never send it). A staying session is reached on its connection alone, so it has
        # none (nor an entry in by_proof: 106 bytes of each idle staying user)
        proof = None if stays else self._make_secret()
        session = Session(user, token, proof, host, port, now, stays=stays)
        # the store and head let a client tell a new store from the one it knew, and a
        # number far beyond any given (PROTOCOL.md, "Guaranteed delivery"); `waiting`, how
        # many messages wait for this login, lets a script's client show them before it
        # logs out
        store = self._store
        welcome = {"type": "welcome", "user": user, "token": session.token}
        if proof is not None:
            welcome["proof"] = proof
        # `timeout`: a client heartbeats within it (a trial's server ran with --timeout 5, and
        # every client on the usual 30 s lost its session)
        welcome.update(store=store.identity, head=store.head, waiting=store.count_waiting(user),
                       timeout=whole(self._settings.timeout_s))
        # (an IRC user stays connected too, but the operator reading the log wants to know
        # which port it came by)
        staying = " by IRC" if irc else ", staying connected" if stays else ""
        # (one account's logins churned from a few addresses wrote two lines each, a trial's
        # 18,000 in 10 s; another's logged in and out, 5,855 in 10 s: folded per account and
        # address; a first login is not, and costs no tally of its own)
        churned = (f"{user} logged in again" if old is not None else
                   f"{user} logs in and out" if user in self._presence.held else None)
        actions = [Log(f"{user} logged in from {_shown((host, port))}{staying}",
                       churned and (churned, host)),
                   _answer(conn, frame_id, welcome)]
        if old is None:
            actions += self._presence_change(user, online=True, now=now)
        else:
            # The user stays online, so the others see no presence change.
            ended = self._end_session(user, "elsewhere")
            actions.append(Log(f"{user} logged in elsewhere; ended the session at "
                               f"{_shown(old.address)}", (f"{user} took its session over", host)))
            if old.conn != conn:
                # (not on the very connection the new login came on: that is the new one's)
                actions += self._reach(old, {"type": "logged_out", "reason": "elsewhere"})
            actions += ended
        self._sessions.add(session)
        self._shares.forget(user)           # (what waited for it goes out now)
        if stays:
            self._sessions.attach(session, conn)
        actions += self._send_waiting(session)
        if self._idle_check_due is None:
            # (armed, it is due no later than this session's time-out: at the oldest's)
            self._idle_check_due = now + self._settings.timeout_s
            actions.append(Arm(IdleCheck(), self._idle_check_due))
        # client ids silent for a day retry nothing, but the one logging in (which a day's
        # suspend or outage left silent, its oldest message perhaps taken): their counters go
        self._store.senders.forget_before(user, now - self._settings.counters_kept_s, client)
        return actions

    def _end_session(self, user, why=None):
        """End `user`'s session (`why`, unless by its logout) and the consents it took part
        in; returns the notices, and a TimeQuiet for the staying connection it leaves."""
        session = self._sessions.end(user, why)
        self._owed.pop(user, None)
        self._ports_unreached.discard(session.proof)
        notices = self._consents.end(user)
        actions = [action for to, frame in notices for action in self._tell(to, frame)] \
            if notices else []
        if session.conn is not None:
            actions.append(TimeQuiet(session.conn))
        return actions

    # --- presence ---

    def _presence_change(self, user, online, now, reason=None, let_go=False):
        """Tell every other online user that `user` came or went, except those it blocks and
        those who block it (_unseen_by): at once while the presence budget allows, else in the
        next batch (which carries no `reason`, the words a user left with); not while `user`
        is held for coming and going too often (where it is then, once `let_go`)."""
        if not let_go:
            held = self._presence.hold(user, online, now)
            if held is not None:
                return [Arm(PresenceHeld(user), held)] if held else []
        listeners = len(self._users)   # `user` is not among them, coming or going
        when = self._presence.change(user, online, listeners, now)
        if when is None:
            return []                       # it joined the waiting batch
        if when != "now":
            return [Arm(PresenceBatch(), when)]
        notice = {"type": "presence", "user": user, "online": online}
        if reason is not None:
            notice["reason"] = reason
        blocked = self._unseen_by(user)
        return self._reach_each([other for name, other in sorted(self._users.items())
                                 if name != user and name not in blocked], notice)

    def _unseen_by(self, user):
        """Who is not told of `user`'s comings and goings: those it blocks (they learn nothing
        of it), and those who block it (they want nothing of it, as with its broadcasts)."""
        blockers = self._store.blockers(user)
        blocks = self._store.blocks(user)
        return blocks | blockers if blockers else blocks

    def _let_presence_go(self, key, now):
        """A held user's hold ends: the others are told where it is now, if not that already."""
        online = key.user in self._users
        if not self._presence.let_go(key.user, online):
            return []
        return self._presence_change(key.user, online, now, let_go=True)

    def _send_presence_batch(self, key, now):
        """Every change since the batch began, in order, as one notice to each online user.

        The same notice (encoded once) goes to all but the few that a changed user blocks,
        who get theirs without that user. A user that came during the batch gets it whole,
        its own arrival included: the client skips changes about itself (PROTOCOL.md).
        """
        changes = self._presence.take_batch()
        if not changes:
            return []
        # (each subject's unseen set made once: made again for each change and each screened
        # user, a batch cost blocks x changes x screened users, seconds for a trial's account
        # that blocked 900 and logged in and out 95 times)
        unseen = {user: self._unseen_by(user) for user in {user for user, _ in changes}}
        screened = set().union(*unseen.values())
        notice = {"type": "presence", "changes": [[user, online] for user, online in changes]}
        whole, actions = [], []
        for name, session in sorted(self._users.items()):
            if name not in screened:
                whole.append(session)
                continue
            told = [[user, online] for user, online in changes if name not in unseen[user]]
            if told:
                actions += self._reach(session, {"type": "presence", "changes": told})
        return actions + self._reach_each(whole, notice)

    # --- messages ---

    def _next_in_run(self, run, request, now):
        """The usual next message of the run under way (reach._Run, and handle): on the run's
        connection, from its session, to its recipient, with a whole-number id, a text and
        perhaps a new mid, nothing else -> [] (its yes waits with the run's); or None for
        anything else (a repeat too), which goes _on_request's way, as every refusal does.
        What _on_request and _message check at a run's first message (the token's address,
        the recipient, a block) holds for the rest of it: nothing but this session's messages
        has happened since. The rate limit is asked last: one that says no spends nothing,
        and the usual way then says it. tests/test_broadcast_runs.py holds it to the usual
        way's actions; it is the hot path's shortest (tests/test_hot_path.py)."""
        frame = request.frame
        session = run.sender
        text = frame.get("text")
        frame_id = frame.get("id")
        mid = frame.get("mid")
        settings = self._settings
        if (len(frame) != (5 if mid is None else 6) or frame.get("token") != session.token
                or frame.get("to") != run.told[0] or run.skipped is not None
                or type(text) is not str or not text or len(text) > settings.max_text_chars
                or type(frame_id) is not int
                or not -protocol.MAX_SEQ <= frame_id <= protocol.MAX_SEQ
                or session.last_seen != now):
            return None
        store = self._store
        sender = session.user
        if mid is not None:
            try:
                mid = protocol.mid_field(frame)
            except FrameError:
                return None
            if store.senders.seen(sender, *mid) is not NEW:
                return None
        head = protocol.chat_head("message", sender, text)
        if store.failing is not None or store.room_for_one(
                run.told[0], len(head), settings.store_messages, settings.store_bytes,
                settings.inbox_messages, settings.inbox_bytes,
                *self._shares.crowd) is not None:
            return None
        if self._rate_limited and self._user_limit.take(sender, now):
            return None
        # (_keep_in_run's way for a run that goes on, inline)
        seq, wire = store.keep(run.told, head)
        shared = protocol.Numbered({"type": "message", "from": sender, "text": text}, seq=seq)
        shared.wire = wire
        run.frames.append(shared)
        self._yes_waits(sender, mid, request.conn, frame_id, now)
        return []

    def _yes_waits(self, sender, mid, conn, frame_id, now):
        """The usual yes to a message of a run (ok, not stored, a whole-number id) waits with
        the run's others, for one action (Replies): a Reply each, and the glue's call and
        append each, were a tenth of a message. Its mid, if any, is taken."""
        if mid is not None:
            self._store.senders.taken(sender, *mid, {"type": "ok", "stored": False}, now)
        yeses = self._yeses
        if yeses is None:
            yeses = self._yeses = Replies(conn, [])
        yeses.ids.append(frame_id)

    def _message(self, session, request, frame_id, now):
        frame = request.frame
        sender = session.user
        settings = self._settings
        # Every field is checked before a retry gets its old reply. This is the hot path: each
        # check's usual case is inline, and anything else goes to the check itself, which
        # refuses it as it always has (_account_field, mid_field, text_field).
        recipient = frame.get("to")
        run = self.run
        # the session's run of messages to this recipient goes on: the recipient was checked
        # at its first, and is online and does not block the sender, as nothing but this
        # session's messages has happened since (any other event ends the run first: handle)
        goes_on = (run is not None and run.sender is session and run.skipped is None
                   and type(recipient) is str and recipient == run.told[0])
        if not goes_on and not (
                type(recipient) is str and 0 < len(recipient) <= protocol.MAX_NAME_CHARS
                and recipient in self._passwords and recipient.isprintable()
                and " " not in recipient):
            recipient = self._account_field(frame, "to")
        mid = None if frame.get("mid") is None else protocol.mid_field(frame)
        text = frame.get("text")
        if type(text) is not str or not text or len(text) > settings.max_text_chars:
            text = protocol.text_field(frame, "text", settings.max_text_chars)
        notice = frame.get("notice", False)     # (an IRC NOTICE: nothing answers it by itself)
        if type(notice) is not bool:
            notice = protocol.flag_field(frame, "notice")       # (refuses it)
        store = self._store
        # a repeat gets its old reply whatever happened since: a fuzzer's retry, after the
        # recipient had blocked the sender, was told "blocked" of a message delivered
        if mid is not None and store.senders.seen(sender, *mid) is not NEW:
            return self._taken_before(sender, mid, request.conn, frame_id)
        if not goes_on:
            if recipient == sender:
                raise Refused("self")
            if sender in store.block_lists.get(recipient, ()):     # (is_blocked, inline)
                raise Refused("blocked")
        offline = not goes_on and recipient not in self._users
        message = {"type": "message", "from": sender, "text": text}
        if notice:
            message["notice"] = True
        if offline:
            message["offline"] = True       # it waits for a login: said on its line
        head = protocol.chat_head("message", sender, text, notice, offline)
        if store.failing is not None:       # (_room_for for one recipient, inline)
            raise StoreUnavailable(store.failing)
        room = store.room_for_one(recipient, len(head), settings.store_messages,
                                  settings.store_bytes, settings.inbox_messages,
                                  settings.inbox_bytes, *self._shares.crowd)
        if room is not None and room != "crowded":
            if room == "store":
                raise Refused("store_full")
            raise Refused("inbox_full", f"too many messages already wait for {recipient}")
        # to a user who is away, or whose client is not taking what comes (a crowd waits for
        # them already: "crowded"), what each sender leaves counts (shares.py)
        counted = offline or room is not None
        if counted:
            over = self._shares.full(sender, recipient, len(head))
            if over is not None:
                raise _share_full(over, recipient)
        if self.reading and not offline:
            # with the session's other messages to `recipient` in this read (one offline
            # has nothing to gather: a run of one there cost 2 us, bench.py's offline)
            told = run.told if goes_on else [recipient]
            deliveries = self._keep_in_run(session, request.conn, told, message, head)
            if counted:
                self._shares.left(sender, recipient, len(head))
            if type(frame_id) is int:
                self._yes_waits(sender, mid, request.conn, frame_id, now)
                return deliveries
        else:
            deliveries = self._keep_and_deliver([recipient], message, head)
            if counted:
                self._shares.left(sender, recipient, len(head))
        reply = {"type": "ok", "stored": offline}
        if mid is not None:
            store.senders.taken(sender, *mid, reply, now)
        line = None
        if frame_id is not None:
            reply["id"] = frame_id      # (_answer, inline)
            if type(frame_id) is int:   # (the usual id: the line from its template here)
                line = protocol.OK_STORED_LINES[offline] % frame_id
        deliveries.insert(0, Reply(request.conn, reply, True, line))
        return deliveries

    def _broadcast(self, session, request, frame_id, now):
        mid = protocol.mid_field(request.frame)
        text = protocol.text_field(request.frame, "text", self._settings.max_text_chars)
        notice = protocol.flag_field(request.frame, "notice", False)
        sender = session.user
        if mid is not None:
            answered = self._taken_before(sender, mid, request.conn, frame_id)
            if answered:
                return answered
        run = self.run
        # the same session's broadcast in the same read goes on with its run: nobody has come
        # or gone, and no block changed, since the run's first
        goes_on = run is not None and run.sender is session and run.skipped is not None
        if goes_on:
            told, skipped = run.told, run.skipped
        else:
            listeners = [name for name in self._users if name != sender]
            blockers = self._store.blockers(sender)
            told = [name for name in listeners if name not in blockers] if blockers else listeners
            # every user who blocks the sender, online or not: those online alone told a
            # blocked user when its blocker came and went (a trial's), which nothing else does;
            # an account no longer in the accounts file is not counted (a reviewer's)
            skipped = len(self._passwords.keys() & blockers) if blockers else 0
        message = {"type": "broadcast", "from": sender, "text": text}
        if notice:
            message["notice"] = True
        head = protocol.chat_head("broadcast", sender, text, notice)
        # (a refusal leaves any run as it is)
        fits, full, counted = self._room_for(told, len(head), sender)
        reply = {"type": "ok", "skipped": skipped}
        if full:
            reply["full"] = len(full)     # online, but too much already waits for them
        if fits is told and len(told) > 1 and self.reading:
            # all of them take it: it goes on with the run, or begins one
            deliveries = self._keep_in_run(session, request.conn, told, message, head, skipped)
        else:
            # a run this message does not go on with is delivered first: its numbers come first
            deliveries = self._run_deliveries() if run is not None else []
            if fits:
                deliveries += self._keep_and_deliver(fits, message, head)
        for name in counted:
            self._shares.left(sender, name, len(head))
        if mid is not None:
            self._store.senders.taken(sender, *mid, reply, now)
        answer = _answer(request.conn, frame_id, reply, durable=True)
        if type(frame_id) is int and not full:      # (the usual reply: its line from a template)
            answer.line = protocol.OK_SKIPPED_LINE % (skipped, frame_id)
        return [answer, *deliveries]

    def _taken_before(self, sender, mid, conn, frame_id):
        """A message whose number (`mid`: client id, number) its client had taken already is
        a repeat: it gets the reply to the highest number again (or "repeat" for an older
        one) and nothing is stored. -> the answer, or None for a new message; old_mid when
        the number is too far below the highest to tell (senders.REPLAY_WINDOW)."""
        client, number = mid
        senders = self._store.senders
        seen = senders.seen(sender, client, number)
        if seen is NEW:
            return None
        if seen is TOO_OLD:
            raise Refused("old_mid")
        reply = senders.reply_to_last(sender, client) if seen is LAST else {
            "type": "ok", "repeat": True}
        return [_answer(conn, frame_id, reply, durable=True)]

    def _room_for(self, recipients, size, sender):
        """Which recipients take `sender`'s broadcast of about `size` bytes -> (fits, those
        skipped, those of `fits` whose share counts it: shares.py). A recipient is skipped
        whose inbox is full, or who is not reading and has as much from `sender` waiting as one
        sender may leave (a trial's sender filled such a user's inbox with 10,000 broadcasts,
        and nobody else could leave them a word). Refused store_full if the store would pass
        its quota, and unavailable while the store cannot commit (what waits for the disk is
        not allowed to grow)."""
        store = self._store
        if store.failing is not None:       # (as _writable; this is the hot path)
            raise StoreUnavailable(store.failing)
        settings = self._settings
        # deliveries waiting bound the store's memory (its index holds each), bytes its disk
        if not store.takes(len(recipients), size, settings.store_messages, settings.store_bytes):
            raise Refused("store_full")
        shares = self._shares
        crowd_messages, crowd_bytes = shares.crowd
        crowded = store.crowded(recipients, min(crowd_messages, settings.inbox_messages),
                                min(crowd_bytes, settings.inbox_bytes) - size)
        if not crowded:
            return recipients, [], ()
        full = store.crowded(crowded, settings.inbox_messages, settings.inbox_bytes - size)
        full.update(name for name in crowded if shares.full(sender, name, size) is not None)
        if not full:
            return recipients, [], crowded
        return ([name for name in recipients if name not in full], sorted(full),
                crowded - full)

    def _writable(self):
        """While commits fail, nothing new is written: what waits for the disk stays small."""
        if self._store.failing is not None:
            raise StoreUnavailable(self._store.failing)

    # --- other requests ---

    def _online(self, session, request, frame_id, now):
        # as presence tells it: who blocks this user, or whom it blocks, is not listed (a list
        # kept by presence notices, an IRC client's or the window's, would keep them for ever)
        unseen = self._unseen_by(session.user)
        others = [name for name in self.online_users()
                  if name != session.user and name not in unseen]
        held = self._presence.held
        if held:
            # a user held for coming and going too often is where the others were last told
            # it is, until it is let go and they are told where it is then: listed as it is, a
            # trial's newcomer kept a wrong nick list for good (the let-go told it nothing new)
            others = sorted({*others, *(name for name, told_online in held.items()
                                        if told_online and name != session.user
                                        and name not in unseen)}
                            - {name for name, told_online in held.items() if not told_online})
        return [_answer(request.conn, frame_id, {"type": "online", "users": others})]

    def _block_target(self, session, frame):
        target = self._account_field(frame, "user")
        if target == session.user:
            raise Refused("self")
        return target

    def _block(self, session, request, frame_id, now):
        target = self._block_target(session, request.frame)
        if self._store.is_blocked(session.user, target):
            raise Refused("already_blocked")
        self._writable()
        seen = target not in self._unseen_by(session.user)
        self._store.add_block(session.user, target)
        actions = [_answer(request.conn, frame_id, {"type": "ok"}, durable=True),
                   *self._relisted(session.user, target, seen)]
        # Its next private is refused by the blocker's client, which drops the key itself, and
        # its next getaddress is refused here.
        if self._consents.revoke(target, session.user):
            actions.append(Log(f"{session.user} blocked {target}: its address grant ended"))
        # and its ask waiting for an answer lapses, as if unanswered (a trial's blocker then
        # answered Y, and the blocked user had the address and sent private messages)
        if self._consents.lapse(target, session.user):
            actions += [Log(f"{session.user} blocked {target}: its address request lapsed"),
                        *self._answer_asker(target, {"type": "address_lapsed",
                                                     "user": session.user}),
                        *self._tell(session.user, {"type": "consent_lapsed", "user": target})]
        return actions

    def _unblock(self, session, request, frame_id, now):
        name = protocol.name_field(request.frame, "user")
        if name not in self._passwords and name in self._store.blocks(session.user):
            # an account removed since the block: it may still go (an operator's trial's
            # was there for good, for whoever is given the name next)
            target = name
        else:
            target = self._block_target(session, request.frame)
        if not self._store.is_blocked(session.user, target):
            raise Refused("not_blocked")
        self._writable()
        seen = target not in self._unseen_by(session.user)
        self._store.remove_block(session.user, target)
        return [_answer(request.conn, frame_id, {"type": "ok"}, durable=True),
                *self._relisted(session.user, target, seen)]

    def _relisted(self, user, other, seen_before):
        """A block between `user` and `other` began or ended: if they now see each other
        otherwise than before (presence and `online` leave blocked pairs out), tell both while
        both are online, so that the lists presence keeps (an IRC client's nick list, the
        window's) neither keep a user whose logout they will never hear of, nor miss one."""
        seen = other not in self._unseen_by(user)
        if seen == seen_before:
            return []
        # each is told of the other where presence last told it the other is: a user held for
        # coming and going too often may be online, or not, otherwise than it was told (a
        # reviewer's blocker kept a held user in its list for good, and a held user's block
        # and unblock listed it to others who had been told it was gone)
        held = self._presence.held
        actions = []
        if held.get(other, other in self._users):
            actions += self._tell(user, {"type": "listed", "user": other, "listed": seen})
        if held.get(user, True) and other in self._users:
            actions += self._tell(other, {"type": "listed", "user": user, "listed": seen})
        return actions

    def _heartbeat(self, session, request, frame_id, now):
        """Every request of a session, this one too, has moved its last_seen to `now`
        (_on_request). The answer says how far the log has come, and that messages wait that
        its listening port did not take (a delivery failed, and nothing was acknowledged
        since: an operator's trial's client behind NAT heard nothing for minutes, and nobody
        knew but the log); answers owed go again."""
        reply = {"type": "ok", "head": self._store.head}
        if session.proof in self._ports_unreached:
            reply["unreached"] = True
        return [_answer(request.conn, frame_id, reply), *self._answers_owed(session)]

    def _answers_owed(self, session):
        """Answers to the session's getaddress that never reached its client (_unreached),
        now that it is heard from again: a trial's asker, stopped as its answer came, was
        never told, and was told to wait for the agreement that had come."""
        owed = self._owed.pop(session.user, None) if self._owed else None
        return [action for frame in owed.values() for action in self._reach(session, frame)
                ] if owed else []

    def _resume(self, session, request, frame_id, now):
        """The session's client is back on a new staying connection: reach it there, and
        send again everything it has not acknowledged, from the oldest, in order."""
        if not session.stays:
            # A short-model session resumed on a short connection waited, once that closed,
            # for a resume that never came, its listening port unused (a trial's).
            raise Refused("bad_field", "token: that session logged in without \"stay\"; it is "
                                       "reached at its listening port and takes no resume")
        self._one_session_per_connection(request.conn, session)
        left = session.conn
        self._sessions.attach(session, request.conn)
        # A connection it leaves (still open, say) is reset: what is queued on it all comes
        # again here. Kept open, each held up to a window's 2 MiB for its 60 s of quiet: a
        # trial's 881 resumes left 1.5 GB in the system's socket buffers.
        reset = [Close(left, "the session resumed on another connection", drop=True)
                 ] if left is not None and left != request.conn else []
        return [Log(f"{session.user} resumed the session on connection {request.conn}"),
                _answer(request.conn, frame_id, {"type": "ok", "head": self._store.head}),
                *reset, *self._send_waiting(session), *self._answers_owed(session)]

    def _logout(self, session, request, frame_id, now):
        reason = request.frame.get("reason")
        if reason is not None:
            reason = protocol.text_field(request.frame, "reason", MAX_REASON_CHARS)
        ended = self._end_session(session.user)
        user = session.user
        return [Log(f"{user} logged out", (f"{user} logs in and out", session.host)
                    if user in self._presence.held else None),
                _answer(request.conn, frame_id, {"type": "ok"}),
                *self._presence_change(session.user, online=False, now=now, reason=reason),
                *ended]

    # --- peer to peer: addresses given only by consent ---

    def _getaddress(self, session, request, frame_id, now):
        requester = session.user
        target = self._account_field(request.frame, "user")
        if target == requester:
            raise Refused("self")
        # Checked before "offline", so a blocked user learns nothing, not even presence.
        if self._store.is_blocked(target, requester):
            raise Refused("blocked")
        granter = self._users.get(target)
        if granter is None:
            raise Refused("offline")
        # each a question on the target's screen (a dialog in the window), which a logout
        # takes back: a trial's account logging in, asking and out put 110 on one in 1 s.
        # Only a question asked is counted (a reviewer's already_asked ones spent the budget)
        wait_s = self._asks.check(requester, now)
        if wait_s:
            raise self._slow_down(f"{requester}'s address requests", wait_s, now,
                                  f"too many address requests; try again in "
                                  f"{limits.wait_text(wait_s)} s")
        asked_until = self._consents.ask(requester, target, now)
        if asked_until is None:
            raise Refused("already_asked")
        self._asks.take(requester, now)
        if requester in self._owed:     # an answer to the question before is news no more
            self._owed[requester].pop(target, None)
        # (folded per asker: a trial's 40 accounts asking within their rate limits wrote
        # 29,000 lines a minute)
        asked = [Log(f"{requester} asked {target} for its address",
                     ("address requests", requester)),
                 _answer(request.conn, frame_id, {"type": "ok"})]
        question = {"type": "consent_request", "from": requester}
        reaching = self._reach(granter, question)
        if not reaching:        # (a staying target between connections: not now)
            return asked + self._unreached(granter, [question])
        return [*asked, *reaching, Arm(AskLapses(requester, target), asked_until)]

    def _consent(self, session, request, frame_id, now):
        frame = request.frame
        target = session.user
        requester = self._account_field(frame, "user")
        agree = protocol.flag_field(frame, "agree")
        asked = self._consents.answer(requester, target, now)
        # a no takes back a consent given before (a trial's user said N to a second question
        # and went on getting the asker's private messages: nothing else could stop them)
        revoked = not agree and self._consents.revoke(requester, target)
        if not asked and not revoked:
            raise Refused("no_request")
        asker = self._users.get(requester)     # an ask, and a grant, end with its session
        if not agree:
            refused = f"{target} refused {requester} its address"
            took_back = f"took back its consent to {requester}"
            reply = {"type": "ok"}
            if revoked:
                reply["revoked"] = True
                if asked:   # (said too: a trial's user who refused a new question and took
                    reply["refused"] = True     # back an old yes was told of the yes only)
            actions = [Log(f"{refused}, and {took_back}" if asked and revoked else
                           refused if asked else f"{target} {took_back}"),
                       _answer(request.conn, frame_id, reply)]
            if asked:
                actions += self._answer_asker(requester, {"type": "address_refused",
                                                          "user": target})
            if revoked:
                actions += self._reach(asker, {"type": "address_revoked", "user": target,
                                               "taken_back": True})
            return actions
        host, port = session.host, session.port
        if port is None:
            # the target agreed, but its client listens nowhere (it stays connected without a
            # port): no peer could reach it, so there is no address to give, and both are told.
            # Kept as a grant all the same, so that its end is told as any grant's (a trial's
            # asker went on hearing "no listening port" after the target came back with one)
            self._consents.grant(requester, target)
            return [Log(f"{target} agreed to talk with {requester} but has no listening port"),
                    _answer(request.conn, frame_id, {"type": "ok", "no_port": True}),
                    *self._answer_asker(requester, {"type": "address_unavailable",
                                                    "user": target})]
        # One random key per consent, known only to the pair: the requester proves with it
        # who it is to the target's listener (PROTOCOL.md, "Peer to peer"). Never logged.
        key = self._consents.grant(requester, target)
        address = {"type": "address", "user": target, "host": host, "port": port}
        if asker is not None and asker.proof is not None:
            # delivered to its listening port, in plain TCP: the key sealed with the session's
            # proof, which crossed inside the login's (TLS) reply only. In clear, anyone who
            # read it on the way could prove to be the asker, and a trial's eavesdropper's
            # forged private message showed as the asker's
            self._seals += 1
            salt = str(self._seals)
            address.update(salt=salt, sealed=protocol.seal(key, asker.proof,
                                                           protocol.ADDRESS_KEY_LABEL, target,
                                                           salt))
        else:
            address["key"] = key        # (a staying session's: inside its connection)
        return [Log(f"{target} gave {requester} its address"),
                _answer(request.conn, frame_id, {"type": "ok", "key": key}),
                *self._answer_asker(requester, address)]

    # --- timers ---

    def _on_expired(self, event, now):
        handler = self._timers.get(type(event.key))
        if handler is None:
            raise TypeError(f"not a server timer: {event.key!r}")
        return handler(event.key, now)

    def _ask_lapsed(self, key, now):
        if not self._consents.lapse(key.requester, key.target):
            return []   # answered already, or ended with a session
        # (folded per target, as the asks are per asker: a trial's soak of unanswered asks
        # made a quarter of the log of these)
        return [Log(f"{key.target} did not answer {key.requester}'s address request within "
                    f"{whole(self._settings.consent_s)} s",
                    ("address requests unanswered by", key.target)),
                *self._answer_asker(key.requester, {"type": "address_lapsed",
                                                    "user": key.target}),
                *self._tell(key.target, {"type": "consent_lapsed", "user": key.requester})]

    def _idle_check(self, key, now):
        """End every session silent for the time-out, longest silent first, and arm the one
        check again for the next to come due. The time-out is one constant, so the sessions
        in order of last request (sessions.by_user) are in order of time-out too: only the
        front is read, and one timer does for every user.

        A check that comes IDLE_CHECK_LATE_S past its time found the server away (stopped
        with Ctrl-Z, paused, a pass held up by a slow disk): the heartbeats sent meanwhile may
        wait unread in its sockets, or be connections not yet accepted (after a stop, the
        select() that waited for this check returns none: Python retries it only while time
        is left, PEP 475). So it ends nobody, and checks again IDLE_GRACE_S later, once they
        are read; that check ends the silent, however late it comes. (A trial's 3 s Ctrl-Z of
        the server near the heartbeats' time logged every user out, their heartbeats refused
        as no_session on the next read.)
        """
        timeout_s = self._settings.timeout_s
        late_s = now - self._idle_check_due if self._idle_check_due is not None else 0.0
        oldest = self._sessions.longest_silent()
        self._idle_grace = (late_s > IDLE_CHECK_LATE_S and not self._idle_grace
                            and oldest is not None and now >= oldest.last_seen + timeout_s)
        if self._idle_grace:
            self._idle_check_due = now + IDLE_GRACE_S
            return [Log(f"the time-out check came {late_s:.1f} s late (the server was held up): "
                        f"silent sessions end {whole(IDLE_GRACE_S)} s from now, once what "
                        f"waits to be read is read"), Arm(key, self._idle_check_due)]
        timed_out = []
        for session in self._users.values():
            # The same sum as the armed time, so a timer firing exactly then ends the session.
            if now < session.last_seen + timeout_s:
                break
            timed_out.append(session.user)
        actions = []
        try:
            for user in timed_out:
                # told at once where it can be (a trial's staying client, its connection
                # open, heard of it only at its next heartbeat, 25 s later)
                told = self._reach(self._users[user], {
                    "type": "logged_out", "reason": "timed_out", "seconds": whole(timeout_s)})
                ended = self._end_session(user, "timed_out")
                actions += [*told,
                            Log(f"{user} timed out after {whole(timeout_s)} s without a request"),
                            *self._presence_change(user, online=False, now=now,
                                                   reason="timed out"), *ended]
        except Exception:
            # (a bug: the check is armed again by the next login, not never, and the glue
            # logs it; a reviewer's injected one had ended time-outs for everyone, for good)
            self._idle_check_due = None
            raise
        oldest = self._sessions.longest_silent()
        self._idle_check_due = None if oldest is None else oldest.last_seen + timeout_s
        if oldest is not None:
            actions.append(Arm(key, self._idle_check_due))
        return actions

    def _redeliver(self, key, now):
        session = self._users.get(key.user)
        if (session is None or session.proof != key.proof or session.window is None
                or not session.window.retrying):
            return []   # stale: that session ended, or it resumed meanwhile
        return self._send_waiting(session)

    # --- what the glue reports ---

    def _on_closed(self, event, now):
        """A staying connection is gone: its session lives on, detached, until a resume or
        its time-out; what it had not acknowledged goes out again at the resume."""
        sessions = self._sessions
        if event.conn not in sessions.by_conn:
            # a short connection, or one whose session has ended: what acks it could still
            # give go with it (inline: every short connection closes here)
            sessions.acks_after_end.pop(event.conn, None)
            return []
        session = sessions.detach(event.conn)
        return [Log(f"{session.user}'s staying connection closed; the session waits for a "
                    f"resume")]

    def _on_acked(self, event, now):
        session = self._sessions.by_proof.get(event.proof)
        if session is None:
            return []   # an ended session's messages wait for the next login anyway
        self._ports_unreached.discard(event.proof)      # (reached after all)
        return self._acknowledged(session, event.seq)

    def _on_store_recovered(self, event, now):
        """The store commits again: send what a window could not read from it meanwhile.
        (The glue's log says so: pacing.StateLines.)"""
        return [action for _, session in sorted(self._users.items())
                for action in self._top_up(session)]

    def _on_undelivered(self, event, now):
        """Messages a client did not acknowledge: retried, with backoff, while it is on."""
        session = self._sessions.by_proof.get(event.proof)
        failed = f"could not deliver to {_shown(event.address)} ({event.reason})"
        # (folded per host: logins naming ports nobody listens on could fill the log)
        key = ("could not deliver to a listening port", event.address[0])
        if session is None:
            return [Log(f"{failed}; the session has ended: its messages wait for the next "
                        f"login", key)]
        user = session.user
        unreached = self._unreached(session, event.unsent) if event.unsent else []
        unacked = len(session.window.sent) if session.window is not None else 0
        if not unacked:
            return [Log(f"{failed}; only notices, dropped", key), *unreached]
        if event.reason in UNREACHED:       # (not one taken, then silent: a stopped client)
            self._ports_unreached.add(session.proof)
        backoff_s = self._deliveries.failed(session.window)
        if backoff_s is None:       # (what could not be asked, or given, is said all the same)
            return [Log(f"{failed}; a retry of {user}'s messages is already due", key),
                    *unreached]
        return [Log(f"{failed}; {plural(unacked, 'message')} for {user} will be retried "
                    f"in {whole(backoff_s)} s", key),
                Arm(Redeliver(user, session.proof), now + backoff_s), *unreached]

    def _unreached(self, session, notices):
        """A question, or an address, that never reached the client of `session`: it ends,
        and the other side is told, rather than waiting on it. (A trial's client, frozen for
        13 s, never saw a question while its asker was told to wait for the answer; another
        never got the address its peer had been told it gave.) An answer to its own
        getaddress goes again once it is heard from (_owe); other notices just lapse."""
        actions = []
        user = session.user
        for frame in notices:
            kind = frame.get("type")
            if kind == "consent_request" and self._consents.lapse(frame["from"], user):
                actions += [Log(f"{frame['from']}'s address request could not be delivered "
                                f"to {user}: it lapsed",
                                ("address requests undeliverable to", user)),
                            *self._tell(frame["from"], {"type": "address_lapsed", "user": user,
                                                        "unreached": True})]
            elif kind == "address" and self._consents.revoke(user, frame["user"]):
                actions += [Log(f"{frame['user']}'s address could not be delivered to {user}: "
                                f"the consent ended", ("addresses undeliverable to", user)),
                            *self._tell(frame["user"], {"type": "consent_revoked", "user": user,
                                                        "unreached": True})]
                self._owe(user, {"type": "address_lapsed", "user": frame["user"],
                                 "lost": True})
            elif kind in ("address_refused", "address_unavailable", "address_lapsed"):
                self._owe(user, frame)
        return actions

    def _answer_asker(self, asker, answer):
        """Deliver `answer` to the getaddress of `asker` (a user) if online. One that cannot
        reach its client now (staying, between connections) is unreached, as one its
        listening port did not take (_unreached): an address ends its grant, and the answer
        goes again once the asker is heard from."""
        session = self._users.get(asker)
        if session is None:
            return []
        return self._reach(session, answer) or self._unreached(session, [answer])

    def _owe(self, user, answer):
        """`answer` to `user`'s getaddress goes again once its client is heard from (the
        newest per target: one question per pair waits at a time)."""
        self._owed.setdefault(user, {})[answer["user"]] = answer
