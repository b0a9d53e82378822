"""The client's screen and keyboard: whole lines in, lines out, never a mangled input line.

On a real terminal the `Terminal` puts it in cbreak mode (no kernel echo, no line editing,
ISIG kept so Ctrl-C is still SIGINT) and edits the input line itself (line_editor.py: keys,
history, search, completion), so that a message arriving while the user types is printed above
the half-typed line, which is then drawn again. An input longer than the terminal is wide
wraps over several rows: the Terminal knows from cells.py which rows it occupies and where its
cursor is, so each redraw erases exactly those rows and puts the cursor back. During an outage
a status line stays below the input. On a pipe or a file, input is split into lines and output
is written as it comes.

Text from other users is shown with its control characters made visible, so nobody can
move another user's cursor, clear their screen or retitle their window.

`TerminalScreen` makes a Terminal the client's screen: what the core shows becomes lines, in
the original client's words (`screen_lines`), and typed lines become the core's events.
"""
import codecs
import errno
import math
import os
import re
import select
import signal
import termios
import time

from cells import char_cells, clipped, layout, visible
from client_events import (AskConsent, ConsentLapsed, HungUp, InputEnded, LineIn, Prompt,
                           Show, ShowFate, ShowOnline, ShowSending, Stage, Status)
from commands import (ALIASES, COMMANDS, action_text, day_words, help_lines, lapsed_text,
                      presence_words)
from completion import Completer
from keys import Key, KeyDecoder
from line_editor import MAX_LINE_CHARS, ClearScreen, EndOfInput, Entered, LineEditor, Listed
from protocol import name_chars_ok
from words import waiting_words

DEFAULT_COLUMNS = 80            # when the terminal does not say how wide it is
UTF8_BOM = codecs.BOM_UTF8      # a file's first bytes that are not its text
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)     # ... and a UTF-16 file's
_LINE_END = re.compile(rb"\r\n|\r|\n")    # how a piped line may end
MIN_TICK_S = 0.05               # the status line's countdown is redrawn at most this often
READ_TYPED_BYTES = 65536        # keys typed before a Ctrl-C, read at it (read_typed)
NOT_ENTERED = "(The line above was not sent: Enter was not pressed.)"   # said at the exit
# user names kept for Tab, the newest seen (a server that named 200,000 grew the client by
# 30 MB: a trial's hostile one; a real one names its accounts), and listed by a second Tab
MAX_NAMES = 10_000
MAX_LISTED = 200
ERASE_BELOW = "\x1b[J"          # erase from the cursor to the end of the screen
CLEAR_SCREEN = "\x1b[H\x1b[2J"  # the cursor to the top left, and everything erased

def _up(rows):
    return f"\x1b[{rows}A" if rows > 0 else ""


def _right(columns):
    return f"\x1b[{columns}C" if columns > 0 else ""


