"""The chat client in a window: the view model that the client core's actions draw.

`ChatView` is a plain object with no tkinter in sight: it renders what the core shows
(client_events: Show, ShowSending, ShowFate, AskConsent, Prompt, ShowOnline, Status) as what a
window shows, in the window's own words (conversation entries, your messages with what became
of each, the online list and what its buttons can do, the login form, a consent question, a
status line), and turns what the user clicks into the same typed lines the terminal client
sends. `WindowScreen` is the client's
screen made of a ChatView: client.run builds the client around it as around the terminal. The
chat rules stay in the core; the Tk widgets and the loop that runs the reactor inside Tk live in
`gui_tk.py`.

Run: python3 client.py --gui HOST PORT   (or: make gui HOST=127.0.0.1 PORT=4119)
"""
import sys
import time
from dataclasses import dataclass, replace

from cells import visible
from client_events import (AskConsent, ConsentLapsed, Fate, Interrupted, LineIn, LoginAbandoned,
                           Prompt, Show, ShowFate, ShowOnline, ShowSending, Stage, Status)
from commands import ACTION, action_text, day_words, help_lines, lapsed_text, presence_words
from protocol import MAX_TEXT_CHARS
from words import plural, waiting_words

EVERYONE = None     # the compose target that broadcasts
TARGET_NAME_CHARS = 20  # of a user's name in the label before the input (target_text)

# What the core shows -> how the conversation pane shows it.
_ENTRY_KINDS = {"message": "direct", "broadcast": "broadcast", "offline": "offline",
                "private": "private"}
# The login form's question at each stage ({user}: the name whose password is asked for).
_PROMPTS = {Stage.USERNAME: "Log in with your user name and password.",
            Stage.PASSWORD: "Enter the password for {user}, or another name to log in as "
                            "someone else."}
# A private talk's notices in the window's words: its buttons, where the terminal names the
# commands to type ({user} is the other user; client_events.Show says when each comes).
_NOTICES = {
    # (and a command the server could not be asked, named with its /, as typed here)
    "not_done": "/{text} was not done: type it again once the server is back.",
    "ended_not_done": "/{text} was not done: the session had ended.",
    "perhaps_not_done": "/{text} may not have been done: type it again once the server is back.",
    "asked": "You asked {user} for a private talk; waiting for their answer.",
    "address": "{user} agreed to a private talk: select {user} and press Private message.",
    "no_address": "{user} has not agreed to a private talk with you: select {user} and press "
                  "Get address to ask.",
    "asking": "You asked {user} for a private talk: private messages go once they agree.",
    "address_void": "Your private talk with {user} has ended (they logged out or in again): "
                    "press Get address to ask again.",
    "address_taken_back": "{user} took back their agreement to a private talk: press Get "
                          "address to ask again.",
    "peer_refused": "{user} no longer takes your private messages: press Get address to ask "
                    "again.",
    "peer_left": "{user}'s session ended (a logout, or the server restarted), and your private "
                 "talk with it: press Get address to ask again once they are back.",
    "unreachable": "Could not reach {user}'s client directly (their address may have changed).",
    "no_answer": "{user}'s client took the connection but did not answer: it may be stopped or "
                 "busy.",
    "no_reply": "{user}'s client stopped answering (it may be stopped or busy): what it did not "
                "acknowledge may not have reached it.",
    "link_broke": "The link to {user}'s client broke: what it did not acknowledge may not have "
                  "reached it.",
    "try_message": "To leave it for {user} on the server instead, select {user}, press Message "
                   "and send it again.",
    "peer_no_port": "{user} agreed, but their client cannot take private messages: press "
                    "Message to write to them through the server.",
    "no_port": "This client cannot take private messages (it has no listening port): others "
               "can answer you with Message, not Private message.",
    # a command typed after / (the terminal's words name no /)
    "usage": "Usage: /{text}",
    "unknown_command": "Unknown command '/{text}'. Type /help for the list of commands.",
}
_NOTICES["asked_again"] = _NOTICES["asked"]     # (the window names the user in both)
_ACTION_ABOUT = "an action, to whoever the message goes to: /me waves"
HELP_FIRST = ("Type a message and press Enter, or pick a user and a button; a line that starts "
              "with / is a command:")


# How an own message's fate shows after its text; None: on its way, no answer yet.
_MARKS = {None: "…", Fate.WAITING: "… waiting", Fate.SENT: "✓", Fate.REFUSED: "✗ not sent",
          Fate.UNSURE: "? perhaps not sent"}
