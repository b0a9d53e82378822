"""What the user types and what the screen shows: the client's pure line helpers.

`parse_command` turns a typed line into a Command (or a Usage); `shown` turns a server
delivery into what the screen shows (a client_events.Show); `reply_lines` turns the server's
answer to a command into what the user reads. No state, no clock, no sockets.
"""
import re
import time
from dataclasses import dataclass

from client_events import Show
from protocol import MAX_NAME_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS, name_chars_ok
from words import plural

DEFAULT_ATTEMPTS = 3        # wrong passwords that block a name, when the server does not say
DEFAULT_LOCKOUT_S = 30      # how long they block it, when the server does not say
MAX_SENT_AT = 1e11          # a kept message's time past this (the year 5138) is no time


# -- commands ------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One parsed command line. Fields a command does not take stay None."""
    name: str
    user: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Usage:
    """A line that is not a valid command: `form` is the format of the command it names
    ("message <user> <text>"), or `unknown` the word typed where no command has that name.
    Each screen words it (a window's commands start with /)."""
    form: str | None = None
    unknown: str | None = None


@dataclass(frozen=True)
class CommandSpec:
    """The words after a command's name: "user" is one word, "text" is the rest of the line."""
    params: tuple
    about: str

    def usage(self, name):
        return " ".join([name] + [f"<{p}>" for p in self.params])


# A new command is one more row.
COMMANDS = {
    "message": CommandSpec(("user", "text"), "send <text> to <user>, stored if they are offline"),
    "broadcast": CommandSpec(("text",), "send <text> to everyone online"),
    "online": CommandSpec((), "list the other users online (also whoelse)"),
    "block": CommandSpec(("user",), "stop <user> from messaging you"),
    "unblock": CommandSpec(("user",), "let <user> message you again"),
    "getaddress": CommandSpec(("user",), "ask <user> for their address, to talk privately"),
    "Y": CommandSpec(("user",), "agree to give <user> your address (also y)"),
    "N": CommandSpec(("user",), "refuse <user> your address, or take back a yes (also n)"),
    "private": CommandSpec(("user", "text"), "send <text> straight to <user>, not via the server"),
    "logout": CommandSpec((), "log out; you can then log in again"),
    "quit": CommandSpec((), "log out and leave the program (also exit)"),
    "help": CommandSpec((), "show this list (help <command>: that command's line)"),
}


# Other spellings of a command's name (names are read in any case: MESSAGE is message).
# (whoelse: the name many versions of the course's assignment give `online`)
ALIASES = {"y": "Y", "n": "N", "exit": "quit", "whoelse": "online",
           "msg": "message"}      # (IRC's word for it, a new user's habit)


def parse_command(line):
    """A typed line -> Command, Usage, or None for an empty line."""
    rest = line.lstrip()
    if not rest:
        return None
    typed, rest = _next_word(rest)
    name = _command_named(typed)
    spec = COMMANDS.get(name)
    if name == "help" and rest.strip():
        return _help_with(rest.strip())
    if spec is None:
        return Usage(unknown=_said_back(typed))
    # the usage in the words typed: "whoelse extra" was told "Usage: online" (a trial's)
    said = name if name in ("Y", "N") else typed.lower().removeprefix("/")
    values = {}
    for param in spec.params:
        rest = rest.lstrip()
        if not rest:
            return Usage(spec.usage(said))
        if param == "text":
            # the text is kept exactly as typed, inner and trailing spaces included
            values[param], rest = rest, ""
        else:
            values[param], rest = _next_word(rest)
    if rest.strip():
        return Usage(spec.usage(said))
    return Command(name, **values)


MESSAGE_COMMANDS = ("message", "broadcast", "private")


def is_message_line(line):
    """True if a typed line names a command that sends a message (its first word only: a
    status counts what waits with each event, a thousand lines of a script at most)."""
    words = line.split(None, 1)
    return bool(words) and _command_named(words[0]) in MESSAGE_COMMANDS


def _command_named(word):
    """A typed word -> the command it names (an alias's), or the word lowered if none. A
    leading / is a window's or an IRC client's habit: "/quit" names quit (a new user's was an
    unknown command)."""
    name = ALIASES.get(word.lower(), word.lower())
    if name not in COMMANDS and name.startswith("/"):
        bare = ALIASES.get(name[1:], name[1:])
        if bare in COMMANDS:
            return bare
    return name