class Terminal:
    """Keyboard lines in (`feed`), screen lines out (`show`); see the module docstring.

    The input area is the rows the typed line occupies, and the status line below them when
    there is one; it is always the last thing on the screen. `_row` is the row of that area
    the terminal's cursor is on, so a redraw goes up that many rows and erases below.
    """

    def __init__(self, in_fd, out, err=None, interactive=None, columns=None, warn=None):
        self.in_fd = in_fd
        self.out = out                  # a binary stream, e.g. sys.stdout.buffer
        self.err = err                  # diagnostics (refused connections...), or None
        self.warn = warn                # where a failing `out` is said, shown or not, or None
        if interactive is None:
            # TERM=dumb (an Emacs shell, say) draws no cursor moves: the terminal's own line
            # editing then, as for output that goes elsewhere (a trial's read "^[[J" there)
            interactive = (os.isatty(in_fd) and os.isatty(out.fileno())
                           and os.environ.get("TERM") != "dumb")
        self.interactive = interactive  # True: cbreak mode and our own line editor
        # a keyboard whose output goes elsewhere (`client.py | tee log`): the terminal's own
        # line editing stays, but its echo is off while a password is typed; the mode before
        self._keyboard_mode = None
        self.ended = False              # Ctrl-D on an empty line was read
        self.editor = LineEditor()
        self._keys = KeyDecoder()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = b""             # pipe mode: bytes after the last newline
        self._starting = True           # pipe mode: nothing read yet (a BOM may come first)
        self._utf16 = None              # pipe mode: the decoder of input written in UTF-16
        self._saved_mode = None
        self._columns = columns or self._measured_columns   # -> the terminal's width now
        self.width = self._columns() if interactive else DEFAULT_COLUMNS
        self._status = None             # the line kept below the input, or None
        # a user name is being asked: the line typed after it is hidden as it is typed, a
        # password typed ahead of its prompt (set by the screen, which knows the stage)
        self.secret_after_enter = False
        self.heading = None             # the question being answered (a login prompt), shown
                                        # again after Ctrl-L clears the screen, or None
        self._row = 0                   # the input area's row the cursor is on
        # (view, status, width) as on the screen; None: unknown. It starts empty at the cursor.
        self._drawn = self._erased()
        self.out_failed = False        # a write to `out` failed, and stderr was told
        self.on_out_failed = None       # called once when it does (TerminalScreen leaves)

    @property
    def secret(self):
        return self.editor.secret

    @property
    def keyboard(self):
        """True if the input is a terminal's keyboard (in our mode, or in its own)."""
        return self.interactive or self._keyboard_mode is not None

    # -- terminal mode ----------------------------------------------------------------------

    def __enter__(self):
        if self.interactive:
            self._saved_mode = termios.tcgetattr(self.in_fd)
            self._cbreak()
        elif os.isatty(self.in_fd):
            self._keyboard_mode = termios.tcgetattr(self.in_fd)
        return self

    def _cbreak(self):
        """Our mode: the terminal as it was at the start, without its echo and line editing.
        (From the background this stops the process, SIGTTOU, until fg; then it is done.)"""
        mode = [*self._saved_mode[:6], list(self._saved_mode[6])]
        mode[3] &= ~(termios.ECHO | termios.ICANON)   # lflag; ISIG stays on
        # Ctrl-C leaves what was typed before it to be read (read_typed): flushed, an Enter
        # pressed just before it was lost, and the line with it, without a word (a trial's)
        mode[3] |= termios.NOFLSH
        # no XON/XOFF: Ctrl-S stopped the terminal's output, our next write blocked the one
        # thread, and the heartbeats with it (a trial's session timed out behind a Ctrl-S)
        mode[0] &= ~termios.IXON
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        for _ in range(3):
            try:
                # TCSADRAIN, not TCSAFLUSH: a name typed as the client started, shown on the
                # screen by the terminal's own echo, was thrown away unread (a new user's)
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, mode)
                return
            except termios.error as exc:
                if exc.args[0] != errno.EINTR:      # (a signal as the stop ended: again)
                    raise

    def suspend(self):
        """Before the process stops (Ctrl-Z): the input area erased and the terminal as it
        was, for the shell; resume() brings both back. The typed line is kept."""
        if self._saved_mode is None:
            return
        self._write(self._erasing())
        self._drawn = self._erased()
        termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved_mode)

    def resume(self):
        """The process goes on after a stop: in the foreground, if the shell's mode replaced
        ours (a shell does not give it back: without this a password would be echoed), ours
        again, and the input area drawn on a row of its own; nothing if ours never went (a
        SIGCONT alone). Still in the background (a stop from outside, then SIGCONT), setting
        the mode stops the process (SIGTTOU) as job control expects, and a shell's fg of a job
        it sees running sends no SIGCONT: this way the fg does, and the mode is set then.
        -> True if it took the terminal back."""
        if self._saved_mode is None:
            if self.editor.secret and self._keyboard_mode is not None:
                # the terminal's own line editing (TERM=dumb, output to a pipe): the shell
                # gave the kernel its echo back at fg, and a trial's password showed as typed.
                # From the background (bg), as above: the mode's setting stops the process
                # until fg, whose SIGCONT comes here again (a re-attack's bg then fg showed it)
                self.set_secret(True)
            return False
        if (os.tcgetpgrp(self.in_fd) == os.getpgrp()
                and not termios.tcgetattr(self.in_fd)[3] & (termios.ECHO | termios.ICANON)):
            return False
        self._cbreak()
        self.width = self._columns()    # (it may have been resized meanwhile)
        self._row, self._drawn = 0, self._erased()
        self._draw()
        return True

    def __exit__(self, *exc_info):
        self.restore()
        return False

    def restore(self):
        """Put the terminal back as it was, a half-typed line left on a row of its own, said
        not to be sent, and the status line gone; safe to call twice."""
        if self.interactive and (self.editor.chars or self._status is not None):
            typed = "" if self.secret else self.editor.text
            # (left as it was, it read as sent: a trial's)
            self._write(self._erasing() + (f"{typed}\r\n{NOT_ENTERED}\r\n" if typed else ""))
            self.editor.clear()
            self._status = None
            self._drawn = self._erased()
        for mode in (self._saved_mode, self._keyboard_mode):
            if mode is not None:
                try:
                    termios.tcsetattr(self.in_fd, termios.TCSADRAIN, mode)
                except (termios.error, OSError):
                    pass        # (the terminal hung up: there is no mode left to restore)
        self._saved_mode = self._keyboard_mode = None

    def _measured_columns(self):
        try:
            columns = os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns or DEFAULT_COLUMNS   # a new pseudo-terminal says 0

    # -- input ------------------------------------------------------------------------------

    def feed(self, data):
        """Raw bytes from the keyboard or pipe -> the complete lines they finish."""
        if self.ended:
            return []
        if not self.interactive:
            return self._split_lines(data)
        lines = []
        self._press(self._keys.feed(self._decoder.decode(data)), lines)
        if self._keys.pending_escape and self.editor.searching:
            # a sequence comes in one read: an ESC that ends one is the Esc key, which ends
            # the search (elsewhere it waits: ESC then b is Alt-B)
            self._press(self._keys.flush(), lines)
        self._draw()
        return lines

    def finish(self):
        """Input is over: the last line if it had no newline (pipe mode only)."""
        rest, self._pending = self._pending, b""
        if self.interactive or not rest:
            return []
        return [_decode_line(rest)]

    def redraw(self):
        """Draw the input again (the editor's line changed other than by a key)."""
        if self.interactive:
            self._draw()

    def set_secret(self, secret):
        """True: echo nothing (a password is being typed); False: echo again."""
        self.editor.secret = secret
        if self.interactive:
            self._draw()
        elif self._keyboard_mode is not None:
            mode = [*self._keyboard_mode[:6], self._keyboard_mode[6]]
            if secret:
                mode[3] &= ~termios.ECHO        # lflag: the kernel's echo
            termios.tcsetattr(self.in_fd, termios.TCSADRAIN, mode)

    def interrupted(self):
        """Ctrl-C with the terminal's own line editing: the kernel echoed ^C where the cursor
        was; the row is ended, so that what follows, and the shell's prompt after the exit,
        start on their own (a trial's prompt stuck to the ^C)."""
        if self._keyboard_mode is None:
            return
        for stream in (self.out, self.warn):
            if is_tty(stream):
                _write_to(stream, b"\n")
                return

    def set_status(self, text):
        """Keep `text` on a line below the input (None: no such line); a terminal only."""
        if self.interactive:
            self._status = None if text is None else visible(text)
            self._draw()

    def resized(self):
        """The terminal's size changed (SIGWINCH): draw the input for its new width."""
        width = self._columns()
        if not self.interactive or width == self.width:
            return
        # A terminal that reflows (most do) moved the cursor with the text; one that does not
        # (xterm) kept its row. Erasing from the lower of the two rows never erases a message
        # above the input; at worst the start of the old input stays above it (Ctrl-L clears).
        text, cursor = self._drawn[0] if self._drawn else self.editor.view()
        place = layout(text, cursor, width)
        # a cursor after a line that fills its last row stays on that row, its wrap pending,
        # not on the row below, where our own drawing puts it: counted from the row below, a
        # window widened to the input's width erased the message above it (a trial's)
        reflowed = place.cursor_row - (place.fills_last_row and cursor == len(text))
        self._row = min(self._row, reflowed)
        self.width = width
        self._drawn = None
        self._draw()

    def _split_lines(self, data):
        if self._utf16 is not None:
            data = self._utf16.decode(data).encode("utf-8")
        data = self._pending + data
        if self._starting:
            # a file saved by Windows Notepad starts with the UTF-8 byte order mark: it is not
            # part of the user name on the first line
            if any(len(data) < len(bom) and bom.startswith(data)
                   for bom in (UTF8_BOM, *UTF16_BOMS)):
                self._pending = data
                return []
            self._starting = False
            if data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM):]
            elif data[:2] in UTF16_BOMS:
                # Windows PowerShell's `>` writes UTF-16: read as written (a trial's file was a
                # wrong username on every line)
                self._utf16 = codecs.getincrementaldecoder("utf-16")("replace")
                data = self._utf16.decode(data).encode("utf-8")
        # a line ends with LF, CRLF or a CR alone (a file saved on an old Mac, or by a program
        # that writes CR: a trial's file of such lines was one long line). A CR at the end may
        # be the first half of a CRLF: it waits for the next read.
        held = b"\r" if data.endswith(b"\r") else b""
        parts = _LINE_END.split(data[:len(data) - len(held)])
        self._pending = parts.pop()[:MAX_LINE_CHARS * 4] + held   # up to 4 bytes a character
        return [_decode_line(part)[:MAX_LINE_CHARS] for part in parts]

    def _press(self, keys, lines):
        """Keys to the editor; a finished line goes into `lines` and stays on the screen."""
        last = len(keys) - 1                # (a list: KeyDecoder.feed's)
        for at, key in enumerate(keys):
            if self.ended:
                return
            if isinstance(key, str) and visible(key) != key:
                continue                # a bidi mark would reorder the line as it is shown
            if key is Key.COMPLETE and at < last and isinstance(keys[at + 1], str):
                # a Tab with text after it in one read was pasted, not typed: a space between
                # words (a trial's pasted "message<Tab>col<Tab>hi" completed "col" to another
                # user's name)
                key = " "
            done = self.editor.press(key)
            kind = type(done)
            if kind is Entered:
                lines.append(done.text)
                self._print_above("" if self.secret else done.text, visible_already=True)
                if self.secret_after_enter and done.text.strip():
                    # (a trial's password, typed while the name waited for the server, showed)
                    self.editor.secret, self.secret_after_enter = True, False
            elif kind is Listed:
                shown, more = done.matches[:MAX_LISTED], len(done.matches) - MAX_LISTED
                self._print_above("  ".join(shown) + (f"  (and {more:,} more: type more of "
                                                      f"the name)" if more > 0 else ""))
            elif kind is ClearScreen:
                self._write(CLEAR_SCREEN)
                self._row, self._drawn = 0, self._erased()
                if self.heading is not None:    # (else at a password prompt nothing said what
                    self._print_above(self.heading)     # was being asked: a trial's)
            elif kind is EndOfInput:
                self.ended = True

    # -- output -----------------------------------------------------------------------------

    def show(self, text):
        """Print one line above the half-typed input, which is then drawn again."""
        if self.interactive:
            self._print_above(text)
        else:
            self._write(visible(text) + "\n")

    def log(self, text):
        """A diagnostic line on stderr, keeping the input line whole."""
        if self.err is None:
            return
        if self.interactive:
            self.resized()          # (as _print_above)
            self._write(self._erasing())
            self._drawn = self._erased()
        _write_to(self.err, visible(text).encode() + b"\n")
        if self.interactive:
            self._draw()

    def _print_above(self, text, visible_already=False):
        # a resize whose signal is not read yet: the input's rows counted at the old width
        # erased up over messages above it (a trial's, messages arriving while it resized)
        self.resized()
        line = text if visible_already else visible(text)
        self._write(self._erasing() + line + "\r\n")
        self._drawn = self._erased()
        self._draw()

    def _draw(self):
        """Draw the input area again if what it shows changed."""
        view = self.editor.view()
        state = (view, self._status, self.width)
        if state == self._drawn:
            return
        if self._only_appended(view):
            # typing at the end of the line: the new characters are the whole redraw
            text, cursor = view
            place = layout(text, cursor, self.width)
            self._write(text[len(self._drawn[0][0]):] + (" \r" if place.fills_last_row else ""))
            self._row = place.cursor_row
        else:
            self._write(self._erasing() + self._drawing(view))
        self._drawn = state

    def _only_appended(self, view):
        """True when the line only grew at its end, the cursor at the end before and after,
        and nothing is drawn below it (new rows would write over a status line)."""
        if self._drawn is None or self._status is not None:
            return False
        (old_text, old_cursor), old_status, old_width = self._drawn
        text, cursor = view
        return (old_status is None and old_width == self.width and len(text) > len(old_text)
                and text.startswith(old_text) and old_cursor == len(old_text)
                and cursor == len(text) and char_cells(text[len(old_text)]) > 0)

    def _erased(self):
        """-> the state of an input area just erased: nothing drawn, the cursor at its start."""
        return ("", 0), None, self.width

    def _erasing(self):
        """-> the bytes that erase the input area, leaving the cursor at its start."""
        up, self._row = self._row, 0
        return "\r" + _up(up) + ERASE_BELOW

    def _drawing(self, view):
        """-> the bytes that draw the input area from its start, cursor placed."""
        text, cursor = view
        place = layout(text, cursor, self.width)
        out = [text]
        if place.fills_last_row:
            out.append(" \r")          # wrap now, so the cursor's row is the one we count
        row = place.rows - 1            # the cursor is on the input's last row
        if self._status is not None:
            # one column short of the margin: a full row would leave the cursor pending a wrap
            out.append("\r\n" + clipped(self._status, self.width - 1))
            row += 1
        out.append("\r" + _up(row - place.cursor_row) + _right(place.cursor_col))
        self._row = place.cursor_row
        return "".join(out)

    def _write(self, text):
        failed = _write_to(self.out, text.encode())
        if failed and not self.out_failed:
            # once, where it can be read: a trial's run with its output on a full disk
            # (/dev/full) exited 0 with every line lost and not a word
            self.out_failed = True
            if self.warn is not None:
                _write_to(self.warn, f"client.py: cannot write to standard output ({failed}); "
                                    f"logging out: what comes meanwhile waits on the server "
                                    f"for the next login\n".encode())
            if self.on_out_failed is not None:
                self.on_out_failed()