# a private message sent to the peer itself and never acknowledged was sent: perhaps not
# delivered (a re-attack's window said "perhaps not sent")
_PRIVATE_MARKS = {**_MARKS, Fate.UNSURE: "? perhaps not delivered"}


@dataclass(frozen=True)
class Entry:
    """One line of the conversation pane. `at` is wall-clock seconds; `to`, `private`, `ref`
    and `fate` are set on our own messages ("mine"), `to` None meaning everyone, `fate` None
    while no answer has come.

    kind: "direct", "broadcast", "private", "offline", "mine", "system", "help" (a line of
    /help's list) or "error".
    """
    at: float
    sender: str | None
    text: str
    kind: str
    to: str | None = None
    private: bool = False
    ref: str | None = None
    fate: Fate | None = None
    day: str = ""           # "Dec 5": a message sent on another day than it was shown


@dataclass(frozen=True)
class Target:
    """Where the input line's text goes: everyone (user None), one user, or one peer privately."""
    user: str | None = EVERYONE
    private: bool = False


def stamp(at):
    """Wall-clock seconds -> 'HH:MM:SS' in local time."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def other_day(at, now):
    """"Dec 5" if wall-clock `at` falls on another day than `now` (local time), else ""."""
    sent, today = time.localtime(at), time.localtime(now)
    if (sent.tm_year, sent.tm_yday) == (today.tm_year, today.tm_yday):
        return ""
    return day_words(at)


def _is_action(text):
    """True for "/me waves" (any case of /me): an action, not a command."""
    return text[:len(ACTION)].lower() == ACTION and bool(text[len(ACTION):].strip())


def _is_command(line):
    """True for "/online", "/message bob hi": a command as typed; not "//text" nor "/me"."""
    return line[:1] == "/" and line[1:2] != "/" and not _is_action(line)


def _as_sent(line):
    """A line of text as it goes: "//etc" is "/etc", "/ME waves" the action "/me waves"."""
    if line[:2] == "//":
        return line[1:]
    return ACTION + line[len(ACTION):] if _is_action(line) else line


def _fate_words(fate, private):
    """What became of one's own message, as the pane and the box at the end say it: a private
    one unsure may have been shown by its peer (not "perhaps not sent", which invites a
    second sending)."""
    if fate.fate is not Fate.UNSURE:
        return "Not sent"
    return "Perhaps not delivered" if private else "Perhaps not sent"


def entry_text(entry):
    """An entry -> the text after its time stamp, as the pane shows it: controls made visible,
    so another user's newline cannot fake a line of its own, nor a bidi mark reorder one."""
    return visible(_entry_text(entry))


def entry_mark(entry):
    """What follows an own message's text: on its way (…), sent (✓) or not (✗); else ""."""
    if entry.kind != "mine":
        return ""
    return (_PRIVATE_MARKS if entry.private else _MARKS)[entry.fate]


def _entry_text(entry):
    if entry.kind == "mine":
        privately = " (private)" if entry.private else ""
        action = action_text(entry.text)
        said = f"* {entry.sender} {action}" if action else entry.text
        return f"me → {entry.to or 'everyone'}{privately}: {said}"
    suffix = _SENDER_SUFFIXES.get(entry.kind)
    if entry.sender is None or suffix is None:
        return entry.text
    if entry.day:       # (its time stamp alone read as today's: a reviewer's, 2 days old)
        suffix = f"{suffix[:-1]}, sent {entry.day})" if suffix else f" (sent {entry.day})"
    action = action_text(entry.text)
    if action:      # "* alice waves (to everyone)", as IRC shows a /me
        return f"* {entry.sender} {action}{suffix}"
    return f"{entry.sender}{suffix}: {entry.text}"


# what follows a sender's name in the pane, by entry kind (a direct message: nothing)
_SENDER_SUFFIXES = {"direct": "", "broadcast": " (to everyone)", "private": " (private)",
                    "offline": " (while you were away)"}


# what the form says of a login submitted again while the first is on its way: the name's check
# waits (the password typed last goes), or the login itself is out
_LOGIN_WAITS = ("Your login waits for the server: the password you typed last goes.",
                "Your login is on its way: wait for the server's answer.")


