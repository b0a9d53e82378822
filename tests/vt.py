"""A small virtual terminal for the tests: bytes in, what the screen shows out.

It reads what terminal.py writes the way xterm does: printable characters (East Asian wide
ones take two columns, combining marks none), CR, LF (with the tty's ONLCR: LF also returns to
column 0), BS, and the CSI sequences K, J, A, B, C, D, H; with autowrap at the right margin
and xterm's pending wrap (a character written in the last column leaves the cursor there, and
the next printable character wraps first; CR or a cursor move cancels it). A wide character
that does not fit in the last column goes whole to the next row. Rows scrolled off the top are
kept in `scrolled`. A resize keeps each row's start and the cursor's row, as xterm does (no
reflow). Any other escape sequence or control character fails the test: the terminal must not
write what this does not know.
"""
import codecs
import unicodedata

WIDE = ("W", "F")


def cells(char):
    """The columns a character takes here: written independently of cells.py, as a check."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in WIDE else 1


class Screen:
    """A width x height grid of cells; each cell holds the text drawn there ("" right of a
    wide character)."""

    def __init__(self, width=80, height=24):
        self.width, self.height = width, height
        self.grid = [self._blank_row() for _ in range(height)]
        self.row = self.col = 0
        self.pending_wrap = False
        self.scrolled = []          # rows that left the top, oldest first
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._escape = None         # the escape sequence being read

    # -- what a test reads ------------------------------------------------------------------

    def lines(self):
        """Each row as text, trailing blanks dropped."""
        return ["".join(row).rstrip() for row in self.grid]

    def text(self):
        """The rows down to the last one that is not blank, as one string."""
        lines = self.lines()
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    def everything(self):
        """What scrolled away, then the screen: all that was ever shown and not erased."""
        return "\n".join(["".join(row).rstrip() for row in self.scrolled] + [self.text()])

    @property
    def cursor(self):
        return self.row, self.col

    # -- the stream the terminal writes to ----------------------------------------------------

    def write(self, data):
        for char in self._decoder.decode(bytes(data)):
            self._char(char)
        return len(data)

    def flush(self):
        """Nothing to flush: everything is on the screen already."""

    def resize(self, width, height=None):
        """The window changed size; rows keep their start (no reflow), the cursor its row."""
        height = height or self.height
        for index, row in enumerate(self.grid):
            row = row[:width] + [" "] * max(width - len(row), 0)
            if row[-1] and cells(row[-1][0]) == 2:
                row[-1] = " "       # half a wide character is not drawn
            self.grid[index] = row
        while len(self.grid) > height:
            if self.row > 0:
                self.scrolled.append(self.grid.pop(0))
                self.row -= 1
            else:
                self.grid.pop()
        while len(self.grid) < height:
            self.grid.append([" "] * width)
        self.width, self.height = width, height
        self.col = min(self.col, width - 1)
        self.pending_wrap = False

    # -- interpretation ---------------------------------------------------------------------

    def _blank_row(self):
        return [" "] * self.width

    def _char(self, char):
        if self._escape is not None:
            self._sequence(char)
        elif char == "\x1b":
            self._escape = ""
        elif char == "\r":
            self.col, self.pending_wrap = 0, False
        elif char == "\n":
            self.col, self.pending_wrap = 0, False
            self._line_feed()
        elif char == "\x08":
            self.col, self.pending_wrap = max(self.col - 1, 0), False
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            raise AssertionError(f"the terminal was sent control character {char!r}")
        else:
            self._print(char)

    def _line_feed(self):
        if self.row == self.height - 1:
            self.scrolled.append(self.grid.pop(0))
            self.grid.append(self._blank_row())
        else:
            self.row += 1

    def _print(self, char):
        width = cells(char)
        if width == 0:
            col = self.col if self.pending_wrap else self.col - 1
            while col > 0 and self.grid[self.row][col] == "":
                col -= 1
            if col >= 0:
                self.grid[self.row][col] += char
            return
        if self.pending_wrap or self.col + width > self.width:
            self.col, self.pending_wrap = 0, False
            self._line_feed()
        self._clear_cell(self.col)
        if width == 2:
            self._clear_cell(self.col + 1)
        row = self.grid[self.row]
        row[self.col] = char
        if width == 2:
            row[self.col + 1] = ""
        if self.col + width >= self.width:
            self.col, self.pending_wrap = self.width - 1, True
        else:
            self.col += width

    def _clear_cell(self, col):
        """Writing over half a wide character blanks the other half."""
        row = self.grid[self.row]
        if row[col] == "" and col > 0:
            row[col - 1] = " "
        elif col + 1 < self.width and row[col + 1] == "":
            row[col + 1] = " "
        row[col] = " "

    def _sequence(self, char):
        if self._escape == "":
            if char != "[":
                raise AssertionError(f"the terminal was sent ESC {char!r}")
            self._escape = "["
            return
        if "0" <= char <= "9" or char == ";":
            self._escape += char
            return
        params, self._escape = self._escape[1:], None
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []
        count = max(numbers[0] if numbers else 1, 1)
        self.pending_wrap = False
        if char == "A":
            self.row = max(self.row - count, 0)
        elif char == "B":
            self.row = min(self.row + count, self.height - 1)
        elif char == "C":
            self.col = min(self.col + count, self.width - 1)
        elif char == "D":
            self.col = max(self.col - count, 0)
        elif char == "H":
            row, col = (numbers + [1, 1])[:2]
            self.row, self.col = min(max(row, 1), self.height) - 1, min(max(col, 1), self.width) - 1
        elif char == "K" and params in ("", "0"):
            for col in range(self.col, self.width):
                self.grid[self.row][col] = " "
        elif char == "J" and params in ("", "0"):
            for col in range(self.col, self.width):
                self.grid[self.row][col] = " "
            for row in range(self.row + 1, self.height):
                self.grid[row] = self._blank_row()
        elif char == "J" and params == "2":
            self.grid = [self._blank_row() for _ in range(self.height)]
        else:
            raise AssertionError(f"the terminal was sent ESC [ {params} {char}")
