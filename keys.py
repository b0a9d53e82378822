"""The keyboard's characters -> the keys they stand for, as the line editor understands them.

A terminal in cbreak mode sends a key as one character (a letter, Ctrl-A as "\\x01") or as an
escape sequence: ESC [ params final (CSI: arrows, Home, Delete), ESC O final (SS3: arrows and
Home/End in "application" mode), or ESC and a character (Alt-x). `KeyDecoder` reads them one
character at a time (a sequence may be split across reads) and gives back printable text as
itself and every other key as a `Key`. A sequence it does not know is swallowed whole: never
inserted into the line. Several sequences mean the same key (Home is ESC [ H, ESC O H,
ESC [ 1 ~ or ESC [ 7 ~, and Ctrl-A), so the editor sees one `Key.HOME`.
"""
import enum


class Key(enum.Enum):
    """What a key asks the line editor to do (emacs and readline bindings)."""
    ENTER = "enter"
    BACKSPACE = "backspace"             # erase the character before the cursor
    DELETE = "delete"                   # erase the character at the cursor
    END_OF_INPUT = "end of input"       # Ctrl-D: end of input on an empty line, else Delete
    LEFT = "left"
    RIGHT = "right"
    HOME = "home"
    END = "end"
    WORD_LEFT = "word left"
    WORD_RIGHT = "word right"
    KILL_TO_END = "kill to end"         # Ctrl-K
    KILL_TO_START = "kill to start"     # Ctrl-U: what is before the cursor, as readline does
    KILL_WORD_BEFORE = "kill word before"   # Ctrl-W, Alt-Backspace
    KILL_WORD_AFTER = "kill word after"     # Alt-D
    YANK = "yank"                       # Ctrl-Y: put back what was last killed
    HISTORY_BACK = "history back"       # Up, Ctrl-P
    HISTORY_FORWARD = "history forward"     # Down, Ctrl-N
    SEARCH_BACK = "search back"         # Ctrl-R
    CANCEL = "cancel"                   # Ctrl-G, or a lone Esc (see KeyDecoder.flush)
    COMPLETE = "complete"               # Tab
    REDRAW = "redraw"                   # Ctrl-L: clear the screen, draw the input again


ESC = "\x1b"

# One character, one key. Control characters not listed here do nothing.
_CONTROL_KEYS = {
    "\r": Key.ENTER, "\n": Key.ENTER, "\x7f": Key.BACKSPACE, "\x08": Key.BACKSPACE,
    "\x04": Key.END_OF_INPUT, "\x01": Key.HOME, "\x05": Key.END, "\x02": Key.LEFT,
    "\x06": Key.RIGHT, "\x0b": Key.KILL_TO_END, "\x15": Key.KILL_TO_START,
    "\x17": Key.KILL_WORD_BEFORE, "\x19": Key.YANK, "\x10": Key.HISTORY_BACK,
    "\x0e": Key.HISTORY_FORWARD, "\x12": Key.SEARCH_BACK, "\x07": Key.CANCEL,
    "\t": Key.COMPLETE, "\x0c": Key.REDRAW,
}
# The last character of ESC [ final, ESC [ 1 ; mod final, and ESC O final.
_FINALS = {"A": Key.HISTORY_BACK, "B": Key.HISTORY_FORWARD, "C": Key.RIGHT, "D": Key.LEFT,
           "H": Key.HOME, "F": Key.END}
# ESC [ n ~ (the VT220 editing keypad).
_TILDES = {"1": Key.HOME, "7": Key.HOME, "4": Key.END, "8": Key.END, "3": Key.DELETE}
# Ctrl- or Alt-Right/Left (ESC [ 1 ; 5 C, ESC [ 1 ; 3 D ...) move by words, as in most shells.
_WORD_MOVES = {"C": Key.WORD_RIGHT, "D": Key.WORD_LEFT}
_WORD_MODIFIERS = ("3", "5")
# ESC and a character: Alt (Meta) and that key.
_ALT_KEYS = {"b": Key.WORD_LEFT, "f": Key.WORD_RIGHT, "d": Key.KILL_WORD_AFTER,
             "\x7f": Key.KILL_WORD_BEFORE, "\x08": Key.KILL_WORD_BEFORE}


def printable(char):
    """True for a character the editor may insert: no C0 or C1 control characters."""
    code = ord(char)
    return not (code < 0x20 or 0x7F <= code <= 0x9F)


class KeyDecoder:
    """Characters in, keys out; `feed` may be called with any split of the input."""

    def __init__(self):
        self._state = None          # None, "esc" (ESC seen), "csi" or "ss3"
        self._params = ""           # a CSI's parameter characters so far
        self._after_cr = False      # "\r\n" is one Enter

    @property
    def pending_escape(self):
        """True when the input so far ended with a lone ESC (Esc, or the start of a key)."""
        return self._state == "esc"

    def feed(self, text):
        """Characters -> the keys and text they finish: each a Key, or a printable str of one
        character. An unfinished escape sequence waits for the next call."""
        keys = []
        for char in text:
            after_cr, self._after_cr = self._after_cr, char == "\r"
            if self._state is None:
                self._plain(char, after_cr, keys)
            else:
                self._sequence(char, after_cr, keys)
        return keys

    def flush(self):
        """A lone ESC is taken as the Esc key (the caller decides when no more is coming)
        -> [Key.CANCEL], or [] when nothing waits."""
        if self._state != "esc":
            return []
        self._state = None
        return [Key.CANCEL]

    def _plain(self, char, after_cr, keys):
        """One character outside an escape sequence."""
        if char == ESC:
            self._state = "esc"
        elif char == "\n" and after_cr:
            pass
        elif char in _CONTROL_KEYS:
            keys.append(_CONTROL_KEYS[char])
        elif printable(char):
            keys.append(char)

    def _sequence(self, char, after_cr, keys):
        """One character inside an escape sequence."""
        state, self._state = self._state, None
        if state == "esc":
            if char == "[":
                self._state, self._params = "csi", ""
            elif char == "O":
                self._state = "ss3"
            elif char == ESC:
                self._state = "esc"         # Esc pressed twice: the second may start a key
            elif char in _ALT_KEYS:
                keys.append(_ALT_KEYS[char])
            elif not printable(char):
                self._plain(char, after_cr, keys)   # Esc, then a control key: take that key
            # any other Alt-x is ignored
        elif state == "ss3":
            if char in _FINALS:
                keys.append(_FINALS[char])
        elif "\x30" <= char <= "\x3f" or "\x20" <= char <= "\x2f":
            self._state, self._params = "csi", self._params + char   # parameters go on
        elif "\x40" <= char <= "\x7e":
            key = _csi_key(self._params, char)
            if key is not None:
                keys.append(key)
        else:
            self._plain(char, after_cr, keys)   # not part of a sequence: it ends it, and counts


def _csi_key(params, final):
    """A whole CSI sequence's parameters and final character -> its Key, or None."""
    if final == "~":
        return _TILDES.get(params)
    if params in ("", "1"):
        return _FINALS.get(final)
    if params in (f"1;{mod}" for mod in _WORD_MODIFIERS):
        return _WORD_MOVES.get(final)
    return None