def _help_with(rest):
    """`help <command>` -> Command("help", text=the command's name), or Usage. (A trial's new
    user typed `help getaddress`, and was told the usage of help.)"""
    words = rest.split()
    if len(words) != 1:
        return Usage(COMMANDS["help"].usage("help") + " [<command>]")
    word = words[0].removeprefix("/")       # (as a window's or an IRC user's commands read)
    if not word:
        return Command("help")      # (`help /`: every command, not "Unknown command ''")
    name = ALIASES.get(word.lower(), word.lower())
    if name not in COMMANDS:
        return Usage(unknown=_said_back(word))
    return Command("help", text=name)


def _said_back(word):
    """A word typed where a command's name goes, as it is said back: cut short (a
    200,000-character word was said back whole)."""
    return word if len(word) <= 40 else word[:40] + "…"


def refusal(command, me=None):
    """What the user reads when `command` cannot be sent as typed (checked before it is: the
    server's own words for these are a developer's), or None when it can. `me`: the user
    logged in (or last), to whom no message goes, nor a block: sent in an outage, the
    server's refusal came after the login, without a word of which line it answered, or was
    to be typed again, only to be refused (trials')."""
    if me is not None and command.user == me and (command.name, "self") in _ERROR_LINES:
        return _ERROR_LINES[command.name, "self"]   # (block, unblock, getaddress too)
    if command.user is not None and len(command.user) > MAX_NAME_CHARS:
        return f"No user name is longer than {MAX_NAME_CHARS} characters."
    if command.user is not None and not name_chars_ok(command.user):
        return f"'{command.user}' cannot be a user name: it holds a character no name has."
    if command.text is not None and len(command.text) > MAX_TEXT_CHARS:
        # a line is cut at 64 Ki characters (line_editor.MAX_LINE_CHARS) before it gets here:
        # one near that was longer, by how much is not known (a trial's 70,000 said 65,523)
        length = (f"{len(command.text):,} characters long" if len(command.text) < 60_000
                  else "more than 60,000 characters long")
        return f"Your message is {length}; the most is {MAX_TEXT_CHARS:,}. It was not sent."
    return None


def _next_word(text):
    """'bob  hi there' -> ('bob', '  hi there'): the word and everything after it."""
    word = text.split(None, 1)[0]     # callers strip leading whitespace first
    return word, text[len(word):]


def lapsed_text(user, left=False):
    """What a screen says when `user`'s question for our address lapsed unanswered (`left`:
    their session ended first, a logout or a login elsewhere)."""
    if left:
        # (a trial's user was told the request lapsed when the asker had logged out)
        return (f"{user} asked for your address, but logged out, or logged in again, before "
                f"you answered.")
    return f"{user} asked for your address, but the request lapsed before you answered."


def help_lines(prefix="", more=(), only=None):
    """The lines `help` prints: every command with its format, each typed after `prefix`
    (a window's commands start with /), then `more` (form, about) pairs, aligned with them;
    or, given `only` (a command's name), that command's line alone."""
    if only:
        return [f"{prefix}{COMMANDS[only].usage(only)}  {COMMANDS[only].about}"]
    listed = [(prefix + spec.usage(name), spec.about) for name, spec in COMMANDS.items()]
    listed += more
    width = max(len(form) for form, _ in listed)
    return ["Commands:"] + [f"  {form.ljust(width)}  {about}" for form, about in listed]


ACTION = "/me "     # a message's text that starts so is an action: "/me waves" (IRC's /me)


def action_text(text):
    """A message's text -> what its sender does ("waves" for "/me waves"), or None when it is
    no action (nor is "/me " with nothing done: a trial's read "* alice" alone)."""
    if not text.startswith(ACTION) or not text[len(ACTION):].strip():
        return None
    return text[len(ACTION):]


# -- pure helpers: deliveries -----------------------------------------------------------------

# IRC's formatting codes (an IRC user's colours, bold, italics...): mIRC's colour with its
# numbers, a hex colour with its, and the one-byte toggles and reset
_IRC_FORMATTING = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9A-Fa-f]{6}"
                             r"(?:,[0-9A-Fa-f]{6})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]")


def presence_words(show):
    """A "joined" or "left" Show -> its line, the same on every screen: "bob has logged in.",
    "bob has logged out (gone home)." with the words it left with."""
    if show.kind == "joined":
        return f"{show.sender} has logged in."
    return f"{show.sender} has logged out{f' ({show.text})' if show.text else ''}."


def without_irc_formatting(text):
    """`text` without IRC's formatting codes: a terminal or the window would show each as an
    escape (a trial's "\x0304red\x03"), and the words are what count."""
    return _IRC_FORMATTING.sub("", text)