class ChatView:
    """What the window shows, drawn by the core's actions; user intents come back as lines."""

    def __init__(self):
        self.stage = Stage.USERNAME
        self.user = None
        self.entries = []               # the conversation, oldest first
        # whose conversation it is: a login as someone else begins a new one (the last
        # user's messages are theirs), and `cleared` counts those beginnings for the window
        self.conversation_of = None
        self.cleared = 0
        self.users = []                 # the other users online, sorted
        self._seeding = False           # the view's own `online` waits for its answer
        self.prompt = _PROMPTS[Stage.USERNAME]  # the login form's question
        self.form_lines = []            # what the login form says: (tone, text), tone
                                        # "error" or "notice" (why a session ended)
        self._session_over = False      # the form shows because a session ended
        self.asking = []                # users whose private talk requests wait for an answer
        self.target = Target()
        # the target a session's draft was for, back at the same user's next login: reset to
        # everyone, a trial's half-typed message to one user went to all with one Enter
        self._draft_target = Target()
        self._draft_target_left = False     # ... seen logging out then (target_text)
        self._left = set()              # users seen logging out (not those a block hides)
        self.outage = None              # why the server cannot be reached, or None
        self._outage_said = None        # the reason the last Status gave
        self.waiting = 0                # typed lines and messages not yet taken by the server
        self.commands = 0               # ... of them, commands (a logout, say)
        self.busy = False               # a reply is awaited before the next line is taken
        self.private_to = ()            # users who agreed to a private talk with us
        self.agreed_to = ()             # users we agreed to a private talk with
        self._portless = set()          # users who agreed, but whose clients take no
                                        # private messages (no listening port)
        self._password = None           # typed in the form, sent once the name is accepted
        self._pending_name = None       # ... the name it is for
        self.name_refused = False       # the form's last name was refused: typed again there
        self._lines = []                # lines for the core that no click typed (see take_lines)
        self._mine = {}                 # ref -> index in entries: own messages not yet answered
        self._changed = []              # indices of entries changed since take_changed
        self._renderers = {Show: self._show, ShowSending: self._sending, ShowFate: self._fate,
                           AskConsent: self._ask_consent,
                           ConsentLapsed: self._consent_lapsed, Prompt: self._prompt,
                           ShowOnline: self._show_online, Status: self._status}

    # -- what the core shows ------------------------------------------------------------------

    def render(self, action, at):
        """One thing the core shows, at wall-clock time `at`."""
        self._renderers[type(action)](action, at)

    def _show(self, show, at):
        if show.kind in ("joined", "left"):
            self._presence(show.sender, show.kind == "joined")
            (self._left.discard if show.kind == "joined" else self._left.add)(show.sender)
            self._say(at, presence_words(show))
        elif show.kind in ("listed", "unlisted"):      # a block began or ended: no words
            self._presence(show.sender, show.kind == "listed")
        elif show.kind == "type_ahead":     # (the form is there to fill in meanwhile)
            pass
        elif show.kind in _ENTRY_KINDS:
            # a kept message is stamped when the server took it, not when it came (a trial's
            # fifty all read the login's time)
            sent_at = show.sent_at or at
            self.entries.append(Entry(sent_at, show.sender, show.text,
                                      _ENTRY_KINDS[show.kind], day=other_day(sent_at, at)))
        elif show.kind in ("not_done", "perhaps_not_done") and self._seeding \
                and show.text == "online":
            # the view's own `online`, cut by the network: asked again when the server is back
            # (a trial's pane told the user to type an /online it never typed)
            self._seeding = False
        elif show.kind in _NOTICES:
            if show.kind == "peer_no_port":
                self._portless.add(show.sender)
            self._say(at, _NOTICES[show.kind].format(user=show.sender, text=show.text))
        elif show.kind == "help" and show.text:
            self._say(at, help_lines("/", only=show.text)[0], "help")
        elif show.kind == "help":
            self._say(at, HELP_FIRST)
            for line in help_lines("/", more=[(ACTION + "<action>", _ACTION_ABOUT)])[1:]:
                self._say(at, line, "help")     # (in a fixed font: its columns line up)
        else:
            if show.kind == "outage":
                if self.outage == visible(show.text) and self.stage is Stage.LOGGED_IN:
                    # said again for each line typed in it: the terminal's answer to a line,
                    # where the window's are the line's mark and the status line (a trial's
                    # pane said it again with each message sent)
                    return
                self.outage = visible(show.text)     # it quotes the reason the network gave
            self._say(at, show.text, "error" if show.kind == "outage" else "system")

    def _sending(self, sending, at):
        self._mine[sending.ref] = len(self.entries)
        # one sent in an outage waits, and its mark says so: the outage is said once (a
        # re-trial's later ones looked on their way)
        waiting = Fate.WAITING if self.outage is not None and not sending.private else None
        self.entries.append(Entry(at, self.user, sending.text, "mine", sending.to,
                                  sending.private, sending.ref, fate=waiting))

    def _fate(self, fate, at):
        """An own message was answered: its mark changes; a refusal says why below it."""
        index = self._mine.get(fate.ref)
        if index is not None:
            self.entries[index] = replace(self.entries[index], fate=fate.fate)
            self._changed.append(index)
            if fate.fate is not Fate.WAITING:
                del self._mine[fate.ref]
        # waiting is told by the mark and the status line; the terminal lists each instead
        if fate.line and (fate.fate in (Fate.REFUSED, Fate.UNSURE) or index is None):
            # the entry shows the message: beneath it, the reason alone when there is one
            private = index is not None and self.entries[index].private
            self._say(at, f"{_fate_words(fate, private)}: {fate.why}."
                      if fate.why and index is not None else fate.line, "error")

    def exit_line(self, fate):
        """What the box at the window's end says of `fate` (a ShowFate at exit): one's own
        message as the pane shows it, and why it was not sent; the core's line for anything
        else (a command). (A trial's box said "broadcast lost one", the terminal's words, of
        what the pane showed as "me → everyone: lost one".)"""
        index = self._mine.get(fate.ref)
        if index is None or not fate.why:
            return fate.line
        entry = self.entries[index]
        return f"{_fate_words(fate, entry.private)} ({fate.why}): {entry_text(entry)}"

    def take_changed(self):
        """Indices of entries changed in place since the last call (an own message's fate)."""
        changed, self._changed = self._changed, []
        return changed

    def note(self, at, text):
        """The window's own word at wall-clock time `at`, as a notice."""
        self._say(at, text)

    def _say(self, at, text, kind="system"):
        """A notice: in the conversation while logged in, else on the login form; why a
        session ended goes in its conversation too, which a login as the same user shows
        again (a trial's went from the messages before to the next login without a word)."""
        if self.stage is Stage.LOGGED_IN:
            self.entries.append(Entry(at, None, text, kind))
            return
        # a session that ended is news, not a mistake; what a login attempt met is an error
        tone = "notice" if self._session_over and kind != "error" else "error"
        self.form_lines.append((tone, visible(text)))   # server text: shown harmlessly
        if tone == "notice" and self.conversation_of is not None:
            self.entries.append(Entry(at, None, text, kind))

    def _ask_consent(self, ask, at):
        if ask.user not in self.asking:
            self.asking.append(ask.user)
        self._say(at, f"{ask.user} asks to talk with you privately.")

    def _consent_lapsed(self, lapsed, at):
        """The question is gone: so is its dialog (the window draws `consent` again)."""
        if lapsed.user in self.asking:
            self.asking.remove(lapsed.user)
        self._say(at, lapsed_text(lapsed.user, lapsed.left))

    def _prompt(self, prompt, at):
        self.prompt = _PROMPTS[prompt.stage].format(user=self.user)

    def _show_online(self, online, at):
        self.users = sorted(set(online.users))
        self._left.difference_update(self.users)
        if self._seeding:
            self._seeding = False           # (the view's own `online`: the list is the answer)
        else:
            # the user's /online: answered in the conversation too (a trial's said nothing)
            self._say(at, "Online: " + ", ".join(self.users) if self.users
                      else "No other users are online.")

    def _status(self, status, at):
        was = self.stage
        self.stage, self.user, self.waiting = status.stage, status.user, status.waiting
        self.commands = status.commands
        self.busy = status.busy
        self.private_to = status.private_to
        self.agreed_to = status.agreed_to
        if status.outage is None:
            if self.outage is not None and was is Stage.LOGGED_IN is self.stage:
                # back after an outage: who came and went meanwhile was told to no one (a
                # trial's list stayed empty until /online)
                self._lines.append("online")
                self._seeding = True
            self.outage = None
        elif self.outage is not None and self._outage_said != status.outage:
            # the reason as it is now, not as first said (a re-attack's window kept "not
            # connected" for a whole outage while the server refused)
            self.outage = f"Cannot reach the server ({visible(status.outage)})."
        self._outage_said = status.outage
        if self.stage is Stage.LOGGED_IN and was is not Stage.LOGGED_IN:
            if self.user != self.conversation_of:
                if self.conversation_of is not None:
                    self.entries, self._mine, self._changed = [], {}, []
                    self.cleared += 1
                self.conversation_of = self.user
            else:
                # (as the last session left it: a target seen logging out is said to be, until
                # the list shows it back; a trial's label lost its "(logged out)" here)
                self.target = self._draft_target
                if self._draft_target_left:
                    self._left.add(self.target.user)
            self.form_lines = []
            self._session_over = False
            self._lines.append("online")    # seed the list; presence notices keep it live
            self._seeding = True
        elif self.stage is not Stage.LOGGED_IN:
            if was is Stage.LOGGED_IN:
                self._draft_target = self.target
                self._draft_target_left = self.target.user in self._left
            self.users, self.asking, self.target = [], [], Target()
            self._portless, self._left = set(), set()
            self._session_over = self._session_over or was is Stage.LOGGED_IN
        if not status.busy and self.form_lines:        # (answered: no longer on its way)
            self.form_lines = [line for line in self.form_lines if line[1] not in _LOGIN_WAITS]
        if self._password is not None and not status.busy:
            # the name was accepted (ask for the password) or refused (forget it)
            if self.stage is Stage.PASSWORD:
                self._lines.append(self._password)
            elif status.outage is None:
                # (not when the server could not be reached: the name was not refused, and
                # the password field is where the next password goes: a review's)
                self.name_refused = True
            self._password = None

    def _presence(self, user, online):
        if online and user not in self.users:
            self.users = sorted(self.users + [user])
        elif not online and user in self.users:
            self.users = [u for u in self.users if u != user]

    def take_lines(self):
        """Lines the view itself wants typed (a password, the first `online`); empties the list."""
        lines, self._lines = self._lines, []
        return lines

    # -- what the user did ------------------------------------------------------------------

    def login(self, name, password):
        """The login form was submitted -> the lines to type (none while a reply is awaited;
        messages waiting to be sent do not hold it up: they go once it succeeds)."""
        if self.busy:
            # a login already on its way: a password typed again for the name being checked
            # is the one that goes (a re-trial's was dropped unsaid, and the first, wrong, was
            # used: a strike toward the block); anything else waits for its answer, said so
            again = (self._password is not None and password
                     and name.strip() == self._pending_name)
            if again:
                self._password = password
            self.form_lines = [line for line in self.form_lines if line[1] not in _LOGIN_WAITS]
            self.form_lines.append(("notice", _LOGIN_WAITS[not again]))
            return []
        self.form_lines = []
        self._session_over = False
        self.name_refused = False
        if not name.strip():        # (a trial's Enter on an empty form did nothing, unsaid)
            self.form_lines.append(("error", "Type your user name first."))
            return []
        if not password:            # (as did one's with the password left empty)
            self.form_lines.append(("error", "Type your password too."))
            return []
        if self.stage is Stage.PASSWORD:
            return [password]
        self._password, self._pending_name = password, name.strip()
        return [name]

    def compose(self, text, at):
        """The input line's text, sent at wall-clock time `at` -> the lines to type, or None
        when it stays in the input to be mended, the pane saying why: too long, or private to
        a user whose consent has ended (a trial's were emptied from the input, and lost).
        "/cmd args" is a command as typed; "/me waves" is text, an action (IRC users see it as
        one), to whoever it goes to; "//text" is text that begins with "/". A paste of several
        lines is a line each, a message or a command (a trial's came as one, its line breaks
        shown as escapes; another's "/online" and a message after it were one bad command)."""
        # each line: (a command as typed, None), or (None, the text of a message)
        lines = [(line[1:], None) if _is_command(line) else (None, _as_sent(line))
                 for line in text.splitlines() if line.strip()]
        if any(command is not None and command.strip().lower() == "me"
               for command, _ in lines):
            self._say(at, f"Usage: {ACTION}<action>", "error")
            return None
        # a private message to a user who has not agreed stays in the input, typed as a
        # command too (a trial's "/private bob hi", sent while asking bob, was emptied, lost)
        addressed = [words[1] for words in (command.split(None, 2) for command, _ in lines
                                            if command is not None)
                     if len(words) == 3 and words[0].lower() == "private"]
        if self.target.private and any(message is not None for _, message in lines):
            addressed.append(self.target.user)
        unagreed = next((user for user in addressed if user not in self.private_to), None)
        if unagreed is not None:
            self._say(at, f"{unagreed} has not agreed to a private talk with you: select "
                          f"{unagreed} and press Get address to ask, or Message to send it "
                          f"through the server.", "error")
            return None
        if all(command is not None for command, _ in lines):
            return [command for command, _ in lines]
        too_long = next((len(message) for _, message in lines
                         if message is not None and len(message) > MAX_TEXT_CHARS), None)
        if too_long is not None:
            self._say(at, f"Your message is {too_long:,} characters long; the most is "
                          f"{MAX_TEXT_CHARS:,}. Shorten it, and send it again.", "error")
            return None
        # the core shows each (ShowSending) once it takes the line: then it has an id
        if self.target.user is EVERYONE:
            to = "broadcast"
        else:
            to = f"{'private' if self.target.private else 'message'} {self.target.user}"
        return [command if message is None else f"{to} {message}" for command, message in lines]

    def aim(self, user, private=False):
        """Send what is typed next to `user` (privately), or to everyone when user is None."""
        self.target = Target(user, private and user is not EVERYONE)

    def target_text(self):
        """Where what is typed goes, for the label before the input: a user who logged out
        stays the target (a message waits for their next login), and the label says so."""
        user = self.target.user
        if user is EVERYONE:
            return "To everyone:"
        if len(user) > TARGET_NAME_CHARS:   # (a 64-character name left the input no room)
            user = user[:TARGET_NAME_CHARS - 1] + "…"
        # (one a block hides from the list is not logged out: a trial's label said so)
        away = " (logged out)" if user in self._left else ""    # (a message waits for them)
        if self.target.private:
            return f"Privately to {user}{away}:"
        return f"To {user}{away}:"

    def act(self, verb, user):
        """A user-list button: 'block', 'unblock', 'getaddress' or 'N' (take back a yes) on
        `user` -> the lines."""
        return [f"{verb} {user}"]

    def agreed(self, user):
        """True if we agreed to a private talk with `user`: Take back yes may end it (a
        re-attack's window had no way but typing /N)."""
        return user in self.agreed_to

    def can_private(self, user):
        """True if `user` agreed to a private talk, so Private message may write to them."""
        return user in self.private_to

    def user_hint(self, user):
        """What the user-list buttons can do for the selected `user` (None: nobody selected)."""
        if user is None:
            return ("Select a user to message, block or ask for a private talk. Unblock asks "
                    "for a name: blocked users are not listed.")
        if user in self._portless and not self.can_private(user):
            return f"{user}'s client cannot take private messages: use Message."
        if not self.can_private(user):
            hint = f"Private messages go to {user} once they agree: Get address asks them."
        else:
            hint = f"{user} agreed to a private talk."
        if self.agreed(user):
            hint += f" You agreed to one with {user}: Take back yes ends it."
        return hint

    @property
    def consent(self):
        """The user the consent dialog asks about (the oldest request), or None."""
        return self.asking[0] if self.asking else None

    def answer(self, agree):
        """The consent dialog was answered -> the line that says so."""
        if not self.asking:
            return []
        return [f"{'Y' if agree else 'N'} {self.asking.pop(0)}"]

    def logout(self):
        """The Log out button -> the line to type."""
        return ["logout"]

    # -- what the status line says ----------------------------------------------------------

    @property
    def status(self):
        """One line: the server's reachability, lines waiting, or who is logged in."""
        # before a login, a login awaiting its answer (busy) is what waits (a trial's window
        # called it a message), or messages kept for the next login (another's, its login
        # a minute over, was told its login waited)
        if self.stage is Stage.LOGGED_IN:
            waiting = waiting_words(self.waiting, self.commands) + " waiting to be sent."
        elif self.busy:
            waiting = "Your login waits for the server."
        else:
            waiting = plural(self.waiting, "message") + " waiting for your next login."
        if self.outage is not None:
            return self.outage + (" " + waiting if self.waiting else "")
        if self.waiting:
            return ("Sending: " + waiting) if self.stage is Stage.LOGGED_IN else waiting
        if self.stage is Stage.LOGGED_IN:
            return f"Logged in as {self.user}."
        return "Not logged in."

    @property
    def form_message(self):
        """What went wrong on the login form, one line each (shown as an error)."""
        return "\n".join(text for tone, text in self.form_lines if tone == "error")

    @property
    def form_notice(self):
        """Why the login form shows again (logged out, the session ended), one line each."""
        return "\n".join(text for tone, text in self.form_lines if tone == "notice")

    def changes_user(self, name):
        """True if the form, asking for a password, was given another name: the login as
        the first is abandoned (client_events.LoginAbandoned) before this one starts."""
        return self.stage is Stage.PASSWORD and not self.busy and name.strip() != self.user


