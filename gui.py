"""The chat client in a window: a view model the client core feeds, and the glue that runs it.

`ChatView` is a plain object with no tkinter in sight: it turns the core's actions into what a
window shows (conversation entries, the online list, the login form, a consent question, a
status line) and turns what the user clicks into the same typed lines the terminal client
sends. `GuiGlue` is `ClientGlue` with the view instead of the terminal, so the chat rules stay in
`ChatClient` alone. The Tk widgets and the loop that runs the reactor inside Tk live in
`gui_tk.py`, which only `main` imports.

Run: python3 client.py --gui HOST PORT   (or: make gui HOST=127.0.0.1 PORT=4119)
"""
import re
import sys
import time
from dataclasses import dataclass

from client import (ASK_PASSWORD, ASK_USER, LOGGED_IN, PASSWORD, USERNAME, ChatClient,
                    ClientGlue, Interrupted, LineIn, Settings, ShowOnline, Started)
from terminal import visible

EVERYONE = None     # the compose target that broadcasts

# The question the core prints when a user asks for our address (peer.py says it). The core
# gives it no kind of its own, so the text is the only sign; the name is one word.
_CONSENT_QUESTION = re.compile(r"Do you agree to have a private talk with (\S+)\? Y \1/N \1")

# The core's Print kinds -> how the conversation pane shows them.
_ENTRY_KINDS = {"message": "direct", "broadcast": "broadcast", "offline": "offline",
                "private": "private"}


@dataclass(frozen=True)
class Entry:
    """One line of the conversation pane. `at` is wall-clock seconds; `to` and `private` are
    set on our own messages ("sent"), `to` None meaning everyone.

    kind: "direct", "broadcast", "private", "offline", "sent" or "system".
    """
    at: float
    sender: str | None
    text: str
    kind: str
    to: str | None = None
    private: bool = False


@dataclass(frozen=True)
class Target:
    """Where the input line's text goes: everyone (user None), one user, or one peer privately."""
    user: str | None = EVERYONE
    private: bool = False


def stamp(at):
    """Wall-clock seconds -> 'HH:MM:SS' in local time."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def entry_text(entry):
    """An entry -> the text after its time stamp, as the pane shows it: controls made visible,
    so another user's newline cannot fake a line of its own, nor a bidi mark reorder one."""
    return visible(_entry_text(entry))


def _entry_text(entry):
    if entry.kind == "sent":
        privately = " (private)" if entry.private else ""
        return f"me → {entry.to or 'everyone'}{privately}: {entry.text}"
    if entry.kind == "private":
        return f"{entry.sender} (private): {entry.text}"
    if entry.kind == "offline":
        return f"{entry.sender} (while you were away): {entry.text}"
    if entry.sender is not None and entry.kind in ("direct", "broadcast"):
        suffix = " (to everyone)" if entry.kind == "broadcast" else ""
        return f"{entry.sender}{suffix}: {entry.text}"
    return entry.text


def _body(text, sender):
    """'bob: hi' or 'bob (private): hi' -> 'hi': the text without the sender put in front."""
    head, colon, rest = text.partition(": ")
    if colon and sender is not None and (head == sender or head.startswith(sender + " ")):
        return rest
    return text


def _plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