def shown(frame):
    """A delivered server frame (message, broadcast, presence, listed, logged_out) -> the Show
    for the screen, or None when it is malformed."""
    kind = frame.get("type")
    if kind in ("message", "broadcast"):
        sender, text = frame.get("from"), frame.get("text")
        if isinstance(sender, str) and isinstance(text, str):
            if frame.get("offline") is not True:
                return Show(kind, without_irc_formatting(text), sender)
            sent_at = frame.get("at")       # (the server's clock: said only of a kept one)
            if (isinstance(sent_at, bool) or not isinstance(sent_at, (int, float))
                    or not 0 < sent_at < MAX_SENT_AT):      # (NaN too)
                sent_at = None
            return Show("offline", without_irc_formatting(text), sender, sent_at)
    elif kind == "presence":
        user, online = frame.get("user"), frame.get("online")
        if isinstance(user, str) and isinstance(online, bool):
            # the words a user left with (an IRC user's QUIT message, or "timed out"), shown
            # as IRC clients show them; a trial's IRC user said goodbye to nobody native
            reason = frame.get("reason")
            said = "" if online or not isinstance(reason, str) else reason[:MAX_REASON_CHARS]
            return Show("joined" if online else "left", without_irc_formatting(said).strip(),
                        user)
    elif kind == "listed":
        user, listed = frame.get("user"), frame.get("listed")
        if isinstance(user, str) and isinstance(listed, bool):
            return Show("listed" if listed else "unlisted", "", user)
    elif kind == "logged_out" and frame.get("reason") == "timed_out":
        seconds = frame.get("seconds")
        took = f" for {seconds} s" if type(seconds) is int and seconds > 0 else ""
        return Show("system", f"Your session timed out: the server heard nothing from this "
                              f"client{took}, and ended it. Please log in again.")
    elif kind == "logged_out":
        return Show("system", "You have been logged out because your account logged in "
                              "elsewhere.")
    return None


def presence_notices(frame, me):
    """A presence delivery -> the single notices it stands for, in order; None if malformed.

    A batch ({"changes": [[user, online], ...]}, PROTOCOL.md) may name `me` (it began before
    my login): those changes are skipped. A malformed change becomes a notice shown() refuses.
    """
    changes = frame.get("changes")
    if changes is None:
        return [frame]
    if not isinstance(changes, list):
        return None
    notices = []
    for change in changes:
        user, online = change if isinstance(change, list) and len(change) == 2 else (None, None)
        if user != me:
            notices.append({"type": "presence", "user": user, "online": online})
    return notices


