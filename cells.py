"""How many columns text takes on a terminal, and where wrapping puts each character.

A terminal gives most characters one column, East Asian wide and fullwidth ones two, and
combining marks none (they sit on the character before them). With autowrap, text reaching
the right margin goes on at the start of the next row; a wide character that does not fit
in the last column is moved whole to the next row, leaving that column blank, as xterm does.
Pure functions: the terminal (terminal.py) uses them to know which rows its input occupies,
and both screens (the terminal and the window, gui.py) `visible` to show text from the network.
"""
import unicodedata
from dataclasses import dataclass

_ZERO_WIDTH_CATEGORIES = ("Mn", "Me", "Cf")     # combining marks, and format characters


def char_cells(char):
    """One character -> the columns a terminal gives it: 0, 1 or 2."""
    if unicodedata.category(char) in _ZERO_WIDTH_CATEGORIES and char != "\u00ad":
        return 0            # (the soft hyphen is Cf, but terminals draw it as a hyphen)
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


@dataclass(frozen=True)
class Layout:
    """Where wrapped text lies: its cursor's row and column, and the rows it occupies.

    Text that ends exactly at the right margin leaves the cursor on the row below (the
    terminal is made to wrap there), so `rows` counts that row too.
    """
    cursor_row: int
    cursor_col: int
    rows: int
    fills_last_row: bool    # it ends exactly at the margin: the terminal must be made to wrap


def layout(text, cursor, width):
    """Text written from column 0 of a `width`-column terminal, and a cursor before character
    index `cursor` (len(text): at the end) -> its Layout."""
    width = max(width, 2)       # room for one wide character
    row = col = 0
    cursor_at = None
    for index, char in enumerate(text):
        cells = char_cells(char)
        if cells and col + cells > width:
            row, col = row + 1, 0       # wrapped: at the margin, or a wide char pushed down
        if index == cursor:
            cursor_at = (row, col)
        col += cells
    fills = col == width and bool(text)
    end = (row + 1, 0) if col >= width else (row, col)
    cursor_row, cursor_col = end if cursor_at is None else cursor_at
    return Layout(cursor_row, cursor_col, end[0] + 1, fills)


def clipped(text, width):
    """Text -> its longest start that fits in `width` columns (for a line that must not wrap)."""
    used = 0
    for index, char in enumerate(text):
        used += char_cells(char)
        if used > width:
            return text[:index]
    return text


# Characters that move the cursor or reorder text although they are not C0/C1 controls: line
# and paragraph separators and every bidi control (U+061C, the Arabic letter mark, too: a
# fuzzer's went through). Joiners and tags stay: emoji sequences and flags are made of them.
_INVISIBLE = {"\u2028", "\u2029", "\u200e", "\u200f", "\u061c"} \
    | {chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)}


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