class ChatView:
    """What the window shows, fed by the core's actions; user intents come back as lines."""

    def __init__(self):
        self.stage = USERNAME
        self.user = None
        self.entries = []               # the conversation, oldest first
        self.users = []                 # the other users online, sorted
        self.prompt = ASK_USER          # the login form's question
        self.form_lines = []            # what the login form tells the user (errors, notices)
        self.asking = []                # users whose private talk requests wait for an answer
        self.target = Target()
        self.outage = None              # why the server cannot be reached, or None
        self.waiting = 0                # typed lines and messages not yet taken by the server
        self._password = None           # typed in the form, sent once the name is accepted
        self._lines = []                # lines for the core that no click typed (see take_lines)

    # -- what the core did ------------------------------------------------------------------

    def apply(self, action, at, stage):
        """One Print or ShowOnline action from the core, at wall-clock time `at`, with the
        core's `stage` as it is now (a line said on logging out belongs to the login form)."""
        if isinstance(action, ShowOnline):
            self.users = sorted(set(action.users))
            return
        kind = action.kind
        if kind in ("joined", "left"):
            self._presence(action.sender, kind == "joined")
        if kind == "online":
            return                      # the list shows these; the pane need not
        if kind == "outage":
            self.outage = visible(action.text)     # it quotes the reason the network gave
        question = _CONSENT_QUESTION.fullmatch(action.text) if kind == "system" else None
        if question and question[1] not in self.asking:
            self.asking.append(question[1])
        if action.text in (ASK_USER, ASK_PASSWORD):
            self.prompt = action.text
        elif stage == LOGGED_IN or kind in _ENTRY_KINDS:
            self._add(at, action, kind)
        else:
            self.form_lines.append(visible(action.text))   # server text: shown harmlessly

    def _add(self, at, action, kind):
        entry_kind = _ENTRY_KINDS.get(kind, "system")
        if entry_kind == "system":
            self.entries.append(Entry(at, None, action.text, "system"))
        else:
            self.entries.append(Entry(at, action.sender, _body(action.text, action.sender),
                                      entry_kind))

    def _presence(self, user, online):
        if online and user not in self.users:
            self.users = sorted(self.users + [user])
        elif not online and user in self.users:
            self.users = [u for u in self.users if u != user]

    def sync(self, core):
        """Read the core's state after it handled an event: stage, outage, lines in flight."""
        was = self.stage
        self.stage, self.user = core.stage, core.user
        if self.stage == LOGGED_IN and was != LOGGED_IN:
            self.form_lines = []
            self._lines.append("online")    # seed the list; presence notices keep it live
        elif self.stage != LOGGED_IN:
            self.users, self.asking, self.target = [], [], Target()
        if not core.outage:
            self.outage = None
        # typed lines not yet handled, messages the server has not acknowledged, and a
        # command in flight (the outbox head in flight is counted once, in the outbox)
        in_flight = core.waiting_for is not None and core.waiting_for != core.outbox_sending
        self.waiting = len(core.lines) + len(core.outbox) + in_flight
        if self._password is not None and core.waiting_for is None:
            # the name was accepted (ask for the password) or refused (forget it)
            if self.stage == PASSWORD:
                self._lines.append(self._password)
            self._password = None

    def take_lines(self):
        """Lines the view itself wants typed (a password, the first `online`); empties the list."""
        lines, self._lines = self._lines, []
        return lines

    # -- what the user did ------------------------------------------------------------------

    def login(self, name, password):
        """The login form was submitted -> the lines to type (none while a reply is awaited)."""
        if self.waiting:
            return []
        self.form_lines = []
        if self.stage == PASSWORD:
            return [password]
        self._password = password
        return [name]

    def compose(self, text, at):
        """The input line's text -> the lines to type; "/cmd args" is a command as typed."""
        if not text.strip():
            return []
        if text.startswith("/"):
            return [text[1:]]
        self.entries.append(Entry(at, self.user, text, "sent", self.target.user,
                                  self.target.private))
        if self.target.user is EVERYONE:
            return [f"broadcast {text}"]
        verb = "private" if self.target.private else "message"
        return [f"{verb} {self.target.user} {text}"]

    def aim(self, user, private=False):
        """Send what is typed next to `user` (privately), or to everyone when user is None."""
        self.target = Target(user, private and user is not EVERYONE)

    def act(self, verb, user):
        """A user-list button: 'block', 'unblock' or 'getaddress' on `user` -> the lines."""
        return [f"{verb} {user}"]

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
        waiting = _plural(self.waiting, "message") + " waiting to be sent."
        if self.outage is not None:
            return self.outage + (" " + waiting if self.waiting else "")
        if self.waiting:
            return "Sending: " + waiting
        if self.stage == LOGGED_IN:
            return f"Logged in as {self.user}."
        return "Not logged in."

    @property
    def form_message(self):
        """What the login form tells the user, one line per notice."""
        return "\n".join(self.form_lines)


# -- glue: the core, the view and the reactor -------------------------------------------------

class GuiGlue(ClientGlue):
    """ClientGlue with a ChatView where the terminal was; `on_change` redraws the window."""

    def __init__(self, reactor, view, server, log=None, tls=None, server_name=None):
        super().__init__(reactor, None, server, tls=tls, server_name=server_name)
        self.view = view
        self.log = log or _log_to_stderr
        self.on_change = _nothing       # the window redraws from the view
        self.on_exit = _nothing         # the core said Exit

    def feed(self, event):
        """Run the core on one event, then let the view read it and type what it wants."""
        nested = self._feeding
        super().feed(event)
        if nested:
            return                      # the outermost feed syncs once the queue is done
        self.view.sync(self.core)
        for line in self.view.take_lines():
            self.feed(LineIn(line))
        self.on_change()

    def type_lines(self, lines):
        """Lines from the window (a click, Enter) go to the core as if typed."""
        for line in lines:
            self.feed(LineIn(line))

    def close(self):
        """The window was closed: the same as Ctrl-C (log out, then exit)."""
        self.feed(Interrupted())

    def _do_Print(self, action):
        self.view.apply(action, self.reactor.clock.wall(), self.core.stage)

    _do_ShowOnline = _do_Print

    def _do_AskSecret(self, action):
        """The password field never echoes, so there is nothing to switch."""

    def _do_Log(self, action):
        self.log(action.text)

    def _do_Exit(self, action):
        super()._do_Exit(action)
        self.on_exit()


def _nothing():
    """The default hook: no window is listening."""


def _log_to_stderr(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def start(args, reactor, view=None):
    """Listen for deliveries, make the core and feed it Started -> (glue, listener)."""
    glue = GuiGlue(reactor, view or ChatView(), (args.address, args.port),
                   tls=args.tls_context, server_name=args.host)
    listener = reactor.listen("0.0.0.0", 0, glue.deliveries)   # deliveries may come from afar
    glue.core = ChatClient(Settings(listener.port, heartbeat_s=args.heartbeat))
    glue.feed(Started())
    return glue, listener


def main(args):
    """client.py --gui: open the window and run until it is closed; returns the exit code."""
    try:
        import gui_tk   # tkinter is loaded only when a window is wanted
    except ImportError as exc:      # a Python built without Tk
        print(f"client.py: cannot open a window ({exc})", file=sys.stderr)
        return 1
    return gui_tk.run(args)