# The terminal's words for what the core shows.
ASK_USER = "Please enter username:"
ASK_PASSWORD = "Please enter password:"
_PROMPTS = {Stage.USERNAME: ASK_USER, Stage.PASSWORD: ASK_PASSWORD}
# A Show of each kind -> its lines; "system", "outage" and "back" are their text as it is. A
# broadcast says so, as the window does; a direct message keeps the original's form.
_SHOW_FORMS = {
    "message": ("{sender}: {text}",), "broadcast": ("{sender} (to everyone): {text}",),
    "private": ("{sender} (private): {text}",),
    # a block began or ended between the user and sender: a list to keep, which has no lines
    "listed": (), "unlisted": (),
    # the server not there at the start: no prompt yet, but typing may begin
    "type_ahead": ("You can type your username now: it is checked once the server answers.",),
    "asked": ("request sent",),
    "asked_again": ("getaddress {sender}: request sent",),
    "not_done": ("{text} was not done: type it again once the server is back.",),
    "ended_not_done": ("{text} was not done: the session had ended.",),
    "perhaps_not_done": ("{text} may not have been done: type it again once the server is "
                         "back.",),
    "address": ("got address!", "{sender} {text}"),
    "no_address": ("You don't have {sender}'s address. Type getaddress {sender} first.",),
    "asking": ("You asked {sender} for their address: private works once they agree.",),
    "address_void": ("{sender}'s address is no longer valid. "
                     "Type getaddress {sender} to ask again.",),
    "address_taken_back": ("{sender} took back their yes: private messages to them stop. "
                           "Type getaddress {sender} to ask again.",),
    "peer_refused": ("{sender} no longer takes your private messages. "
                     "Type getaddress {sender} to ask again.",),
    "peer_left": ("{sender}'s session ended (a logout, or the server restarted), and your "
                  "private talk with it. Type getaddress {sender} to ask again once they are "
                  "back.",),
    "unreachable": ("Connect failed. Maybe the user's ip has changed.",),
    "no_answer": ("{sender}'s client took the connection but did not answer: it may be "
                  "stopped or busy.",),
    "no_reply": ("{sender}'s client stopped answering (it may be stopped or busy): what it "
                 "did not acknowledge may not have reached it.",),
    "link_broke": ("The link to {sender}'s client broke: what it did not acknowledge may not "
                   "have reached it.",),
    "try_message": ("To leave it for {sender} through the server, "
                    "type message {sender} <text>.",),
    "peer_no_port": ("{sender} agreed, but their client has no listening port, so it cannot "
                     "take private messages. Use message {sender} <text> instead.",),
    "no_port": ("This client has no listening port, so it cannot take private messages: "
                "others can answer you with message, not private.",),
    "usage": ("Usage: {text}",),
    "unknown_command": ("Unknown command '{text}'. Type help for the list of commands.",),
}
# Tab completes these as the first word, and user names after those that take a user first.
COMMAND_NAMES = tuple(COMMANDS) + tuple(alias for alias in ALIASES    # exit (y is Y already)
                                        if alias not in {name.lower() for name in COMMANDS})
