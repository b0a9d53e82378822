"""One IRC client's connection, translated both ways: IRC lines to the chat core's requests, and
the core's replies and deliveries back to IRC lines (no I/O; irc_glue.py moves the bytes).

To the core an IRC connection is a staying client (PROTOCOL.md, "Staying connected"): it logs
in with `"stay": true` and no port, its requests carry ids, and deliveries come on it. So the
core, its accounts, lockouts, block lists and stored messages are the same for both protocols.

    irc_wire.Message -> IrcSession.from_client(message, wall) -> .lines (bytes for the client),
    core frame       -> IrcSession.from_core(frame, wall)        .requests (frames for the core),
                                                                  .hangup (a reason, or None)

Not the cores' shape (events in, actions out), on purpose: a session is no core, it decides
nothing the core does not; it is a codec with state between one connection and the core, so
what it makes is simply what goes each way, gathered as it translates. `wall` is passed in as a
core's `now` is: the wall clock's time, for server-time tags and a kept message's date.

The room is one channel (`room`) that every logged-in user is in: speaking there is
`broadcast`, its members are `online` (the questions about them, NAMES, WHO, WHOIS and the rest,
are irc_room.RoomCommands, the session's base class), logins and logouts are JOIN and QUIT. The
service nick (`SERVICE`) takes the native client's words for what IRC has none for (`block`,
`online`, `y`).

Acknowledgements: IRC has none, but TCP keeps order, so a PONG to a PING sent after deliveries
proves the client read them all: the PONG becomes the core's cumulative `ack` (PROTOCOL.md, "IRC").
"""
import base64
import binascii
import time

from irc_room import NOT_ASKED, RoomCommands
from irc_wire import CHANNELLEN, Message, fold, line, nick_ok, pieces, text_bytes
from irc_words import (CTCP, HELP, NO_PRIVATE, SERVICE, SERVICE_SOURCE, USER_HOST,
                       VERSION, ctcp_word, from_action, login_refused, notice_about, sent_at,
                       stamp, to_action, why)
from protocol import MAX_REASON_CHARS

CAPS = {"sasl": "PLAIN", "server-time": None, "message-tags": None, "echo-message": None,
        "multi-prefix": None, "userhost-in-names": None}    # (no one has a prefix here)
MAX_TARGETS = 4
USERLEN = 10                # a USER name is cut to this (ISUPPORT USERLEN)
MAX_EARLY_LINES = 64        # lines a client may send while its login is being answered
ACK_TOKEN = "ack-"          # our PINGs that acknowledge carry this and the seq they cover
ACK_PINGS = 8               # ... at most this many unanswered at once,
ACK_PING_GAP_S = 3.0        # ... and one per this at most: a client counts its PONGs against
                            # its own flood limit (irssi: 5 at once, then one per 2.2 s), and
                            # a PING per delivery held an irssi user's typed line back 2 s
ACK_PING_BATCH = 64         # ... unless this many messages wait for one (a busy link's window
                            # keeps moving),
ACK_PING_BUSY_S = 10.0      # ... or it has been held back this long: a client that talks at
                            # least every ACK_PING_GAP_S was never asked, and a soak's showed
                            # messages again up to 16 s old at every reconnect
# a message delivered this long after its time (sent again at a reconnect) says its time in its
# text, as a kept one does: shown with no word, a trial's read as just said, minutes late
REPLAYED_S = 30.0


DISCARDING = ()             # self.sasl while the rest of a refused payload goes by


class _Answer:
    """A place in the output for the answer to one line: IRC answers in the order asked, and
    some answers wait for the core (WHO, a message's echo) while others do not (PONG)."""
    __slots__ = ("lines", "done")

    def __init__(self, done=False):
        self.lines = []
        self.done = done


def folded(names):
    """Account names -> {folded name: name}: how an IRC name (any case) finds its account.
    Made once for all connections (10,000 accounts cost 8 ms a login when made for each)."""
    return {fold(name): name for name in names}


class Shared:
    """What the IRC port's sessions share (irc_glue makes one for them all)."""

    __slots__ = ("refusals", "users", "idents", "logging", "broadcast", "presence",
                 "most_users")

    def __init__(self):
        self.refusals = 0           # lines refused, ever: the glue's flood rule reads the rise
        self.users = {}             # account -> its welcomed session, for WHOIS and the like
        self.idents = {}            # account -> the user name its USER gave (who_is)
        self.logging = set()        # accounts whose login is being answered
        self.broadcast = None       # (key, lines) of the last broadcast: made once for all
        self.presence = None        # (frame, users, lines) of the last presence notice
        self.most_users = 0         # the most users LUSERS has counted at once


