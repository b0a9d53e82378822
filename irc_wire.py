"""IRC lines: parse what an IRC client sends, format what we send it (no I/O, no chat rules).

The grammar is the "Modern" IRC documentation's (modern.ircdocs.horse), which RFC 1459 and
2812 clients also speak:

    ['@' tags SPACE] [':' source SPACE] command {SPACE param} [SPACE ':' trailing]

A line from a client is at most 512 bytes without its tags (CRLF included) and its tags at most
4,096 bytes; longer is `TooLong` (numeric 417), never a truncated command. Bytes that are not
UTF-8 are `BadText`: the server refuses the line rather than guess a legacy encoding (what it
would pass on to `client.py` users must be text).
"""
import re
import unicodedata
from dataclasses import dataclass

MAX_LINE_BYTES = 512            # without tags, CRLF included (RFC 1459, Modern)
MAX_TAG_BYTES = 4096            # a client's tags, the '@' and the space after them included
MAX_PARAMS = 15
MAX_MASK_PIECES = 16            # pieces between a mask's stars (mask_matcher)
SAFE_TEXT_BYTES = 400           # a notice's text is cut into pieces of at most this much, so
                                # the line with our longest prefix stays under 512
MIN_TEXT_BYTES = 4              # ... and a message's what its line leaves: a character at least
CHANNELLEN = 50                 # the room's name at most (--irc-room): a line's text has room


class TooLong(Exception):
    """The line passes MAX_LINE_BYTES or MAX_TAG_BYTES."""


class BadText(Exception):
    """The line is not valid UTF-8."""


@dataclass(frozen=True)
class Message:
    """One parsed IRC line; `command` upper-cased, `params` with the trailing one last."""
    command: str
    params: tuple = ()
    tags: tuple = ()        # ((name, value or None), ...), in the order sent
    source: str = ""


_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}


def parse(raw):
    """One line of bytes (its CR LF already gone or not) -> Message; None for an empty line.
    Raises TooLong or BadText."""
    raw = raw.rstrip(b"\r\n")
    tags = ()
    if raw.startswith(b"@"):
        space = raw.find(b" ")
        tag_part, raw = (raw, b"") if space < 0 else (raw[:space], raw[space + 1:].lstrip(b" "))
        if len(tag_part) + 1 > MAX_TAG_BYTES:
            raise TooLong()
        tags = _parse_tags(_text(tag_part[1:]))
    if len(raw) + 2 > MAX_LINE_BYTES:
        raise TooLong()
    text = _text(raw).lstrip(" ")
    source = ""
    if text.startswith(":"):
        source, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
    if not text:
        return None
    trailing = None
    head, sep, rest = text.partition(" :")
    if text.startswith(":"):
        head, trailing = "", text[1:]
    elif sep:
        trailing = rest
    words = head.split()
    if not words:
        return None
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    if len(params) > MAX_PARAMS:       # the fifteenth takes the rest, as in RFC 1459
        params = params[:MAX_PARAMS - 1] + [" ".join(params[MAX_PARAMS - 1:])]
    return Message(words[0].upper(), tuple(params), tags, source)


def _text(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadText() from None


def _parse_tags(text):
    tags = []
    for item in text.split(";"):
        if not item:
            continue
        name, has_value, value = item.partition("=")
        tags.append((name, _unescape(value) if has_value else None))
    return tuple(tags)


def _unescape(value):
    out = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_UNESCAPE.get(following, following))   # an unknown escape is the char
        else:
            out.append(char)
    return "".join(out)


def escape_tag(value):
    """A tag value -> its escaped form."""
    return "".join(_ESCAPE.get(char, char) for char in value)


def line(source, command, *params, tags=None):
    """-> one line of bytes, CR LF included: `:source command params`, the last param trailing
    (with ':') whenever it needs it (empty, starts with ':' or holds a space). `tags`: a dict.
    Whatever a param holds, it is one line: a CR, LF or NUL in one (a native user's logout
    reason, a nick refused) becomes a space, so no text can end it and start a command.
    A line past MAX_LINE_BYTES without its tags is cut to fit, between characters: replies
    that repeat what a client sent (a 502-byte PING's PONG, a long nick's 432) would pass it."""
    parts = []
    if source:
        parts.append(":" + source)
    parts.append(command)
    if params:
        *middle, last = params
        parts += middle
        parts.append(":" + last if not last or last[0] == ":" or " " in last else last)
    text = " ".join(parts)
    if "\n" in text or "\r" in text or "\0" in text:
        text = flat(text)
    body = text.encode("utf-8")
    if len(body) > MAX_LINE_BYTES - 2:
        body = body[:MAX_LINE_BYTES - 2].decode("utf-8", "ignore").encode("utf-8")
    if tags:
        head = "@" + ";".join(name if value is None else f"{name}={escape_tag(value)}"
                              for name, value in tags.items()) + " "
        body = flat(head).encode("utf-8") + body
    return body + b"\r\n"


def flat(text):
    """Text from anywhere -> one line's worth: CR, LF and NUL would end or break the line, so
    they become spaces (a client.py user's message may hold newlines)."""
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\0", " ")


def text_bytes(source, command, target):
    """How many bytes of text a `command` (PRIVMSG, NOTICE) from `source` to `target` may
    carry in its line: a 475-byte line from an irssi user came out in two, cut at a fixed
    400 bytes (a trial's), where ngIRCd passes each line on whole. Never less than one
    character's bytes: pieces() must move on (at least 100, the line cut the text of a
    reviewer's 64-character nicks of 4-byte letters)."""
    used = len(f":{source} {command} {target} :".encode("utf-8")) + 2      # (and CR LF)
    return max(MIN_TEXT_BYTES, MAX_LINE_BYTES - used)