USER_COMMANDS = tuple(name for name, spec in COMMANDS.items() if spec.params[:1] == ("user",))
USER_COMMANDS += tuple(alias for alias, name in ALIASES.items() if name in USER_COMMANDS)


# A message whose text is an action ("/me waves") -> its line: "* alice waves", as IRC shows one
_ACTION_FORMS = {"message": "* {sender} {text}",
                 "broadcast": "* {sender} {text} (to everyone)",
                 "private": "* {sender} {text} (private)"}


def kept_line(show):
    """A message kept for this login -> its line, with when it was sent: "bob (while you were
    away, sent Dec 5 14:02): hi" (a trial's user read messages of days before as just said)."""
    when = f", sent {sent_words(show.sent_at)}" if show.sent_at is not None else ""
    action = action_text(show.text)
    if action:
        return f"* {show.sender} {action} (while you were away{when})"
    return f"{show.sender} (while you were away{when}): {show.text}"


def sent_words(sent_at):
    """Wall-clock seconds -> "Dec 5 14:02", in local time."""
    return f"{day_words(sent_at)} {time.strftime('%H:%M', time.localtime(sent_at))}"


def screen_lines(action):
    """What the core shows (Show, AskConsent, Prompt, ShowOnline, Status, the user's own
    messages) -> the terminal's lines for it, as the original client worded them."""
    kind = type(action)
    if kind is Show and action.kind == "help":
        return help_lines(only=action.text)
    if kind is Show:
        if action.kind == "offline":
            return [kept_line(action)]
        if action.kind in _ACTION_FORMS and action_text(action.text):
            return [_ACTION_FORMS[action.kind].format(sender=action.sender,
                                                      text=action_text(action.text))]
        if action.kind in ("joined", "left"):
            return [presence_words(action)]
        forms = _SHOW_FORMS.get(action.kind)
        if forms is None:
            return [action.text]
        return [form.format(sender=action.sender, text=action.text) for form in forms]
    if kind is AskConsent:
        user = action.user
        return [f"Do you agree to have a private talk with {user}? Y {user}/N {user}"]
    if kind is ConsentLapsed:
        return [lapsed_text(action.user, action.left)]
    if kind is Prompt:
        return [_PROMPTS[action.stage]]
    if kind is ShowOnline:
        return list(action.users) or ["No other users are online."]
    if kind is ShowFate:
        return [action.line] if action.line else []
    if kind is Status or kind is ShowSending:
        return []
    raise TypeError(f"not something the screen shows: {action!r}")


