"""The client's screen and keyboard: whole lines in, lines out, never a mangled input line.

On a real terminal the `Terminal` puts it in cbreak mode (no kernel echo, no line editing,
ISIG kept so Ctrl-C is still SIGINT) and edits the input line itself, so that a message
arriving while the user types can be printed above the half-typed line, which is then
redrawn. On a pipe or a file, input is split into lines and output is written as it comes.

Text from other users is shown with its control characters made visible, so nobody can
move another user's cursor, clear their screen or retitle their window.

`TerminalScreen` makes a Terminal the client's screen: what the core shows becomes lines, in
the original client's words (`screen_lines`), and typed lines become the core's events.
"""
import codecs
import os
import termios

from client_events import (AskConsent, ConsentLapsed, InputEnded, LineIn, Prompt, Show,
                           ShowFate, ShowOnline, ShowSending, Stage, Status)
from commands import help_lines, lapsed_text

CLEAR_LINE = b"\r\x1b[K"        # back to column 0, erase to the end of the line
BACKSPACES = ("\x7f", "\x08")   # DEL (most terminals) and Ctrl-H
ERASE_LINE = "\x15"             # Ctrl-U
ERASE_WORD = "\x17"             # Ctrl-W
END_OF_INPUT = "\x04"           # Ctrl-D, honoured on an empty line only
ENTER = ("\r", "\n")
# A typed or piped line is cut here, so a line with no end cannot fill memory. Anything this
# long is far past what the server takes (4,000 characters of text), so it is refused whole.
MAX_LINE_CHARS = 64 * 1024

# Characters that move the cursor or reorder text although they are not C0/C1 controls.
_INVISIBLE = {"\u2028", "\u2029", "\u200e", "\u200f"} | {chr(c) for c in range(0x202A, 0x202F)} \
    | {chr(c) for c in range(0x2066, 0x206A)}


def visible(text):
    """Text from the network -> text safe to print: controls become visible escapes."""
    out = []
    for char in text:
        code = ord(char)
        if char == "\t":
            out.append(" ")
        elif code < 0x20 or 0x7F <= code <= 0x9F or char in _INVISIBLE:
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


class Terminal:
    """Keyboard lines in (`feed`), screen lines out (`show`); see the module docstring."""

    def __init__(self, in_fd, out, err=None, interactive=None):
        self.in_fd = in_fd
        self.out = out                  # a binary stream, e.g. sys.stdout.buffer
        self.err = err
        if interactive is None:
            interactive = os.isatty(in_fd) and os.isatty(out.fileno())
        self.interactive = interactive  # True: cbreak mode and our own line editor
        self.secret = False
        self.ended = False              # Ctrl-D on an empty line was read
        self._buffer = []               # the half-typed line, one str per character
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._escape = None             # inside a key's escape sequence: "esc", "csi" or "ss3"
        self._after_cr = False          # "\r\n" is one Enter
        self._pending = b""             # pipe mode: bytes after the last newline
        self._saved_mode = None

    # -- terminal mode ----------------------------------------------------------------------

    def __enter__(self):
        if self.interactive:
            self._saved_mode = termios.tcgetattr(self.in_fd)
            mode = termios.tcgetattr(self.in_fd)
            mode[3] &= ~(termios.ECHO | termios.ICANON)   # lflag; ISIG stays on
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.in_fd, termios.TCSAFLUSH, mode)
        return self

    def __exit__(self, *exc_info):
        self.restore()
        return False

    def restore(self):
        """Put the terminal back as it was; safe to call twice."""
        if self._buffer:
            self._write(b"\n")          # leave the shell prompt on a line of its own
            self._buffer.clear()
        if self._saved_mode is not None:
            termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved_mode)
            self._saved_mode = None

    # -- input ------------------------------------------------------------------------------

    def feed(self, data):
        """Raw bytes from the keyboard or pipe -> the complete lines they finish."""
        if self.ended:
            return []
        if not self.interactive:
            return self._split_lines(data)
        lines = []
        for char in self._decoder.decode(data):
            self._key(char, lines)
            if self.ended:
                break
        return lines

    def finish(self):
        """Input is over: the last line if it had no newline (pipe mode only)."""
        rest, self._pending = self._pending, b""
        if self.interactive or not rest:
            return []
        return [_decode_line(rest)]

    def set_secret(self, secret):
        """True: echo nothing (a password is being typed); False: echo again."""
        self.secret = secret

    def _split_lines(self, data):
        parts = (self._pending + data).split(b"\n")
        self._pending = parts.pop()[:MAX_LINE_CHARS * 4]    # up to 4 UTF-8 bytes a character
        return [_decode_line(part)[:MAX_LINE_CHARS] for part in parts]

    def _key(self, char, lines):
        """One typed character: edit the line, or end it into `lines`."""
        after_cr, self._after_cr = self._after_cr, char == "\r"
        if self._escape is not None:
            self._skip_escape(char)
        elif char == "\x1b":
            self._escape = "esc"        # arrow keys and the like: ignored, not inserted
        elif char in ENTER:
            if not (char == "\n" and after_cr):
                lines.append("".join(self._buffer))
                self._buffer.clear()
                self._write(b"\n")
        elif char in BACKSPACES:
            if self._buffer:
                self._buffer.pop()
                self._redraw()
        elif char == ERASE_LINE:
            self._buffer.clear()
            self._redraw()
        elif char == ERASE_WORD:
            self._erase_word()
        elif char == END_OF_INPUT:
            self.ended = not self._buffer
        elif len(self._buffer) >= MAX_LINE_CHARS:
            pass                        # full: further characters are dropped
        elif char == "\t" or visible(char) == char:
            self._buffer.append(" " if char == "\t" else char)
            if not self.secret:
                self._write(self._buffer[-1].encode())

    def _skip_escape(self, char):
        """Swallow one character of an escape sequence: ESC [ ... final, ESC O x, or ESC x."""
        if self._escape == "esc":
            self._escape = {"[": "csi", "O": "ss3"}.get(char)
        elif self._escape == "ss3" or "\x40" <= char <= "\x7e":
            self._escape = None

    def _erase_word(self):
        while self._buffer and self._buffer[-1] == " ":
            self._buffer.pop()
        while self._buffer and self._buffer[-1] != " ":
            self._buffer.pop()
        self._redraw()

    # -- output -----------------------------------------------------------------------------

    def show(self, text):
        """Print one line above the half-typed input, which is then redrawn."""
        line = visible(text).encode() + b"\n"
        if self.interactive:
            self._write(CLEAR_LINE + line + self._typed())
        else:
            self._write(line)

    def log(self, text):
        """A diagnostic line on stderr, keeping the input line whole."""
        if self.err is None:
            return
        if self.interactive:
            self._write(CLEAR_LINE)
        _write_to(self.err, visible(text).encode() + b"\n")
        if self.interactive:
            self._write(self._typed())

    def _typed(self):
        """The half-typed line as it should look: nothing while a secret is typed."""
        return b"" if self.secret else "".join(self._buffer).encode()

    def _redraw(self):
        if not self.secret:
            self._write(CLEAR_LINE + self._typed())

    def _write(self, data):
        _write_to(self.out, data)