EXIT_LINES_SHOWN = 10     # lines of what was not sent that the box at the window's end names


def exit_box_text(reason, left_behind, draft=""):
    """What the box at the window's end says, "" for nothing (an ordinary close): why (a
    sentence, capitalised), then the lines of what was not sent, the first EXIT_LINES_SHOWN of
    them (a trial's box said only "1 message was not sent": which one was on a standard error
    nobody read), and the input's `draft`, typed and never sent (a trial's went without a
    word, where the terminal says so)."""
    draft = draft.strip()
    if draft:
        if not reason:
            return f"What you typed was not sent (Enter was not pressed):\n\n{visible(draft)}"
        left_behind = [*left_behind, f"Not sent (Enter was not pressed): {visible(draft)}"]
    if not reason:
        return ""       # (nothing the core counts as left undone: a typed-ahead line, say)
    parts = [reason[:1].upper() + reason[1:]]
    if left_behind:
        shown = left_behind[:EXIT_LINES_SHOWN]
        more = len(left_behind) - len(shown)
        parts.append("\n".join([*shown, *([f"... and {more} more."] if more else [])]))
    return "\n\n".join(parts)


class WindowScreen:
    """The client's screen in a window: the core's actions draw a ChatView, and what the user
    clicks goes to the core as typed lines. `run` (gui_tk.py's) runs the loop and redraws."""

    def __init__(self, view=None, log=None):
        self.view = view or ChatView()
        self.glue = None
        self._log = log or _log_to_stderr
        # diagnostics said (`log`), as client.py's: off for a terminal that is not --verbose
        # (a trial's window's terminal filled with "refused peer connection 29: no consent")
        self.diagnostics = True
        self.left_behind = []   # what the exit says was not sent, each a line: its box names them

    def attach(self, glue):
        """Serve `glue`'s client from now on."""
        self.glue = glue

    def read_typed(self):
        """(Ctrl-C's signal: a window's typing is read as it comes, nothing waits.)"""

    def finish(self):
        """(The client is done: the window says so itself, in the box at its end.)"""

    def once_drawn(self, then):
        """Call `then` once what was rendered is on the screen: here, the view is the
        screen (gui_tk's TkScreen draws it later)."""
        then()

    def render(self, action):
        if type(action) is ShowFate and action.at_exit:
            self._log(action.line)      # (the window is going: what was not sent is said here)
            self.left_behind.append(self.view.exit_line(action))
        self.view.render(action, self.glue.reactor.clock.wall())
        for line in self.view.take_lines():     # a password, the first `online`: the core
            self.glue.feed(LineIn(line))        # takes them once this event is done

    def log(self, text):
        if self.diagnostics:
            self._log(text)

    def pause_input(self):
        """(A window's input is typed, never a script's: nothing to pause.)"""

    def resume_input(self):
        """(See pause_input.)"""

    def log_in(self, name, password):
        """The login form was submitted: another name than the one asked about starts over."""
        if self.view.changes_user(name):
            self.glue.feed(LoginAbandoned())
        self.type_lines(self.view.login(name, password))

    def send(self, text):
        """The input line's `text` was sent -> True if the input may be emptied: False when it
        stays, to be mended (ChatView.compose says why in the pane)."""
        lines = self.view.compose(text, self.glue.reactor.clock.wall())
        if lines is None:
            return False
        self.type_lines(lines)
        return True

    def note(self, text):
        """A word from the window itself, in the pane (or on the form before a login)."""
        self.view.note(self.glue.reactor.clock.wall(), text)

    def type_lines(self, lines):
        """Lines from the window (a click, Enter) go to the core as if typed."""
        for line in lines:
            self.glue.feed(LineIn(line))

    def close(self):
        """The window was closed: the same as Ctrl-C (log out, then exit)."""
        self.glue.feed(Interrupted())


def _log_to_stderr(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