def pieces(text, limit=SAFE_TEXT_BYTES):
    """Text -> pieces of at most `limit` UTF-8 bytes each, cut between characters (at a space
    when one is near: that one space is the break), so a 4,000-character message goes out as
    several lines, and every other character of it with them (a fuzzer's 4,000 spaces came
    out as 400 and an empty line)."""
    limit = max(limit, 4)       # a character at least: else no piece moves on (a reviewer's
                                # /me between long nicks made it -5, and the server spun for ever)
    if len(text) <= limit // 4 and text.isprintable():
        return [text]           # the usual message: short, one line, nothing to flatten
    text = flat(text)
    out = []
    while len(text.encode("utf-8")) > limit:
        cut = _cut_before(text, len(text.encode("utf-8")[:limit].decode("utf-8", "ignore")))
        space = text.rfind(" ", cut // 2, cut + 1)      # (one at the cut breaks there too)
        if space > 0:
            out.append(text[:space])
            text = text[space + 1:]
        else:
            out.append(text[:cut])
            text = text[cut:]
    if text or not out:
        out.append(text)
    return out


# a colour code, perhaps cut: mIRC's (\x03 and numbers) and the hex one (\x04 and RRGGBB)
_COLOUR_BEGUN = re.compile("(\x03[0-9]{0,2}(,[0-9]{0,2})?"
                           "|\x04[0-9A-Fa-f]{0,6}(,[0-9A-Fa-f]{0,6})?)$")
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}      # ZWJ and the variation selectors
JOINED_MAX = 16     # the characters a cut may move back to keep them with their own
_REGIONAL, _REGIONAL_END = "\U0001F1E6", "\U0001F1FF"     # two of them make a flag


def _cut_before(text, cut):
    """A cut at character `cut` of `text`, moved back before the colour code it would split,
    and so that a character and what joins it stay together (its marks, a variation
    selector, an emoji's skin tone, the next part of a ZWJ sequence): a reviewer's "\x0304,12"
    cut after its ",1" showed a stray "2" and the wrong background, and an accent, a vowel
    sign or a VS16 began the next line alone."""
    begun = _COLOUR_BEGUN.search(text, max(0, cut - 13), cut)
    if begun is not None and begun.start() > 0:
        cut = begun.start()
    # a few characters back at most: a run of joiners with nothing to join is cut where it
    # falls (backed up to its start, 4,000 of them made 3,800 lines in 120 ms)
    back = cut
    while back > max(1, cut - JOINED_MAX) and (_joins(text[back]) or text[back - 1] == "\u200d"
                                              or unicodedata.combining(text[back - 1]) == 9):
        back -= 1                                       # (after a virama: its conjunct)
    if back <= max(1, cut - JOINED_MAX):
        return cut
    # a flag is two regional indicators: cut between pairs, not inside one
    run = 0
    while run < back and _REGIONAL <= text[back - 1 - run] <= _REGIONAL_END:
        run += 1
    if run % 2 and _REGIONAL <= text[back] <= _REGIONAL_END and back - 1 > 1:
        back -= 1
    return back


def _joins(char):
    """True if `char` belongs with the character before it: a mark, a variation selector, a
    skin tone, an emoji tag, or a Hangul syllable's vowel or final consonant (jamo)."""
    return (unicodedata.category(char) in ("Mn", "Mc", "Me") or char in _JOINERS
            or "\U0001F3FB" <= char <= "\U0001F3FF" or "\U000E0020" <= char <= "\U000E007F"
            or "\u1160" <= char <= "\u11FF" or "\uD7B0" <= char <= "\uD7FF")


def nick_ok(nick):
    """True if `nick` can stand as an IRC nick: it must not hold a space, a comma, a wildcard,
    '!' or '@', nor start with ':', '#', '&', '$' or a digit."""
    return bool(nick) and nick[0] not in ":#&$+%~0123456789" and not any(
        char in " ,*?!@.\r\n\0\x07" for char in nick)


def fold(name):
    """ascii casemapping (ISUPPORT CASEMAPPING=ascii): IRC compares names this way."""
    return name.lower() if name.isascii() else "".join(
        char.lower() if char.isascii() else char for char in name)


def mask_matcher(mask):
    """An IRC mask (`*` any run, `?` any one character, case folded) -> a test of one name,
    made once for many names.

    The stars cut the mask into pieces of fixed length, found in the name in turn: the first
    at its start, the last at its end, each between at the first place it fits after the one
    before (a later place never leaves more room). One regular expression of the whole mask
    backtracked exponentially: a WHO of 65 stars and a letter held the server's one thread
    for minutes. A mask of more than MAX_MASK_PIECES pieces between its stars matches nobody,
    so a WHO's work stays a small multiple of its names."""
    parts = fold(mask).split("*")
    if len(parts) == 1:                 # no star: the whole name, or nothing
        whole = _piece(parts[0])
        return lambda name: whole.fullmatch(fold(name)) is not None
    first, last = _piece(parts[0]), _piece(parts[-1])
    middle = [_piece(part) for part in parts[1:-1] if part]   # (stars side by side: one)
    if len(middle) > MAX_MASK_PIECES:
        return lambda name: False
    last_length = len(parts[-1])

    def matches(name):
        name = fold(name)
        found = first.match(name)
        if found is None:
            return False
        at = found.end()
        for piece in middle:
            found = piece.search(name, at)
            if found is None:
                return False
            at = found.end()
        last_at = len(name) - last_length
        return last_at >= at and last.fullmatch(name, last_at) is not None
    return matches


def _piece(part):
    """A mask's piece between stars as a pattern: `?` any one character, the rest as is (no
    repetition: nothing to backtrack)."""
    return re.compile("".join("." if char == "?" else re.escape(char) for char in part), re.S)