# The terminal's words for what the core shows.
ASK_USER = "Please enter username:"
ASK_PASSWORD = "Please enter password:"
_PROMPTS = {Stage.USERNAME: ASK_USER, Stage.PASSWORD: ASK_PASSWORD}
# A Show of each kind -> its lines; "system" and "outage" are their text as it is.
_SHOW_FORMS = {
    "message": ("{sender}: {text}",), "broadcast": ("{sender}: {text}",),
    "offline": ("{sender}: {text}",), "private": ("{sender} (private): {text}",),
    "joined": ("{sender} has logged in.",), "left": ("{sender} has logged out.",),
    "asked": ("request sent",),
    "address": ("got address!", "{sender} {text}"),
    "no_address": ("You don't have {sender}'s address. Type getaddress {sender} first.",),
    "address_void": ("{sender}'s address is no longer valid. "
                     "Type getaddress {sender} to ask again.",),
    "peer_refused": ("{sender} did not accept your private message. "
                     "Type getaddress {sender} to ask again.",),
    "unreachable": ("Connect failed. Maybe the user's ip has changed.",),
    "try_message": ("To leave it for {sender} through the server, "
                    "type message {sender} <text>.",),
    "peer_no_port": ("{sender} agreed, but their client has no listening port, so it cannot "
                     "take private messages. Use message {sender} <text> instead.",),
    "no_port": ("This client has no listening port, so it cannot take private messages: "
                "others can answer you with message, not private.",),
    "usage": ("Usage: {text}",),
    "unknown_command": ("Unknown command '{text}'. Type help for the list of commands.",),
}


def screen_lines(action):
    """What the core shows (Show, AskConsent, Prompt, ShowOnline, Status, the user's own
    messages) -> the terminal's lines for it, as the original client worded them."""
    kind = type(action)
    if kind is Show and action.kind == "help":
        return help_lines()
    if kind is Show:
        forms = _SHOW_FORMS.get(action.kind)
        if forms is None:
            return [action.text]
        return [form.format(sender=action.sender, text=action.text) for form in forms]
    if kind is AskConsent:
        user = action.user
        return [f"Do you agree to have a private talk with {user}? Y {user}/N {user}"]
    if kind is ConsentLapsed:
        return [lapsed_text(action.user)]
    if kind is Prompt:
        return [_PROMPTS[action.stage]]
    if kind is ShowOnline:
        return list(action.users) or ["No other users are online."]
    if kind is ShowFate:
        return [action.line] if action.line else []
    if kind is Status or kind is ShowSending:
        return []
    raise TypeError(f"not something the screen shows: {action!r}")


class TerminalScreen:
    """The client's screen on a terminal, a pipe or a file."""

    def __init__(self, terminal, stdin_fd):
        self.terminal = terminal
        self.stdin_fd = stdin_fd
        # input from a file or a pipe: a failed login ends the run instead of asking again
        self.scripted = not os.isatty(stdin_fd)
        self._glue = None
        self._input_done = False

    def render(self, action):
        """What the core shows -> lines above the input; a Status only hides or shows typing."""
        if type(action) is Status:
            self.terminal.set_secret(action.stage is Stage.PASSWORD)
            return
        for line in screen_lines(action):
            self.terminal.show(line)

    def log(self, text):
        self.terminal.log(text)

    def run(self, glue):
        """Read the keyboard (or the file) into `glue` until the client exits."""
        self._glue = glue
        glue.reactor.watch_input(self.stdin_fd, self._on_input, self._on_input_end)
        glue.start()
        glue.reactor.run()

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
    """A piped line's bytes -> text: one trailing CR dropped, bad UTF-8 replaced."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", "replace")


def _write_to(stream, data):
    try:
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass    # the reader is gone (or the stream closed): nothing left to show it to