def outage_line(status, now, width=None):
    """A Status during an outage, at `now` -> the status line kept below the input; on a
    terminal narrower than that (`width`), its short form (at 30 columns a trial's read only
    "Server unreachable (refused);", the retry and what waits cut off)."""
    seconds = math.ceil(status.retry_at - now) if status.retry_at is not None else None
    line = f"Server unreachable ({status.outage})"
    if seconds is not None and seconds > 0:
        line += f"; retrying in {seconds} s."
    elif status.retry_at is not None:
        line += "; retrying now..."
    else:
        line += "; it is tried again with the next line you enter."
    if status.waiting:
        # (before the login, what waits is what was typed at its prompts)
        noun = "message" if status.stage is Stage.LOGGED_IN else "typed line"
        line += f" {waiting_words(status.waiting, status.commands, noun)} waiting to be sent."
    if width is None or len(line) < width:
        return line
    short = "No server"         # (then the seconds to the next try, and what waits)
    if seconds is not None:
        short += f": {seconds} s" if seconds > 0 else ": trying"
    return short + (f", {status.waiting} waiting" if status.waiting else "")


def names_in(action):
    """The user names a shown action mentions, for Tab completion: only those a name may be
    (a completed name is drawn as typed text, so it must hold no control character)."""
    kind = type(action)
    if kind is ShowOnline:
        names = set(action.users)
    elif kind is Show and action.sender is not None:
        names = {action.sender}
    elif kind in (AskConsent, ConsentLapsed):
        names = {action.user}
    else:
        names = set()
    return {name for name in names if isinstance(name, str) and name_chars_ok(name)}


