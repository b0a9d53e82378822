"""The chat server's core: ChatServer turns events into actions.

It is a plain object: `handle(event, now)` takes one event (a decoded request,
a timer that fired, a delivery that failed; server_events.py lists them) and returns a list of
actions (reply, deliver, arm a timer, log). It never touches a socket or reads the clock: `now`
is monotonic seconds from the glue. It routes each event to its handler, checks what every
request must pass (a session's token, the rate limits, the id) and words the refusals. Its
parts are its base classes, a module each: server_logins.py (sessions), server_messages.py
(messages and broadcasts), server_contacts.py (presence, blocks, consents) and reach.py
(keeping messages and turning what goes out into actions). The rules with state of their own
live beside it: lockouts.py (wrong passwords), consents.py (peer-to-peer addresses),
presence.py (when presence goes out), delivery.py (what each client has on its way),
sessions.py (who is logged in). PROTOCOL.md is the contract it keeps; server.py runs it.
"""
from dataclasses import dataclass

import limits
import passwords
import protocol
from consents import Consents
from delivery import Deliveries
from lockouts import Lockouts
from presence import Presence
from reach import RUN_KINDS, Reach
from protocol import MAX_REASON_CHARS, FrameError, whole
from server_contacts import Contacts
from server_events import (UNREACHED, Acked, Arm, AskLapses, BadFrame, Close, Closed, Expired,
                           IdleCheck, Log, PresenceBatch, PresenceHeld, Redeliver, Reply,
                           Request, StoreRecovered, Undelivered)
from server_logins import Logins
from server_messages import Messages
from server_replies import Refused
from sessions import RandomSecrets, Sessions, shown_address
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


_TRAILING_MARKS = ":,;.!?"   # typed after a name by habit ("seas:"), never part of one here
                            # (and "@" before it: "@seas")


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


def _ends(logout, frame_id):
    """True if a logout frame will end its session (its reason and id pass their checks)."""
    reason = logout.get("reason")
    return ((reason is None or (type(reason) is str and 0 < len(reason) <= MAX_REASON_CHARS))
            and (frame_id is not None or logout.get("id") is None))


def _from_another_run(token, instance):
    """True if `token` has the shape of this server's tokens (a run's name, a dot, a secret)
    and another run's name: the server restarted since. A made-up token is only unknown (a
    trial's "x" was told the server had restarted, and its client said so)."""
    run, dot, secret = token.partition(".")
    return bool(dot and secret) and len(run) == len(instance) and run != instance


class ChatServer(Logins, Messages, Contacts, Reach):
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
        """True while the session with `proof` has messages on their way, unacknowledged, or had
        when it ended: its delivery connection stays open for the acknowledgement."""
        window = self._window_by_proof(proof)
        if window is not None:
            return bool(window.sent)
        # (or had, before its logout: what its client acknowledges still counts, _on_acked,
        # and a bye after the first such ack cut off the rest: a re-check's 200 came again)
        late = self._sessions.proof_acks_after_end.get(proof)
        return late is not None and late.acked < late.last_sent and late.user not in self._users

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

    def _writable(self):
        """While commits fail, nothing new is written: what waits for the disk stays small."""
        if self._store.failing is not None:
            raise StoreUnavailable(self._store.failing)

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
            if not self._late_ack(self._sessions.acks_after_end.get(request.conn), seq):
                # not answered (a session just ended leaves a few on their way), but counted
                # as refused: a read of thousands is a flood (limits.REFUSALS_PER_READ)
                self.refusals += 1      # (old news too: a million of them were all taken)
            return []
        return self._acknowledged(session, seq)

    def _late_ack(self, late, seq):
        """An ack for a session that ended with messages on their way to its client (`late`,
        sessions.LateAcks, or None): what it acknowledges is not sent again at the user's
        next login (unless that login came first: its own window has them then) -> True if
        it acknowledged something."""
        if (late is None or late.user in self._users or seq <= late.acked
                or late.acked >= late.last_sent):
            return False
        late.acked = min(seq, late.last_sent)
        self._store.acknowledge(late.user, late.acked)
        return True

    # --- timers ---

    def _on_expired(self, event, now):
        handler = self._timers.get(type(event.key))
        if handler is None:
            raise TypeError(f"not a server timer: {event.key!r}")
        return handler(event.key, now)

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
        if session is None:     # (read after its logout, say)
            self._late_ack(self._sessions.proof_acks_after_end.get(event.proof), event.seq)
            return []
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
        failed = f"could not deliver to {shown_address(event.address)} ({event.reason})"
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