class IrcSession(RoomCommands):
    """See the module docstring. `accounts`: `folded` account names (a name's case may
    differ on IRC); `server`: our name in numerics; `room`: the one channel."""

    # (an idle IRC user's session: 35 attributes in a dict were 3 KB, past the 30 a dict's
    # shared keys hold)
    __slots__ = ("accounts", "shared", "open_accounts", "is_online", "server", "room",
                 "room_folded", "host", "lines", "requests", "hangup", "nick", "user_given",
                 "realname", "ident", "away", "password", "caps", "negotiating", "sasl",
                 "account", "token", "logging_in", "early", "welcomed", "joined", "held", "gone",
                 "quitting", "pending", "answers", "_into", "next_id", "shown_seq", "acked_seq",
                 "pinged", "pinged_at", "unpinged", "held_since", "rejoined_at", "wall",
                 "missed", "_away_asked")

    def __init__(self, accounts, server, room, host, open_accounts=(), shared=None,
                 is_online=lambda name: False):
        self.accounts = accounts        # folded name -> account name (`folded`), shared
        self.shared = Shared() if shared is None else shared     # (one for every session)
        self.open_accounts = open_accounts     # names that need no password (passwords.OPEN)
        self.is_online = is_online      # name -> True while it has a session (the core's)
        self.server = server
        self.room = room
        self.room_folded = fold(room)
        self.host = host
        self.lines = []         # bytes for the IRC client, in order
        self.requests = []      # frames for the core, in order
        self.hangup = None      # a reason: close once the lines are written
        self.nick = "*"         # what numerics call the client until it is welcomed
        self.user_given = False
        self.realname = None    # from USER: shown in WHO and WHOIS
        self.ident = None       # the user part of our mask (~user), from USER's user name
        self.away = None                        # the AWAY message, while one is set
        self._away_asked = NOT_ASKED    # ... as it was when what is being answered was asked
        self.password = None
        self.caps = set()
        self.negotiating = False        # CAP LS or REQ began: registration waits for CAP END
        self.sasl = None                # None, or the PLAIN blob's chunks so far (AUTHENTICATE)
        self.account = None             # logged in as (by SASL or PASS), from the welcome
        self.token = None
        self.logging_in = False         # a login request is on its way to the core
        self.early = []                 # lines that came meanwhile, read after its answer
        self.welcomed = False           # 001 sent
        self.joined = False             # ... and the room joined (_join_room)
        # deliveries not yet written: all of them before the welcome; after it, the room's
        # until the room is joined
        self.held = []
        self.rejoined_at = None         # when a PART of the room was last answered with a JOIN
        self.wall = 0.0                 # the wall-clock time of the core's last frame
        self.missed = (0, 0)            # (skipped, full) a room message's answer last said
        self.gone = False               # QUIT or a refused login: nothing more is read
        # QUIT while lines before it wait for the core's answers (a message's echo): their
        # answers go out first, then ERROR (close's reason and text)
        self.quitting = None
        self.pending = {}               # request id -> what to do with its reply, and where
        self.answers = []               # the places of answers in the order of the lines
                                        # asked: lines wait behind one not yet answered
        self._into = None               # the place a reply's handler writes into
        self.next_id = 0
        self.shown_seq = 0              # the highest numbered delivery written
        self.acked_seq = 0              # ... and acknowledged to the core
        self.pinged = []                # the seqs our unanswered ack PINGs cover, in order
        self.pinged_at = None           # when the last went (the glue's clock)
        self.unpinged = 0               # messages shown since
        self.held_since = None          # when a PING was first held back for the client's talk

    # -- output helpers -------------------------------------------------------------------------

    def say(self, command, *params, source=None, tags=None):
        self._put(line(self.server if source is None else source, command, *params, tags=tags))

    def _put(self, data):
        """One line for the client, in its place among the answers (see _Answer)."""
        if self._into is not None:
            self._into.lines.append(data)       # a reply's handler: into that reply's place
        elif self.answers:
            # an earlier line still waits for the core: what this one says comes after it
            if not self.answers[-1].done:
                self.answers.append(_Answer(done=True))
            self.answers[-1].lines.append(data)
        else:
            self.lines.append(data)

    def numeric(self, code, *params):
        if code[0] in "45":     # an error: counted for the front's flood rule (irc_glue)
            self.shared.refusals += 1
        self.say(code, self.nick, *params)

    def notice(self, text, source=SERVICE_SOURCE):
        for piece in pieces(text):
            self.say("NOTICE", self.nick, piece, source=source)

    def ask(self, kind, frame, then=None, context=None):
        """A request for the core; its reply goes to method `then` with `context`."""
        self.next_id += 1
        frame["id"] = request_id = f"i{self.next_id}"
        if self.token is not None and kind not in ("login",):
            frame["token"] = self.token
        frame["type"] = kind
        place = None
        if then is not None:
            # its answer's lines keep their place among the client's other answers
            place = _Answer()
            if self._into is None:
                self.answers.append(place)
            else:
                # asked while answering another: right after that, and what the handler says
                # next goes after this one
                at = self.answers.index(self._into) + 1
                self.answers.insert(at, place)
                self._into = _Answer(done=True)
                self.answers.insert(at + 1, self._into)
        self.pending[request_id] = (then, context, place)
        self.requests.append(frame)

    def close(self, reason, text):
        """Say ERROR and hang up: what waits for the core is not waited for any more."""
        for place in self.answers:
            self.lines += place.lines
        self.answers.clear()
        self._into = None
        self.lines.append(line("", "ERROR", f"Closing link: {text}"))
        self.hangup = reason
        self.gone = True

    def who_is(self, name):
        """The mask `name`'s lines come from, the same in every line and in WHO and WHOIS (a
        client keeps the mask WHO gives: irssi kept one that none of the lines had):
        nick!~user@chat for an IRC user, with the user name it gave USER (as IRC servers show
        one they did not verify), nick!nick@chat for a client.py user."""
        if name == self.account and self.ident:
            return f"{name}!{self.ident}@{USER_HOST}"
        if name not in self.shared.users and self.is_online(name):
            return f"{name}!{name}@{USER_HOST}"     # logged in by client.py now (a trial's
                                                    # showed the USER of its last IRC login)
        return f"{name}!{self.shared.idents.get(name, name)}@{USER_HOST}"

    def _time_tags(self, at):
        if at is None or "server-time" not in self.caps:
            return None
        return {"time": stamp(at)}

    # -- from the IRC client --------------------------------------------------------------------

    def from_client(self, message, wall):
        """One parsed line from the client at wall-clock `wall`."""
        if self.gone or self.quitting:
            return
        if self.logging_in:
            # the login's answer comes later, but a client may send on at once (a paste, a
            # script): its lines wait and are read after the answer, in order
            self._after_login(self.from_client, message, wall)
            return
        command = COMMANDS.get(message.command)
        if command is not None and (self.welcomed or command[1]):
            command[0](self, message.params, wall)
        elif command is not None:
            self.numeric("451", "You have not registered")
        elif message.command.isdigit():
            pass            # a numeric from a client means nothing to a server
        else:
            self.numeric("421", message.command, "Unknown command")

    def _after_login(self, step, *args):
        """`step(*args)` once the login's answer is in (a line's, or its refusal's: said in
        the order the lines came, a trial's 417 came after the PONG of a line sent after it)."""
        if len(self.early) >= MAX_EARLY_LINES:
            self.close("flood", "too many lines while logging in")
        else:
            self.early.append((step, args))

    def refused_text(self, command):
        self.shared.refusals += 1
        self._say_in_turn("FAIL", command, "INVALID_UTF8", "Messages must be UTF-8; this line "
                          "was not sent")

    def too_long(self):
        self.shared.refusals += 1     # (as numeric does)
        self._say_in_turn("417", self.nick, "Input line was too long")

    def _say_in_turn(self, *words):
        """A refused line's answer, after the answers to the lines before it."""
        if self.logging_in:
            self._after_login(self._say_in_turn, *words)
        else:
            self.say(*words)

    def _need(self, params, count, command):
        if len(params) < count:
            self.numeric("461", command, "Not enough parameters")
            return False
        return True

    def _c_cap(self, params, wall):
        if not self._need(params, 1, "CAP"):
            return
        sub = params[0].upper()
        if sub == "LS":
            if not self.welcomed:
                self.negotiating = True
            v302 = len(params) > 1 and _number(params[1]) >= 302
            offered = " ".join(name if value is None or not v302 else f"{name}={value}"
                               for name, value in CAPS.items())
            self.say("CAP", self.nick, "LS", offered)
        elif sub == "LIST":
            self.say("CAP", self.nick, "LIST", " ".join(sorted(self.caps)))
        elif sub == "REQ":
            if not self.welcomed:
                self.negotiating = True
            wanted = params[1].split() if len(params) > 1 else []
            if wanted and all(name.lstrip("-") in CAPS for name in wanted):
                for name in wanted:
                    if name.startswith("-"):
                        self.caps.discard(name[1:])
                    else:
                        self.caps.add(name)
                self.say("CAP", self.nick, "ACK", " ".join(wanted))
            else:
                self.say("CAP", self.nick, "NAK", " ".join(wanted))
        elif sub == "END":
            if self.sasl is not None and not self.welcomed:
                # (IRCv3: registration ending a SASL exchange aborts it)
                self.sasl = None
                self.numeric("906", "SASL authentication aborted")
            if self.negotiating and not self.welcomed:
                self.negotiating = False
                self._try_register()
        else:
            self.numeric("410", params[0], "Invalid CAP command")

    def _c_authenticate(self, params, wall):
        if not self._need(params, 1, "AUTHENTICATE"):
            return
        arg = params[0]
        if self.welcomed:
            self.numeric("462", "You may not reregister: the login is the account")
            return
        if "sasl" not in self.caps or self.account is not None or self.logging_in:
            self.numeric("907" if self.account else "904", "SASL authentication is not "
                         "possible now")
            return
        if arg == "*":
            self.sasl = None
            self.numeric("906", "SASL authentication aborted")
        elif self.sasl is DISCARDING:
            if arg == "+" or len(arg) < 400:
                self.sasl = None        # the end of the payload refused: a new try may begin
        elif self.sasl is None:
            if arg.upper() != "PLAIN":
                self.numeric("908", "PLAIN", "are available SASL mechanisms")
                self.numeric("904", "SASL authentication failed")
                return
            self.sasl = []
            self.say("AUTHENTICATE", "+", source="")
        else:
            if arg != "+":
                self.sasl.append(arg)
            if len(arg) > 400:
                self.sasl = None
                self.numeric("905", "SASL message too long")
                return
            if len(self.sasl) * 400 > 1200:
                # far longer than a PLAIN login: failed, and the rest of it is not read
                self.sasl = DISCARDING if len(arg) == 400 else None
                self.numeric("904", "SASL authentication failed: the message is too long")
                return
            if arg == "+" or len(arg) < 400:
                self._sasl_plain("".join(self.sasl))

    def _sasl_plain(self, blob):
        self.sasl = None
        try:
            authz, user, password = base64.b64decode(blob, validate=True).decode(
                "utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.numeric("904", "SASL authentication failed: not a PLAIN message")
            return
        if authz and fold(authz) != fold(user):
            # no one may act as another here (RFC 4616: such a login fails)
            self.numeric("904", "SASL authentication failed: you may log in as yourself only")
            return
        self._login(user, password, by_sasl=True)

    def _c_pass(self, params, wall):
        if self.welcomed or self.account is not None:
            self.numeric("462", "You may not reregister")
        elif self._need(params, 1, "PASS"):
            self.password = params[0]

    def _c_nick(self, params, wall):
        if not params or not params[0]:
            self.numeric("431", "No nickname given")
            return
        wanted = params[0]
        if self.welcomed:
            if wanted != self.account:
                self.numeric("432", wanted, "Nicks are account names here: yours stays "
                             f"{self.account}")
            return
        if not nick_ok(wanted) or len(wanted) > 64:
            self.numeric("432", wanted, "Erroneous nickname")
            return
        self.nick = wanted
        self._try_register()

    def _c_user(self, params, wall):
        if self.welcomed:
            self.numeric("462", "You may not reregister")
        elif self._need(params, 4, "USER"):
            if not params[0] or not params[3]:
                self.numeric("461", "USER", "The user name and the real name must not be empty")
                return
            self.realname = params[3]
            if self.account is None:
                # in a mask, only letters, digits and ._- (a '!' or '@' would break it); one
                # logged in by SASL before its USER joined the others' room with its mask
                # made already, and keeps it
                kept = "".join(c for c in params[0][:USERLEN]
                               if c.isascii() and (c.isalnum() or c in "._-"))
                self.ident = "~" + kept if kept else None
            self.user_given = True
            self._try_register()

    def _c_ping(self, params, wall):
        if not params:
            self.numeric("409", "No origin specified")
        else:
            self.say("PONG", self.server, params[0])

    def _c_pong(self, params, wall):
        if not params:
            self.numeric("409", "No origin specified")      # (as to a PING: ngIRCd's too)
            return
        token = params[-1]
        seq = _number(token[len(ACK_TOKEN):]) if token.startswith(ACK_TOKEN) else 0
        if not seq:
            return
        if seq not in self.pinged:
            return          # not a PING of ours, or answered already
        while self.pinged and self.pinged[0] <= seq:
            del self.pinged[0]      # (at most ACK_PINGS: a list is 570 bytes smaller)
        self.acked_seq = seq
        self.requests.append({"type": "ack", "seq": seq})       # (the glue asks for the next)

    def _c_quit(self, params, wall):
        if self.token is not None:
            # the others' IRC clients show the words it left with
            self.ask("logout", {"reason": params[0][:MAX_REASON_CHARS]}
                     if params and params[0] else {})
            self.token = None
        text = "Quit" + (f": {params[0]}" if params else "")
        if any(not place.done for place in self.answers):
            # the answers of the lines before it come first: their echoes say they were taken
            self.quitting = ("quit", text)
        else:
            self.close("quit", text)

    # -- registration ---------------------------------------------------------------------------

    def _try_register(self):
        """NICK and USER given, CAP negotiation over: log in (or, logged in by SASL already,
        welcome)."""
        if self.welcomed or self.negotiating or self.nick == "*" or not self.user_given:
            return
        if self.account is not None:
            self._welcome()
        elif not self.logging_in:
            account = self.accounts.get(fold(self.nick))
            if self.password is None and account in self.open_accounts:
                if self.is_online(account) or account in self.shared.logging:
                    # no password proves this is the same person: an open account in use
                    # is not taken over (a login with its password would be). Addressed to
                    # "*", as before any nick is taken
                    nick, self.nick = self.nick, "*"
                    self.numeric("433", nick, "Nickname is already in use")
                    return
                self.password = "(none)"        # an open account takes any password
            if self.password is None and account is None:
                # (told a password was required, a trial's user looked for one that cannot be)
                text = login_refused({"code": "unknown_user"}, self.nick)
                self.numeric("464", text)
                self.close("login refused", text)
                return
            if self.password is None:
                self.numeric("464", "Password required: connect with your account's "
                             "password (PASS, or SASL PLAIN)")
                self.close("no password", "no password")
                return
            self._login(self.nick, self.password, by_sasl=False)

    def _login(self, name, password, by_sasl):
        user = self.accounts.get(fold(name), name)
        self.logging_in = True
        if not by_sasl:
            # (asked once: not kept in memory after); a PASS stays while SASL is tried, for
            # the registration to use if it fails (a trial's was said not given)
            self.password = None
        self.shared.logging.add(user)
        self.ask("login", {"user": user, "password": password, "stay": True},
                 self._logged_in, (user, by_sasl))

    def _logged_in(self, frame, context):
        self.logging_in = False
        self.shared.logging.discard(context[0])
        if self.gone:
            # closed meanwhile (a flood of early lines): nothing more is said, but a session
            # that began is ended with the connection (connection_lost)
            self.token = frame.get("token")
            return
        self._answer_login(frame, *context)
        early, self.early = self.early, []
        for step, args in early:
            step(*args)

    def _answer_login(self, frame, user, by_sasl):
        if frame["type"] != "welcome":
            text = login_refused(frame, user)
            if by_sasl:
                self.numeric("904", f"SASL authentication failed: {text}")
            else:
                self.numeric("464", text)
                self.close("login refused", text)
            return
        self.account = frame["user"]
        self.token = frame["token"]
        self.password = None            # (a PASS given beside SASL's: not needed now)
        self._claim_mask()
        if by_sasl:
            self.numeric("900", self.who_is(self.account), self.account,
                         f"You are now logged in as {self.account}")
            self.numeric("903", "SASL authentication successful")
            self._try_register()
        else:
            self._welcome()

    def _claim_mask(self):
        """Logged in: what IRC says of this user (USER's names, AWAY) is there for the
        others' WHO and WHOIS, and its mask for their lines, from its login on, before its
        registration ends: the JOIN the others see at a SASL login comes first (a trial's
        showed client.py's nick!nick@chat there, and ~user in every line after)."""
        self.shared.users[self.account] = self
        if self.ident:
            # (kept past its logout: its QUIT and its messages kept for later carry it; an
            # entry per account, so bounded)
            self.shared.idents[self.account] = self.ident
        else:
            self.shared.idents.pop(self.account, None)

    def _welcome(self):
        """The registration burst: 001-005, the MOTD, then the room."""
        self.nick = self.account
        self.welcomed = True
        self.numeric("001", f"Welcome to the chat room, {self.who_is(self.account)}")
        self.numeric("002", f"Your host is {self.server}, running version {VERSION}")
        self.numeric("003", "This server keeps every message until its recipient has read it")
        self.say("004", self.nick, self.server, VERSION, "i", "nt")
        self.numeric("005", "CASEMAPPING=ascii", "CHANTYPES=#", f"NETWORK={self.server}",
                     "NICKLEN=64", f"CHANNELLEN={CHANNELLEN}", f"USERLEN={USERLEN}", "PREFIX=",
                     "CHANMODES=,,,nt",
                     f"TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS}", "SILENCE=64",
                     "UTF8ONLY", "CLIENTTAGDENY=*", "are supported by this server")
        self._c_motd((), None)
        # every user here is +i (221), and is told so, as servers that give a mode at the
        # start do: irssi showed none, and asked for +i again at every connection, unanswered
        self.say("MODE", self.nick, "+i", source=self.who_is(self.nick))
        # the room is joined when the client asks (_c_join), or by the glue's timer if it
        # does not (join_now): joined here, its own JOIN would be a second one, after which
        # irssi made a new window of the room at each reconnect, the old lines gone
        held, self.held = self.held, []
        for delivered in held:
            self._before_join(delivered)

    def join_now(self):
        """The glue's JOIN_WAIT_S after the welcome: a client that asked for no room (irssi
        the first time, a script) is put in it all the same."""
        if self.welcomed and not self.joined and not self.gone:
            self._join_room(first=True)

    # -- messages -------------------------------------------------------------------------------

    def _c_privmsg(self, params, wall, notice=False):
        command = "NOTICE" if notice else "PRIVMSG"
        if not params:
            if not notice:
                self.numeric("411", f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            if not notice:
                self.numeric("412", "No text to send")
            return
        targets, text = params[0].split(","), params[1]
        if len(targets) > MAX_TARGETS:
            if not notice:
                self.numeric("407", params[0], f"Too many recipients: at most {MAX_TARGETS}")
            return
        if (not notice and text.startswith(CTCP) and ctcp_word(text) == "ACTION"
                and not from_action(text)[len("/me "):].strip()):
            self.numeric("412", "No text to send")     # (an empty /me was kept, and shown)
            return
        if text.startswith(CTCP) and (notice or ctcp_word(text) != "ACTION"):
            # CTCP (VERSION, PING, DCC...) is not passed on, /me (ACTION) aside: the core
            # keeps text only, so a reply (a NOTICE) would reach an IRC user as a PRIVMSG, that
            # is a new query, and two IRC clients would answer each other for ever, each line
            # stored; a client.py user would read control characters. In a NOTICE, any CTCP
            # is a reply, an ACTION too (a trial's reached WeeChat as "CTCP reply")
            if not notice:
                self.notice(f"CTCP {ctcp_word(text) or '(empty)'} is not passed on here: only "
                            f"text and /me reach other users.")
            return
        named = set()
        for target in targets:
            # ("a,,b": an empty name would vanish from a numeric's params; "seas,seas": one
            # message, as other servers do)
            if target and fold(target) not in named:
                named.add(fold(target))
                self._send_to(target, text, command, wall)
        if not named and not notice:       # ("," alone: no name at all; a trial's got nothing)
            self.numeric("411", f"No recipient given ({command})")

    def _c_version(self, params, wall):
        self.numeric("351", VERSION, self.server, "the chat room's IRC port")

    def _c_time(self, params, wall):
        self.numeric("391", self.server, time.strftime("%A %d %B %Y -- %H:%M:%S UTC",
                                                       time.gmtime(wall)))

    # the server's own queries and an operator's commands: answered with the numerics IRC
    # has for them, not 421 (a client's /admin or /oper said "Unknown command")
    def _c_admin(self, params, wall):
        if params and fold(params[0]) != fold(self.server):
            self.numeric("402", params[0], "No such server")
            return
        self.numeric("423", self.server, "No administrative info available")

    def _c_info(self, params, wall):
        self.numeric("371", f"{self.server}: a chat room that keeps every message until its "
                     f"recipient has read it")
        self.numeric("374", "End of INFO list")

    def _c_links(self, params, wall):
        self.numeric("364", self.server, self.server, "0 the chat room")
        self.numeric("365", params[-1] if params else "*", "End of LINKS list")

    def _c_stats(self, params, wall):
        self.numeric("219", params[0][:1] if params and params[0] else "*",
                     "End of STATS report")

    def _c_users(self, params, wall):
        self.numeric("446", "USERS has been disabled (WHO lists the room)")

    def _c_oper(self, params, wall):
        if self._need(params, 2, "OPER"):
            self.numeric("491", "No operators here: everyone in the room is equal")

    def _c_operator_only(self, params, wall):
        """KILL, DIE, REHASH, RESTART, SQUIT, CONNECT, WALLOPS: this server has no operators."""
        self.numeric("481", "Permission Denied- You're not an IRC operator")

    def _c_notice(self, params, wall):
        self._c_privmsg(params, wall, notice=True)

    def _c_tagmsg(self, params, wall):
        """Tags alone (typing notices): every client tag is denied here (CLIENTTAGDENY=*), so
        nothing is left to pass on, and nothing is said (a 421 to each keystroke's notice)."""

    def _send_to(self, target, text, command, wall):
        quiet = command == "NOTICE"     # RFC 1459: no automatic reply to a NOTICE
        said = from_action(text)        # what client.py users read: /me as they would type it
        folded_target = fold(target)    # (once: this is the IRC port's hot path)
        kept = {"text": said, "notice": True} if quiet else {"text": said}
        if folded_target == self.room_folded:
            self.ask("broadcast", kept, self._sent, (self.room, text, command, wall))
        elif folded_target == SERVICE:
            if not quiet:
                self._service(text)
        elif target.startswith("#") or target.startswith("&"):
            if not quiet:
                self.numeric("404", target, f"Cannot send to channel: this server has one "
                             f"room, {self.room}")
        elif folded_target == fold(self.nick):
            # the core takes no message to oneself; IRC shows it back, as servers do
            source = self.who_is(self.nick)
            room = text_bytes(source, command, self.nick)
            for piece in to_action(from_action(text), room):
                self.say(command, self.nick, piece, source=source, tags=self._time_tags(wall))
        else:
            to = self.accounts.get(folded_target)
            if to is None:
                if not quiet:
                    self.numeric("401", target, "No such nick")
                return
            self.ask("message", {"to": to, **kept}, self._sent, (to, text, command, wall))

    def _sent(self, frame, context):
        target, text, command, wall = context
        if frame["type"] == "ok" and "echo-message" in self.caps:
            source = self.who_is(self.nick)
            # (a long /me stays an action)
            for piece in to_action(from_action(text), text_bytes(source, command, target)):
                self.say(command, target, piece, source=source, tags=self._time_tags(wall))
        if command == "NOTICE":
            return      # RFC 1459 and 2812: nothing answers a NOTICE by itself
        if frame["type"] == "ok":
            if target != self.room and self._away_of(target):
                self.numeric("301", target, self._away_of(target))
            if frame.get("stored"):
                self.notice(f"{target} is not online: your message waits for their next "
                            f"login.")
            if "skipped" in frame:          # (a room message's answer: a private's has none)
                missed = (frame["skipped"], frame.get("full", 0))
                if any(missed) and missed != self.missed:
                    # said when it changes, not after each line (a trial's notice followed
                    # every line of a user someone blocked)
                    self.notice("Not everyone got that: " + _missed_words(*missed) + ".")
                self.missed = missed
            return
        if frame.get("code") == "unknown_user":
            self.numeric("401", target, "No such nick")
            return
        # unavailable promises nothing either way: a commit the server could not confirm may
        # hold it (a trial's, answered so as its file was replaced, came from the rescued
        # copy, and the resend asked for came twice; an IRC line has no mid to know it by)
        if frame.get("code") == "unavailable":
            self.notice(f"Perhaps not sent to {target} (the server cannot store messages just "
                        f"now, and may have this one: if it does not arrive, send it again in "
                        f"a moment): {text}")
            return
        self.notice(f"Not sent to {target} ({why(frame, target)}): {text}")

    # -- the service: the native client's words for what IRC has none for ----------------------

    def _service(self, text):
        words = text.split()
        verb = words[0].lower() if words else "help"
        user = self.accounts.get(fold(words[1]), words[1]) if len(words) > 1 else None
        if verb in ("block", "unblock") and user:
            self.ask(verb, {"user": user}, self._service_answer, (verb, user))
        elif verb == "online":
            self._ask_online(self._service_online)
        elif verb in ("y", "n", "yes", "no") and user:
            self.ask("consent", {"user": user, "agree": verb.startswith("y")},
                     self._service_answer, (verb[0], user))
        elif verb in ("getaddress", "private"):
            self.notice(NO_PRIVATE)
        elif verb == "logout":
            self._c_quit(["logout"], None)
        else:
            self.notice(HELP)

    def _service_answer(self, frame, context):
        verb, user = context
        if frame["type"] == "error":
            reason = why(frame, user)
            if not reason.startswith(user):     # a name keeps its case ("network has not...")
                reason = reason[:1].upper() + reason[1:]
            self.notice(reason + ".")
        elif verb in ("block", "unblock"):
            self.notice(f"User {user} has been {verb}ed.")
        elif verb == "y":
            self.notice(f"You agreed; {user} is told to /msg you instead, since IRC has no "
                        f"private talk.")
        elif frame.get("revoked") is True and frame.get("refused") is not True:
            # (a yes, then n: a trial's IRC user was told no question was waiting)
            self.notice(f"You took back your yes to {user}.")
        elif frame.get("revoked") is True:
            self.notice(f"You refused to give {user} your address, and took back your "
                        f"earlier yes.")
        else:
            self.notice(f"You refused to give {user} your address.")

    def _service_online(self, frame, _):
        users = self._online_list(frame)
        self.notice("Online: " + ", ".join(users) if users else "No other users are online.")

    def _c_silence(self, params, wall):
        if not params:
            self.numeric("272", "End of silence list (this server lists none here: "
                         "/msg chat help)")
            return
        for mask in params[0].split(","):
            sign, name = mask[:1], mask[1:]
            if sign not in ("+", "-"):
                sign, name = "+", mask
            if not name:
                continue        # ("SILENCE ," or a bare "+": no one named)
            user = self.accounts.get(fold(name.split("!")[0]), name)
            verb = "block" if sign == "+" else "unblock"
            self.ask(verb, {"user": user}, self._silenced, (sign, user))

    def _silenced(self, frame, context):
        sign, user = context
        if frame["type"] == "ok" or frame.get("code") in ("already_blocked", "not_blocked"):
            self.say("SILENCE", f"{sign}{user}", source=self.who_is(self.nick))
        else:
            self._service_answer(frame, ("block", user))

    # -- from the core --------------------------------------------------------------------------

    def from_core(self, frame, wall):
        """A reply (it has our `id`) or a delivery from the core."""
        self.wall = wall
        request_id = frame.get("id")
        if request_id is not None:
            then, context, place = self.pending.pop(request_id, (None, None, None))
            if then is not None:
                self._into = place if place in self.answers else None
                then(frame, context)
                self._into = None
                if place is not None:
                    place.done = True
                    while self.answers and self.answers[0].done:
                        self.lines += self.answers.pop(0).lines   # (a few at most)
                    if self.quitting and not self.answers:
                        self.close(*self.quitting)
            return
        if not self.joined:
            self._before_join(frame)
            return
        self._deliver(frame)

    def _before_join(self, frame):
        """A delivery before the room is joined: a message to the user goes once it is
        welcomed, the room's (a broadcast) waits for the join; others' comings and goings
        are in the join's NAMES."""
        kind = frame.get("type")
        if kind in ("presence", "listed"):
            return
        if kind == "logged_out" or (self.welcomed and kind != "broadcast"):
            self._deliver(frame)
        else:
            self.held.append(frame)

    def _deliver(self, frame):
        kind = frame.get("type")
        sender = frame.get("from", "")
        if kind in ("message", "broadcast"):
            at = frame.get("at")
            dated = at is not None and (frame.get("offline") or self.wall - at >= REPLAYED_S)
            key = (frame.get("seq"), "server-time" in self.caps, "message-tags" in self.caps,
                   dated)
            made = self.shared.broadcast
            if kind == "broadcast" and made is not None and made[0] == key:
                lines = made[1]     # every recipient of a broadcast gets the same lines
            else:
                lines = self._message_lines(frame, kind, sender, dated)
                if kind == "broadcast":
                    self.shared.broadcast = (key, lines)
            self._put_all(lines)
            if "seq" in frame:
                self.shown_seq = max(self.shown_seq, frame["seq"])
                self.unpinged += 1
        elif kind == "presence":
            self._presence(frame)
        elif kind == "listed":
            # a block between us began or ended: the user leaves or enters our nick list, as
            # NAMES would now list it (PART, not QUIT: it has not left the server)
            user = frame.get("user")
            if isinstance(user, str) and user != self.account:
                self._put(line(self.who_is(user), "JOIN" if frame.get("listed") else "PART",
                               self.room))
        elif kind == "logged_out" and frame.get("reason") == "timed_out":
            self.token = None
            self.close("timed out", "Ping timeout: the server heard nothing from this "
                                    "connection in time")
        elif kind == "logged_out":
            self.token = None
            self.close("logged in elsewhere", "This account logged in elsewhere")
        else:
            self._p2p_notice(kind, frame)

    def _put_all(self, lines):
        if self._into is None and not self.answers:
            self.lines += lines             # (_put's usual case, for all at once)
        else:
            for data in lines:
                self._put(data)

    def _presence(self, frame):
        """JOIN and QUIT lines for the others' logins and logouts. A presence frame reaches
        every IRC user, the same object (irc_glue): its lines are made once, for all of them,
        and each is given all but its own (a thousand logins to a thousand users were a
        million lines made one by one)."""
        made = self.shared.presence
        if made is None or made[0] is not frame:
            changes = frame.get("changes") or [[frame.get("user"), frame.get("online")]]
            for user, online in changes:
                if online and user not in self.shared.users:
                    # logged in by client.py: its QUIT, and what it leaves, are its own name's
                    # (a trial's QUIT carried the USER of an IRC login before)
                    self.shared.idents.pop(user, None)
            # (a CTCP mark, a native user's, is a space: no text reaches an IRC client as
            # CTCP, a logout's words neither, a hostile trial's QUIT :\x01ACTION x\x01)
            quit_params = [(frame.get("reason") or "Logged out").replace(CTCP, " ")]
            made = (frame, [user for user, _ in changes],
                    [line(self.who_is(user), "JOIN" if online else "QUIT",
                          *([self.room] if online else quit_params))
                     for user, online in changes])
            self.shared.presence = made
        _, users, lines = made
        if self.account in users:
            lines = [data for user, data in zip(users, lines) if user != self.account]
        self._put_all(lines)

    def _message_lines(self, frame, kind, sender, dated):
        """A message's lines for this client (tags by its caps; `dated`: its time said in its
        text) -> [bytes]."""
        target = self.nick if kind == "message" else self.room
        tags = self._time_tags(frame.get("at"))
        if "message-tags" in self.caps and "seq" in frame:
            # its number in the store is unique and never reused: the IRCv3 msgid
            tags = {**(tags or {}), "msgid": str(frame["seq"])}
        text = frame["text"]
        if dated:
            # a kept message, or one sent again REPLAYED_S after its time (its PING was not
            # answered before a reconnect), said in the text with server-time too: irssi asks
            # for it and, as it is set up, shows a line's arrival, so it read as new (a trial's)
            action = "/me " if text.startswith("/me ") else ""     # (an action stays one)
            text = action + sent_at(frame["at"]) + text[len(action):]
        command = "NOTICE" if frame.get("notice") else "PRIVMSG"
        source = self.who_is(sender)
        pieces = to_action(text, text_bytes(source, command, target))
        if len(pieces) > 1 and tags is not None and "msgid" in tags:
            # a msgid is unique (IRCv3): a client that drops repeats by it would drop the rest
            # of a long message, so each piece after the first has its own, <seq>.<n>
            return [line(source, command, target, piece, tags=tags if n == 1 else {
                **tags, "msgid": f"{tags['msgid']}.{n}"}) for n, piece in enumerate(pieces, 1)]
        return [line(source, command, target, piece, tags=tags) for piece in pieces]

    def _p2p_notice(self, kind, frame):
        text = notice_about(kind, frame.get("user") or frame.get("from"),
                            frame.get("unreached") is True)
        if text:
            self.notice(text)

    def ping_for_ack(self, now, heard_at=None):
        """After a pass's deliveries, or a PONG: a PING whose PONG acknowledges all that was
        shown. Several may be unanswered at once (acknowledgements flow while the client
        reads), up to ACK_PINGS; past it, a PONG makes room. One per ACK_PING_GAP_S, and
        none until the client has been quiet that long since it was last `heard_at` (its
        PONG takes a turn of its own flood limit from the lines its user types: irssi let one
        typed line go per PING), unless ACK_PING_BATCH messages wait, or one has been held
        back ACK_PING_BUSY_S -> None, or the time (`now`'s clock) to ask again."""
        covered = self.pinged[-1] if self.pinged else self.acked_seq
        if self.shown_seq <= covered or len(self.pinged) >= ACK_PINGS or self.gone:
            return None
        if self.held:
            return None     # (room messages wait for the join: a PONG would cover them)
        since = [at for at in (self.pinged_at, heard_at) if at is not None]
        # the first goes at once: a login's kept messages, held back while the client asked
        # its own questions after the join, came again when irssi reconnected 5 s later
        if (since and self.pinged_at is not None and now < max(since) + ACK_PING_GAP_S
                and self.unpinged < ACK_PING_BATCH):
            if self.held_since is None:
                self.held_since = now
            if now < self.held_since + ACK_PING_BUSY_S:
                return min(max(since) + ACK_PING_GAP_S, self.held_since + ACK_PING_BUSY_S)
        self.pinged.append(self.shown_seq)
        self.pinged_at, self.unpinged, self.held_since = now, 0, None
        self.say("PING", f"{ACK_TOKEN}{self.shown_seq}", source="")
        return None

    def keepalive(self):
        """A heartbeat for the core while the connection lives (IRC clients send none)."""
        if self.token is not None:
            self.ask("heartbeat", {})

    def connection_lost(self, why=None):
        """The connection is gone without QUIT: the user logs out, as IRC users expect, and
        the others see `why` as its quit message."""
        if self.token is not None:
            self.ask("logout", {"reason": why[:MAX_REASON_CHARS]} if why else {})
            self.token = None
        if self.shared.users.get(self.account) is self:
            del self.shared.users[self.account]


def _number(text):
    """A whole number in ASCII digits, or 0 ('³' is a digit to str.isdigit, not to int)."""
    return int(text) if text.isascii() and text.isdigit() else 0


def _missed_words(blocking, full):
    """Who a room message missed, in words: "1 blocks you", "3 have too much waiting"."""
    said = []
    if blocking:
        said.append(f"{blocking} {'blocks' if blocking == 1 else 'block'} you")
    if full:
        said.append(f"{full} {'has' if full == 1 else 'have'} too much waiting")
    return " and ".join(said)


# An IRC command -> (its handler, True if a client may send it before it is welcomed: the
# rest get 451 until then). A method is a command only when it is listed here.
_S, _R = IrcSession, RoomCommands
COMMANDS = {
    "CAP": (_S._c_cap, True), "AUTHENTICATE": (_S._c_authenticate, True),
    "PASS": (_S._c_pass, True), "NICK": (_S._c_nick, True), "USER": (_S._c_user, True),
    "PING": (_S._c_ping, True), "PONG": (_S._c_pong, True), "QUIT": (_S._c_quit, True),
    "PRIVMSG": (_S._c_privmsg, False), "NOTICE": (_S._c_notice, False),
    "TAGMSG": (_S._c_tagmsg, False), "VERSION": (_S._c_version, False),
    "TIME": (_S._c_time, False), "SILENCE": (_S._c_silence, False),
    "ADMIN": (_S._c_admin, False), "INFO": (_S._c_info, False), "LINKS": (_S._c_links, False),
    "STATS": (_S._c_stats, False), "USERS": (_S._c_users, False), "OPER": (_S._c_oper, False),
    **{command: (_S._c_operator_only, False)
       for command in ("KILL", "DIE", "REHASH", "RESTART", "SQUIT", "CONNECT", "WALLOPS")},
    "JOIN": (_R._c_join, False), "PART": (_R._c_part, False), "NAMES": (_R._c_names, False),
    "TOPIC": (_R._c_topic, False), "INVITE": (_R._c_invite, False),
    "KICK": (_R._c_kick, False), "LIST": (_R._c_list, False), "MODE": (_R._c_mode, False),
    "WHO": (_R._c_who, False), "WHOIS": (_R._c_whois, False),
    "WHOWAS": (_R._c_whowas, False), "ISON": (_R._c_ison, False),
    "USERHOST": (_R._c_userhost, False), "AWAY": (_R._c_away, False),
    "MOTD": (_R._c_motd, False), "LUSERS": (_R._c_lusers, False),
}
del _S, _R

__all__ = ["IrcSession", "Message", "Shared", "folded"]