class TerminalScreen:
    """The client's screen on a terminal, a pipe or a file."""

    def __init__(self, terminal, stdin_fd):
        self.terminal = terminal
        self.stdin_fd = stdin_fd
        # input from a file or a pipe: a failed login ends the run instead of asking again
        self.scripted = not os.isatty(stdin_fd)
        # user names seen this run (online, senders, comings), oldest first: a dict, as an
        # ordered set, so the oldest goes past MAX_NAMES
        self.names = {}
        terminal.editor.complete = Completer(COMMAND_NAMES, USER_COMMANDS, self.names)
        self._glue = None
        self._input_done = False
        self._outage = None             # the last Status during an outage, else None
        self._tick = None               # the timer that updates the status line's countdown
        self._stage = None              # the last Status's: a prompt is shown again after fg
        self._last_user = None          # who the last login was: the history is theirs
        self._input = None              # the reactor's source of stdin, once run

    def _saw_names(self, names):
        names_seen = self.names
        for name in names:
            names_seen.pop(name, None)
            names_seen[name] = None
        while len(names_seen) > MAX_NAMES:
            del names_seen[next(iter(names_seen))]

    def attach(self, glue):
        """Serve `glue`'s client from now on (its reactor times the status line)."""
        self._glue = glue
        self.terminal.on_out_failed = self._output_failed

    def _output_failed(self):
        """Nothing can be shown any more (a full disk, a pipe's reader gone): the client leaves
        as at a hang-up, and acknowledges nothing more (once_drawn), so what comes meanwhile
        waits on the server. (A trial's, its output on /dev/full, acknowledged what it could
        not show: lost.) On the next pass: this is said from inside a rendering."""
        glue = self._glue
        glue.reactor.call_soon(glue.feed, HungUp())

    def render(self, action):
        """What the core shows -> lines above the input; a Status hides or shows typing and
        keeps the status line."""
        if type(action) is Status:
            if self._stage is Stage.LOGGED_IN and action.stage is Stage.USERNAME:
                # the session ended (logged in elsewhere, a restart): a command half typed is
                # no username, and Enter sent it as one (a trial's); Up brings it back, and
                # the user is told so (a trial's thought it lost)
                if self.terminal.editor.set_aside():
                    self.terminal.show(f"(Your half-typed line is kept: Up brings it back "
                                       f"when you log in as {self._last_user}.)")
                self.terminal.redraw()
            if action.stage is Stage.LOGGED_IN:
                self.terminal.heading = None
                if self._stage is not Stage.LOGGED_IN and action.user != self._last_user:
                    # another user at this terminal: the last one's lines are theirs (a
                    # trial's Up, after a logout, showed them, and could send them again)
                    self.terminal.editor.history.clear()
                self._last_user = action.user
            if action.stage is not self._stage:
                # (as the stage changes only: a Status comes with each change of the waiting
                # count, and the password typed after a name while the server was away showed)
                self.terminal.set_secret(action.stage is Stage.PASSWORD)
                self.terminal.secret_after_enter = action.stage is Stage.USERNAME
            self._stage = action.stage
            # before a login a line may be a password typed ahead of its prompt: none is kept
            self.terminal.editor.remember = action.stage is Stage.LOGGED_IN
            self._outage = action if action.outage is not None else None
            self._show_outage()
            return
        self._saw_names(names_in(action))
        if type(action) is Prompt:
            self.terminal.heading = _PROMPTS[action.stage]
            # asked again (a wrong name, an empty line): what is typed shows, or not, as asked
            self.terminal.set_secret(action.stage is Stage.PASSWORD)
            self.terminal.secret_after_enter = action.stage is Stage.USERNAME
        for line in screen_lines(action):
            self.terminal.show(line)

    def log(self, text):
        self.terminal.log(text)

    def finish(self):
        """The client is done: the terminal as it was, a half-typed line said not sent."""
        self.terminal.restore()

    def once_drawn(self, then):
        """(Printed as rendered: at once; not at all once the output fails, and then what
        waits for it, an acknowledgement, is never done.)"""
        if not self.terminal.out_failed:
            then()

    def run(self, glue):
        """Read the keyboard (or the file) into `glue` until the client exits."""
        self.attach(glue)
        self._input = glue.reactor.watch_input(self.stdin_fd, self._on_input,
                                                self._on_input_end)
        if self.terminal.interactive:
            glue.reactor.on_signals(self._on_resize, signals=(signal.SIGWINCH,))
            glue.reactor.on_signals(self._on_stop, signals=(signal.SIGTSTP,))
        if self.terminal.keyboard:
            glue.reactor.on_signals(self._on_continue, signals=(signal.SIGCONT,))
        glue.start()
        glue.reactor.run()

    def _show_outage(self):
        """The status line during an outage, counting down to the next try; none after."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._outage is None or not self.terminal.interactive or self._glue is None:
            self.terminal.set_status(None)
            return
        now = self._glue.reactor.clock.now()
        self.terminal.set_status(outage_line(self._outage, now, self.terminal.width))
        retry_at = self._outage.retry_at
        if retry_at is not None and retry_at > now:
            # again when the whole seconds shown change (never at once: a rounding error must
            # not make a timer that fires at its own time again and again)
            change_at = retry_at - (math.ceil(retry_at - now) - 1)
            self._tick = self._glue.reactor.call_at(max(change_at, now + MIN_TICK_S),
                                                    self._show_outage)

    def pause_input(self):
        """Read no more of standard input until resume_input (the core's PauseInput)."""
        if self._input is not None:
            self._glue.reactor.pause_input(self._input)

    def resume_input(self):
        if self._input is not None:
            self._glue.reactor.resume_input(self._input)

    def _on_resize(self, signum):
        self.terminal.resized()

    def _on_stop(self, signum):
        """Ctrl-Z: the process stops with the terminal as the shell gave it, and takes its
        own mode back when it goes on (fg: _on_continue)."""
        self.terminal.suspend()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)        # stopped here until it is continued
        self._glue.reactor.on_signals(self._on_stop, signals=(signal.SIGTSTP,))
        # at once, not when the loop reads SIGCONT's note: keys typed meanwhile would be
        # echoed by the shell's mode (and then dropped by ours)
        self._on_continue(signal.SIGCONT)

    def _on_continue(self, signum):
        """Going on after a stop: Ctrl-Z's, or a SIGSTOP's from outside, which no handler sees
        (Terminal.resume)."""
        try:
            back = self.terminal.resume()
        except (OSError, termios.error):
            return              # (no terminal any more: nothing to give a mode to)
        if back and self._stage in _PROMPTS:    # (the shell's lines came after the prompt)
            editor = self.terminal.editor
            if editor.secret and editor.chars:
                # the prompt asks afresh, so its field is empty: a password half typed before
                # the stop, hidden, was joined to the one typed after it (a trial's wrong
                # password, one of the three before a block); and said so, or the rest alone
                # was typed after it (a later trial's)
                editor.clear()
                self.terminal.show("(What you had typed of the password before the stop was "
                                   "cleared: type it whole.)")
            self.terminal.show(_PROMPTS[self._stage])

    def read_typed(self):
        """Ctrl-C's signal: the keys typed before it and not read yet are read now, before
        the client hears of it."""
        if not self.terminal.interactive:
            self.terminal.interrupted()
            return
        if self._input is None:
            return
        try:
            os.set_blocking(self.stdin_fd, False)
            try:
                data = os.read(self.stdin_fd, READ_TYPED_BYTES)
            finally:
                os.set_blocking(self.stdin_fd, True)
        except OSError:         # (nothing there: BlockingIOError)
            return
        if data:
            self._on_input(data)

    def _on_input(self, data):
        """Raw stdin bytes -> typed lines, and the end of input on Ctrl-D."""
        for line in self.terminal.feed(data):
            self._glue.feed(LineIn(line))
        if self.terminal.ended:
            self._input_ended()

    def _on_input_end(self, reason):
        """Standard input closed: its last unterminated line still counts."""
        for line in self.terminal.finish():
            self._glue.feed(LineIn(line))
        self._input_ended()

    def _input_ended(self):
        if not self._input_done:
            self._input_done = True
            self._glue.feed(InputEnded())


