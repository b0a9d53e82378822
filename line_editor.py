"""The input line being typed: its text and cursor, the keys that edit it, its history.

`LineEditor.press(key)` takes one key from keys.KeyDecoder (a printable character, or a Key)
and changes the line; it returns what the terminal must do beyond drawing the line again: a
finished line (`Entered`), completions to list (`Listed`), the end of input, or a cleared
screen. `view()` says what the input row shows and where its cursor is. No I/O, no clock.

The line is a list of characters, each with the combining marks typed after it, so the cursor
and Backspace never split a letter from its accent. Lines typed while `secret` is set (a
password) are neither shown nor kept in the history, and the history is not offered then;
while `remember` is off, lines are not kept, and the history is not offered either.
Words, for Ctrl-W, Alt-B/F/D, are runs of characters other than spaces.
"""
from dataclasses import dataclass

from cells import char_cells
from completion import IN_TEXT, common_start
from keys import Key

# A typed line is cut here, so a line with no end cannot fill memory. Anything this long is far
# past what the server takes (4,000 characters of text), so it is refused whole.
MAX_LINE_CHARS = 64 * 1024
MAX_MARKS = 16              # combining marks kept on one character; more are dropped
HISTORY_LINES = 1000        # the oldest lines typed this run are forgotten past this many
SEARCH_PROMPT = "(reverse-i-search)'{}': "
FAILED_SEARCH_PROMPT = "(failed reverse-i-search)'{}': "


@dataclass(frozen=True)
class Entered:
    """Enter was pressed: `text` is the finished line."""
    text: str


@dataclass(frozen=True)
class Listed:
    """Tab, again: the words the word before the cursor could become."""
    matches: tuple


@dataclass(frozen=True)
class EndOfInput:
    """Ctrl-D on an empty line."""


@dataclass(frozen=True)
class ClearScreen:
    """Ctrl-L: clear the screen, then draw the input again."""


class _Search:
    """A reverse incremental search (Ctrl-R) under way."""
    __slots__ = ("query", "found", "failed", "saved")

    def __init__(self, saved):
        self.query = ""
        self.found = None       # the history index of the line matched, if any
        self.failed = False     # the last search found nothing (the old match stays)
        self.saved = saved      # (chars, cursor) before the search, for Ctrl-G