def seconds_text(seconds):
    """30.0 -> '30', 2.5 -> '2.5': a duration as a person writes it."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        seconds = DEFAULT_LOCKOUT_S
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


_NUMBER_WORDS = "zero one two three four five six seven eight nine ten".split()


def times_text(count):
    """3 -> 'three': small counts in words, as the original client said them."""
    return _NUMBER_WORDS[count] if 0 <= count < len(_NUMBER_WORDS) else str(count)



# -- replies --------------------------------------------------------------------------------

def described(command):
    """A waiting message as the user typed it: "message seas hi"."""
    return " ".join(word for word in (command.name, command.user, command.text) if word)


def day_words(at):
    """Wall-clock seconds -> "Dec 5", the day in local time, as both screens say it."""
    day = time.localtime(at)
    return f"{time.strftime('%b', day)} {day.tm_mday}"


def error_code(frame):
    """The error code of a reply, or None when it is not an error."""
    return frame.get("code") if frame.get("type") == "error" else None


def error_text(frame):
    """What to show for an error reply we have no special words for."""
    message = frame.get("message")
    if isinstance(message, str) and message:
        return message
    code = frame.get("code", frame.get("type"))
    return f"The server refused the request ({code if isinstance(code, str) else 'no code'})."


def listed_users(frame):
    """An `online` reply's list of users, or [] when it holds no list (a broken server's)."""
    users = frame.get("users")
    return users if isinstance(users, list) else []


_DROPPED_UNREAD = ("The server could not take your message just now; it was not sent. Send it "
                   "again.")

# What the user reads for each command's errors; {user} is the name the command gave.
_ERROR_LINES = {
    ("message", "blocked"): "Your message could not be delivered as the recipient has blocked you.",
    ("message", "unknown_user"): "User {user} does not exist.",
    ("message", "self"): "You cannot send a message to yourself.",
    ("message", "inbox_full"): "{user} has too many messages waiting; yours was not sent.",
    ("message", "store_full"): "The server is full; your message was not sent. Try again later.",
    # (with "share": the sender's own share of what may wait for users not reading is full)
    ("message", "inbox_full", "share"): "You have left {user} as many messages as one sender "
                                        "may until they read them; yours was not sent.",
    ("message", "store_full", "share"): "You have left users who are away as many messages as "
                                        "one sender may until they read them; yours was not "
                                        "sent.",
    ("broadcast", "store_full"): "The server is full; your message was not sent. Try again "
                                 "later.",
    # (a frame the server dropped unread: its words for it are a developer's)
    ("message", "too_long"): _DROPPED_UNREAD,
    ("broadcast", "too_long"): _DROPPED_UNREAD,
    ("block", "unknown_user"): "User {user} does not exist.",
    ("block", "self"): "You cannot block yourself.",
    ("block", "already_blocked"): "User {user} is already blocked.",
    ("unblock", "unknown_user"): "User {user} does not exist.",
    ("unblock", "self"): "You cannot unblock yourself.",
    ("unblock", "not_blocked"): "User {user} is not blocked.",
    ("getaddress", "offline"): "{user} is not online. Can't get the address.",
    ("getaddress", "blocked"): "{user} has blocked you. You can't get the address.",
    ("getaddress", "unknown_user"): "User {user} does not exist.",
    ("getaddress", "self"): "You cannot get your own address.",
    ("getaddress", "already_asked"): "You already asked {user}; wait for the answer.",
    ("Y", "no_request"): "There is no request from {user} waiting for your answer.",
    ("N", "no_request"): "There is no request from {user} waiting for your answer, nor a yes "
                         "to take back.",
    ("Y", "unknown_user"): "User {user} does not exist.",
    ("N", "unknown_user"): "User {user} does not exist.",
}


def case_hint(frame):
    """An unknown_user's hint when the name is an account's in another case -> " (Names ...)",
    or the account's with a mark after it -> " (Did you mean ...?)", else ""."""
    like, near = frame.get("like"), frame.get("near")
    if frame.get("code") != "unknown_user":
        return ""
    if _shown_safely(like):
        return f" (Names are case-sensitive: did you mean {like}?)"
    if _shown_safely(near):
        return f" (Did you mean {near}?)"       # ("seas:" typed for seas)
    return ""


def _shown_safely(name):
    return isinstance(name, str) and len(name) <= MAX_NAME_CHARS and name_chars_ok(name)


def reply_lines(command, frame):
    """A command's reply -> the lines to show ([] for none), or None when it makes no sense."""
    kind = frame.get("type")
    if kind == "error":
        code = frame.get("code")        # (a list from a broken server raised: a trial's)
        key = (command.name, code if isinstance(code, str) else None)
        line = _ERROR_LINES.get(key + ("share",) if frame.get("share") is True else key)
        return [line.format(user=command.user) + case_hint(frame) if line
                else error_text(frame)]
    if command.name == "online" and kind == "online":
        users = [u for u in listed_users(frame) if isinstance(u, str)]
        return users or ["No other users are online."]
    if kind != "ok":
        return None
    if command.name == "message":
        return [f"{command.user} is offline; your message will be delivered when they log in."
                ] if frame.get("stored") is True else []
    if command.name == "broadcast":
        # who did not get it, and why: the users who block the sender are counted online or
        # not (the count tells nothing of their presence), so "some recipients" was untrue
        # of one offline (a reviewer's)
        blockers, full = (frame.get(field) for field in ("skipped", "full"))
        lines = []
        if type(blockers) is int and blockers > 0:
            lines.append(f"{plural(blockers, 'user')} who block{'s' if blockers == 1 else ''} "
                         f"you did not get it.")
        if type(full) is int and full > 0:
            lines.append(f"Your message could not be delivered to {plural(full, 'user')} "
                         f"online, who {'has' if full == 1 else 'have'} too many messages "
                         f"waiting.")
        return lines
    if command.name == "block":
        return [f"User {command.user} has been blocked."]
    if command.name == "unblock":
        return [f"User {command.user} has been unblocked."]
    if command.name == "Y" and frame.get("no_port") is True:
        return [f"You agreed, but this client has no listening port, so {command.user} cannot "
                f"reach it directly; {command.user} can send you messages through the server."]
    if command.name == "Y":
        return [f"You agreed to a private talk with {command.user}."]
    if command.name == "N" and frame.get("revoked") is True:
        refused = (f"You refused to give {command.user} your address, and "
                   if frame.get("refused") is True else "")
        return [f"{refused}{command.user} may no longer send you private messages (your yes "
                f"is taken back)."]
    if command.name == "N":
        return [f"You refused to give {command.user} your address."]
    return None