def _decode_line(raw):
    """A piped line's bytes -> text: one trailing CR dropped, bad UTF-8 replaced, and a byte
    order mark at its start dropped (files joined from pieces a Windows editor saved: a
    trial's "message" after one was an unknown command with an invisible first character)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    return raw.decode("utf-8", "replace")


def is_tty(stream):
    """True if `stream` (a file object, or None) is a terminal."""
    try:
        return os.isatty(stream.fileno())
    # (AttributeError: None, a stream closed at the start; or a test's BytesIO, no descriptor)
    except (OSError, ValueError, AttributeError):
        return False


def _write_to(stream, data):
    """-> None, or why the write failed: the reader is gone (a pipe closed, a terminal hung
    up), or the disk is full; there is nobody to show it to. Written whole or not at all as
    far as the caller knows: a buffered stream took a line the disk had room for a byte of,
    said nothing until the next line, and the first was acknowledged, lost (a trial's). So a
    real file's bytes go by os.write, each one counted."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):     # (a test's BytesIO, or closed)
        descriptor = None
    try:
        if descriptor is None:
            stream.write(data)
            stream.flush()
            return None
        stream.flush()              # (anything left in its buffer goes first)
        view = memoryview(data)
        while view:
            try:
                written = os.write(descriptor, view)
            except BlockingIOError:     # (left non-blocking by another: wait, as blocking)
                select.select([], [descriptor], [])
                continue
            if not written:
                return "nothing could be written"
            view = view[written:]
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:       # (closed)
        return str(exc)