class LineEditor:
    """One input line and the history of lines typed this run; see the module docstring."""

    def __init__(self, complete=None, max_chars=MAX_LINE_CHARS):
        self.complete = complete        # the text before the cursor -> Completion, None or
                                        # completion.IN_TEXT
        self.max_chars = max_chars
        self.secret = False
        # False: lines entered are neither kept nor offered (the terminal's before a login,
        # where a line typed ahead of the password prompt may be the password, and where the
        # last user's lines are not the next one's to read: a trial's Up showed them)
        self.remember = True
        self.chars = []                 # one str per character, combining marks included
        self.cursor = 0                 # an index into chars
        self.history = []               # lines entered, oldest first
        self._browsing = None           # the history index shown (Up/Down), None: the draft
        self._draft = []                # the line being typed before Up was pressed
        self._killed = ""               # the last text killed, for Ctrl-Y
        self._search = None
        self._tabbed = False            # the last key was Tab: another one lists the matches
        self._keys = {
            Key.ENTER: self._enter, Key.BACKSPACE: self._backspace, Key.DELETE: self._delete,
            Key.END_OF_INPUT: self._end_of_input, Key.LEFT: self._left, Key.RIGHT: self._right,
            Key.HOME: self._home, Key.END: self._end, Key.WORD_LEFT: self._word_left,
            Key.WORD_RIGHT: self._word_right, Key.KILL_TO_END: self._kill_to_end,
            Key.KILL_TO_START: self._kill_to_start, Key.KILL_WORD_BEFORE: self._kill_word_before,
            Key.KILL_WORD_AFTER: self._kill_word_after, Key.YANK: self._yank,
            Key.HISTORY_BACK: self._history_back, Key.HISTORY_FORWARD: self._history_forward,
            Key.SEARCH_BACK: self._search_back, Key.CANCEL: _nothing,
            Key.REDRAW: ClearScreen,
        }

    @property
    def text(self):
        return "".join(self.chars)

    @property
    def searching(self):
        """True while a reverse search (Ctrl-R) is under way."""
        return self._search is not None

    def clear(self):
        """Forget the line being typed (the history stays)."""
        self._set([])
        self._search = None

    def set_aside(self):
        """Empty the line being typed, keeping it last in the history: Up brings it back.
        -> True if there was one to keep."""
        kept = bool(self.chars) and not self.secret
        if kept:
            self.history.append(self.text)
        self.clear()
        return kept

    def view(self):
        """-> (the text the input row shows, the cursor's index in that text)."""
        if self.secret:
            return "", 0
        if self._search is not None:
            return self._search_view()
        return self.text, len("".join(self.chars[:self.cursor]))

    def press(self, key):
        """One key (a printable character, or a Key) -> Entered, Listed, EndOfInput,
        ClearScreen or None."""
        tabbed, self._tabbed = self._tabbed, key is Key.COMPLETE
        if self._search is not None and self._searching(key):
            return None
        if key is Key.COMPLETE:
            return self._complete(tabbed)
        if isinstance(key, str):
            self.insert(key)
            return None
        return self._keys[key]()

    def insert(self, text):
        """Put text in at the cursor (what does not fit in max_chars is dropped)."""
        for char in text:
            if char_cells(char) == 0 and self.cursor > 0:
                if len(self.chars[self.cursor - 1]) <= MAX_MARKS:
                    self.chars[self.cursor - 1] += char     # a mark joins the letter before it
            elif len(self.chars) < self.max_chars:
                self.chars.insert(self.cursor, char)
                self.cursor += 1

    # -- editing ------------------------------------------------------------------------------

    def _enter(self):
        line = self.text
        if (line.strip() and self.remember and not self.secret
                and (not self.history or self.history[-1] != line)):
            self.history.append(line)
            del self.history[:-HISTORY_LINES]
        self._set([])
        self._browsing, self._draft = None, []
        return Entered(line)

    def _backspace(self):
        if self.cursor > 0:
            self.cursor -= 1
            del self.chars[self.cursor]

    def _delete(self):
        if self.cursor < len(self.chars):
            del self.chars[self.cursor]

    def _end_of_input(self):
        if not self.chars:
            return EndOfInput()
        self._delete()
        return None

    def _left(self):
        self.cursor = max(self.cursor - 1, 0)

    def _right(self):
        self.cursor = min(self.cursor + 1, len(self.chars))

    def _home(self):
        self.cursor = 0

    def _end(self):
        self.cursor = len(self.chars)

    def _word_left(self):
        self.cursor = self._word_start()

    def _word_right(self):
        self.cursor = self._word_end()

    def _word_start(self):
        """The index where the word before the cursor begins (spaces before it skipped)."""
        at = self.cursor
        while at > 0 and self.chars[at - 1] == " ":
            at -= 1
        while at > 0 and self.chars[at - 1] != " ":
            at -= 1
        return at

    def _word_end(self):
        """The index just past the word after the cursor (spaces before it skipped)."""
        at = self.cursor
        while at < len(self.chars) and self.chars[at] == " ":
            at += 1
        while at < len(self.chars) and self.chars[at] != " ":
            at += 1
        return at

    def _kill(self, start, end):
        if start < end:
            # what is erased while the line is a secret is not kept for Ctrl-Y (a trial's
            # password, erased at its prompt, came back in clear at the next Ctrl-Y)
            self._killed = "" if self.secret else "".join(self.chars[start:end])
            del self.chars[start:end]
            self.cursor = start

    def _kill_to_end(self):
        self._kill(self.cursor, len(self.chars))

    def _kill_to_start(self):
        self._kill(0, self.cursor)

    def _kill_word_before(self):
        self._kill(self._word_start(), self.cursor)

    def _kill_word_after(self):
        self._kill(self.cursor, self._word_end())

    def _yank(self):
        self.insert(self._killed)

    def _set(self, chars, cursor=None):
        self.chars = list(chars)
        self.cursor = len(self.chars) if cursor is None else cursor

    # -- history ------------------------------------------------------------------------------

    def _history_back(self):
        if self.secret or not self.remember or self._browsing == 0 or not self.history:
            return
        if self._browsing is None:
            self._draft = list(self.chars)      # kept for the way back down
            self._browsing = len(self.history)
        self._browsing -= 1
        self._set(_clusters(self.history[self._browsing]))

    def _history_forward(self):
        if self._browsing is None:
            return
        self._browsing += 1
        if self._browsing == len(self.history):
            self._browsing = None
            self._set(self._draft)
        else:
            self._set(_clusters(self.history[self._browsing]))

    # -- reverse incremental search (Ctrl-R) ------------------------------------------------

    def _search_back(self):
        if self.secret or not self.remember:
            return
        self._search = _Search((list(self.chars), self.cursor))

    def _searching(self, key):
        """A key while searching -> True if the search took it. Any other key ends the
        search with its match on the line, and then does what it does (Enter sends it)."""
        search = self._search
        if key is Key.SEARCH_BACK:
            start = len(self.history) - 1 if search.found is None else search.found - 1
            self._find(start)
        elif isinstance(key, str):
            search.query += key
            self._find(len(self.history) - 1 if search.found is None else search.found)
        elif key is Key.BACKSPACE:
            search.query = search.query[:-1]
            search.found = None
            self._find(len(self.history) - 1)
        elif key is Key.CANCEL:
            self._search = None
            self._set(*search.saved)
        else:
            self._search = None
            if search.found is not None:
                line = self.history[search.found]
                self._set(_clusters(line), len(_clusters(line[:line.rfind(search.query)])))
            return False
        return True

    def _find(self, start):
        """Look for the query in the history from index `start` back to the oldest line."""
        search = self._search
        if not search.query:
            search.found, search.failed = None, False
            return
        for index in range(start, -1, -1):
            if search.query in self.history[index]:
                search.found, search.failed = index, False
                return
        search.failed = True

    def _search_view(self):
        search = self._search
        prompt = (FAILED_SEARCH_PROMPT if search.failed else SEARCH_PROMPT).format(search.query)
        if search.found is None:
            return prompt, len(prompt)
        line = self.history[search.found]
        return prompt + line, len(prompt) + max(line.rfind(search.query), 0)

    # -- completion -------------------------------------------------------------------------

    def _complete(self, tabbed=False):
        """Tab: one match is put in with a space after it; several are completed as far as
        they agree, and a second Tab in a row lists them."""
        if self.secret or self.complete is None:
            return None
        before = "".join(self.chars[:self.cursor])
        found = self.complete(before)
        if found is None:
            return None
        if found is IN_TEXT:
            self.insert(" ")
            return None
        word = before[found.start:]
        if len(found.matches) == 1:
            self._replace_word(found.start, found.matches[0] + " ")
            return None
        common = common_start(found.matches)
        if len(common) > len(word):
            self._replace_word(found.start, common)
            return None
        return Listed(found.matches) if tabbed else None

    def _replace_word(self, start, text):
        """Put `text` in place of the characters from text index `start` to the cursor."""
        start_index = len(_clusters("".join(self.chars)[:start]))
        del self.chars[start_index:self.cursor]
        self.cursor = start_index
        self.insert(text)


def _clusters(text):
    """Text -> its characters, each with the combining marks after it."""
    chars = []
    for char in text:
        if chars and char_cells(char) == 0:
            chars[-1] += char
        else:
            chars.append(char)
    return chars


def _nothing():
    """Ctrl-G or Esc outside a search: nothing to cancel."""
