"""The wire format's encoder: a numbered delivery's line, made from one encoding per message,
is exactly what encoding the frame itself gives."""
import json

import pytest

import protocol

MESSAGES = [
    {"type": "broadcast", "from": "alice", "text": "hi"},
    {"type": "message", "from": "bob", "text": "\"quoted\" \\ back\nslash ☃ \u2028 \x00", "ref": "p-1"},
    {"type": "message", "from": "名前", "text": "x" * 4000},
]


@pytest.mark.parametrize("frame", MESSAGES)
@pytest.mark.parametrize("seq, offline", [(1, False), (2**53, True), (7, False)])
def test_a_numbered_frame_encodes_as_the_plain_frame_would(frame, seq, offline):
    numbered = protocol.Numberer(frame)(seq, offline)
    plain = {**frame, "seq": seq, **({"offline": True} if offline else {})}
    assert numbered == plain
    assert protocol.encode(numbered) == protocol.encode(dict(plain))
    assert protocol.decode(protocol.encode(numbered)) == plain
    assert frame == MESSAGES[MESSAGES.index(frame)] and "seq" not in frame   # not changed


def test_copies_of_one_message_differ_only_in_their_numbers():
    make = protocol.Numberer(MESSAGES[0])
    lines = [protocol.encode(make(seq)) for seq in (5, 6)]
    assert [json.loads(line)["seq"] for line in lines] == [5, 6]
    assert lines[0].replace(b"5", b"6") == lines[1]


def test_a_name_may_hold_no_control_format_or_space_character_of_any_kind():
    """The fast check (isprintable, and no " ") is the per-character rule, for every code point."""
    allowed = [chr(code) for code in range(0x110000)
               if chr(code).isprintable() and not chr(code).isspace()]
    refused = {chr(code) for code in range(0x110000)} - set(allowed)
    for char in ("a", "é", "名"):
        assert protocol.name_field({"user": f"x{char}y"}, "user", 64) == f"x{char}y"
    accepted = [char for char in refused if _accepts(f"x{char}y")]
    assert accepted == [] and all(_accepts(char) for char in allowed[::97])


def _accepts(name):
    try:
        protocol.name_field({"user": name}, "user", 64)
        return True
    except protocol.FrameError:
        return False


# The decoder's fast path (the C scanner alone) must accept and refuse exactly what
# json.loads does: blanks, a terminal's "\r", trailing data, a BOM, deep nesting.
LINES = [
    '{"type":"message","to":"bob","text":"hi","id":1}',
    ' {"type":"a"}', '{"type":"a"} ', '{"type":"a"}\r', '\t{"type":"a"}\r',
    '{"type":"a"}{"type":"b"}', '{"type":"a"},{"type":"b"}', '{"type":"a"} x',
    '{"type":"a"', '"type"', '123', '1e400', 'NaN', '[1, 2]', 'null', '',
    '\ufeff{"type":"a"}', '{"type":"\\ud800"}', '{"a":1,"a":2,"type":"t"}',
    '[' * 100000, '{"type":' + '[' * 100000,
]


def _outcome(parse, text):
    try:
        return ("value", repr(parse(text)))
    except (ValueError, RecursionError) as exc:
        return ("refused", type(exc).__name__)


@pytest.mark.parametrize("text", LINES, ids=range(len(LINES)))
def test_the_fast_parse_is_json_loads(text):
    assert _outcome(protocol._parse, text) == _outcome(json.loads, text)


@pytest.mark.parametrize("frame", MESSAGES + [
    {"type": "ok", "stored": False, "id": 12345}, {"type": "online", "users": ["a", "b"]},
    {"type": "error", "code": "x", "message": "m", "id": "s-1", "n": 1.5, "none": None}])
def test_encoding_is_compact_json_of_the_frame(frame):
    line = protocol.encode(frame)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert line == (json.dumps(frame, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
