"""The wire format's encoder and field checks: a stored line, made from one encoding per
message, is exactly what encoding the frame itself gives."""
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
def test_a_stored_line_is_the_frame_encoded_with_its_number_appended(frame, seq, offline):
    """The store appends the number to line_head's bytes; the line decodes to the frame."""
    frame = {**frame, **({"offline": True} if offline else {})}
    wire = protocol.line_head(frame) + b',"seq":%d}\n' % seq
    plain = {**frame, "seq": seq}
    assert protocol.encode(dict(plain)) == wire
    numbered = protocol.Numbered(frame, seq=seq)      # as reach.py makes one
    numbered.wire = wire
    assert numbered == plain and protocol.encode(numbered) is wire
    assert protocol.numbered_line(wire) == plain and protocol.numbered_line(wire).wire is wire
    assert "seq" not in frame                    # not changed


@pytest.mark.parametrize("mid, parsed", [
    ("abc-1", ("abc", 1)), ("a-b-c-42", ("a-b-c", 42)), (f"c-{2**53 - 1}", ("c", 2**53 - 1)),
    (None, None)])
def test_a_mid_is_a_client_id_and_a_number(mid, parsed):
    assert protocol.mid_field({} if mid is None else {"mid": mid}) == parsed


@pytest.mark.parametrize("mid", ["m1", "-1", "c-0", "c-", f"c-{2**53}", "c-+1", "c- 1", "c-١",
                                 "c-" + "1" * 70, 7, ""])
def test_a_mid_in_any_other_form_is_refused_with_the_form_it_must_take(mid):
    with pytest.raises(protocol.FrameError, match="client id"):
        protocol.mid_field({"mid": mid})


def test_a_name_may_hold_no_control_format_or_space_character_of_any_kind():
    """The fast check (isprintable, and no " ") is the per-character rule, for every code point."""
    allowed = [chr(code) for code in range(0x110000)
               if chr(code).isprintable() and not chr(code).isspace()]
    refused = {chr(code) for code in range(0x110000)} - set(allowed)
    for char in ("a", "é", "名"):
        assert protocol.name_field({"user": f"x{char}y"}, "user", 64) == f"x{char}y"
    accepted = [char for char in refused if _accepts(f"x{char}y")]
    assert accepted == [] and all(_accepts(char) for char in allowed[::97])
    # the client's check (commands.refusal) is the same rule as the server's
    assert not any(protocol.name_chars_ok(f"x{char}y") for char in refused)
    assert all(protocol.name_chars_ok(char) for char in allowed[::97])


def _accepts(name):
    try:
        protocol.name_field({"user": name}, "user", 64)
        return True
    except protocol.FrameError:
        return False


# The decoder's fast path (the C scanner alone) must accept and refuse exactly what
# json.loads does: blanks, a terminal's "\r", trailing data, a BOM, deep nesting (and a
# test at the end says so).
LINES = [
    '{"type":"message","to":"bob","text":"hi","id":1}',
    ' {"type":"a"}', '{"type":"a"} ', '{"type":"a"}\r', '\t{"type":"a"}\r',
    '{"type":"a"}{"type":"b"}', '{"type":"a"},{"type":"b"}', '{"type":"a"} x',
    '{"type":"a"', '"type"', '123', '1e400', 'NaN', '[1, 2]', 'null', '',
    '\ufeff{"type":"a"}', '{"type":"\\ud800"}', '{"a":1,"a":2,"type":"t"}',
    '[' * 100000, '{"type":' + '[' * 100000,
    '{"type":"a","x":NaN}', ' {"type":"a","x":Infinity}', '{"type":"a","x":-Infinity}\r',
]


def _no_constants(name):
    raise ValueError(f"{name} is no JSON")


@pytest.mark.parametrize("frame", MESSAGES + [
    {"type": "ok", "stored": False, "id": 12345}, {"type": "online", "users": ["a", "b"]},
    {"type": "error", "code": "x", "message": "m", "id": "s-1", "n": 1.5, "none": None}])
def test_encoding_is_compact_json_of_the_frame(frame):
    line = protocol.encode(frame)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert line == (json.dumps(frame, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@pytest.mark.parametrize("text", LINES, ids=range(len(LINES)))
def test_decode_takes_and_refuses_what_json_loads_does(text):
    """A frame is what json.loads makes of the line (decode reads the usual one faster), but
    for a lone surrogate, which no UTF-8 carries, a byte order mark first, dropped, and NaN
    and Infinity, which Python reads but JSON has not (a student's client that sent NaN was
    answered ok)."""
    try:
        value = json.loads(text.removeprefix("\ufeff"), parse_constant=_no_constants)
        expected = value
        if not isinstance(value, dict):
            expected = "not_object"
        elif not isinstance(value.get("type"), str):
            expected = "bad_field"
        else:
            try:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                expected = "bad_utf8"
    except (ValueError, RecursionError):
        expected = "bad_json"
    try:
        got = protocol.decode(text.encode("utf-8", "surrogatepass"))
    except protocol.FrameError as exc:
        got = exc.code
    assert got == expected


def test_nan_and_infinity_are_refused_as_bad_json_saying_why():
    with pytest.raises(protocol.FrameError) as refused:
        protocol.decode(b'{"type":"check_user","user":"a","id":NaN}')
    assert (refused.value.code, str(refused.value)) == ("bad_json", "NaN is not a JSON number")


def test_a_frame_after_a_byte_order_mark_is_read_and_a_number_too_long_is_said():
    """(a trial's editor-saved frame began with a BOM; 5,000 digits are valid JSON that
    Python will not read, and were called "not valid JSON")"""
    assert protocol.decode(b'\xef\xbb\xbf{"type":"online"}') == {"type": "online"}
    with pytest.raises(protocol.FrameError, match="a number in it is too long to read"):
        protocol.decode(b'{"type":"online","id":' + b"9" * 5000 + b"}")


ODD_STRINGS = ["", "hi", "\"quoted\" \\ back\nslash ☃ \u2028 \x00 \x1f \x7f", "名前", "😀",
               "</script>", "x" * 4000, "a\tb\rc\bd\fe"]


@pytest.mark.parametrize("kind", ["message", "broadcast"])
@pytest.mark.parametrize("text", ODD_STRINGS)
@pytest.mark.parametrize("notice, offline", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_a_chat_head_from_its_template_is_the_line_head_of_its_frame(kind, text, notice,
                                                                      offline):
    for sender in ("alice", "名前", 'a"b\\c'):
        frame = {"type": kind, "from": sender, "text": text}
        if notice:
            frame["notice"] = True
        if offline:
            frame["offline"] = True
        assert protocol.chat_head(kind, sender, text, notice, offline) == \
            protocol.line_head(frame)


def test_the_chat_heads_made_once_per_sender_are_bounded(monkeypatch):
    monkeypatch.setattr(protocol, "_HEAD_STARTS", {"message": {}, "broadcast": {}})
    monkeypatch.setattr(protocol, "_HEAD_STARTS_MAX", 2)
    for sender in ("ann", "bo", "cy", "ann", "di"):
        frame = {"type": "message", "from": sender, "text": "hi"}
        assert protocol.chat_head("message", sender, "hi") == protocol.line_head(frame)
        assert len(protocol._HEAD_STARTS["message"]) <= 2
    assert protocol._HEAD_STARTS["broadcast"] == {}


def test_a_chat_head_with_a_lone_surrogate_fails_as_the_encoder_does():
    """(JSON may carry "\\ud800"; UTF-8 cannot: both ways refuse it the same way)"""
    frame = {"type": "message", "from": "a", "text": "\ud800"}
    with pytest.raises(UnicodeEncodeError):
        protocol.line_head(frame)
    with pytest.raises(UnicodeEncodeError):
        protocol.chat_head("message", "a", "\ud800")


ODD_IDS = [0, 1, -1, 7, 2**53 - 1, -(2**53 - 1), 10**30, -10**30, *ODD_STRINGS,
           1.5, -0.0, 1e300, True, False, None, [1], {"a": 1}]


@pytest.mark.parametrize("frame_id", ODD_IDS, ids=range(len(ODD_IDS)))
@pytest.mark.parametrize("stored", [False, True, 0, None])
def test_a_reply_from_its_template_is_what_the_encoder_writes(frame_id, stored):
    """The reply to a message, {"type":"ok","stored":...,"id":...}, has a template for an
    int or string id; every id and every other shape encodes exactly as json does."""
    shapes = [{"type": "ok", "stored": stored, "id": frame_id},
              {"type": "ok", "id": frame_id, "stored": stored},         # another order
              {"type": "error", "stored": stored, "id": frame_id},
              {"type": "ok", "stored": stored},
              {"type": "ok", "stored": stored, "id": frame_id, "x": 1},
              {"type": "ok", "id": frame_id}, {"id": frame_id, "type": "ok"},
              {"type": "error", "id": frame_id}]
    for frame in shapes:
        assert protocol.reply_line(frame) == protocol.encode(frame) == (json.dumps(
            frame, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


@pytest.mark.parametrize("line", [rb'{"type":"message","text":"\ud800"}',
                                  rb'{"type":"message","text":"a\uDFFFb"}',
                                  rb'{"type":"heartbeat","id":"\udc00"}',
                                  rb'{"type":"x","\ud800":1}'])
def test_a_lone_surrogate_escape_is_refused_as_not_text(line):
    """Valid JSON, but no UTF-8 carries it: refused as the frame arrives, not when a reply or
    a stored line made from it fails to encode."""
    with pytest.raises(protocol.FrameError) as refused:
        protocol.decode(line)
    assert refused.value.code == "bad_utf8"


def test_a_surrogate_pair_escape_is_one_character():
    assert protocol.decode(rb'{"type":"message","text":"\ud83d\ude00"}')["text"] == "😀"


@pytest.mark.parametrize("text", ODD_STRINGS)
def test_decode_own_reads_back_what_encode_wrote(text):
    frame = {"type": "message", "from": "名前", "text": text, "seq": 2**53 - 1,
             "at": 1764979200.123, "offline": True, "changes": [["a", True], ["b", False]]}
    line = protocol.encode(frame)
    assert protocol.decode_own(line) == protocol.decode_own(line.rstrip(b"\n")) == frame


@pytest.mark.parametrize("value", ["yes", 1, 0, None, [True]])
def test_a_flag_is_true_or_false_or_bad_field(value):
    assert protocol.flag_field({"f": True}, "f") is True
    assert protocol.flag_field({}, "f", False) is False          # absent: the default
    with pytest.raises(protocol.FrameError) as refused:
        protocol.flag_field({"f": value}, "f", False)
    assert (refused.value.code, str(refused.value)) == ("bad_field", "'f' must be true or false")
    with pytest.raises(protocol.FrameError):
        protocol.flag_field({}, "f")                             # required: no default


def test_a_frame_too_deep_to_write_again_with_a_surrogate_escape_is_bad_json():
    """(a fuzzer's: 985 levels with an emoji's escape in them were read, then overflowed the
    stack at the check for lone surrogates: no answer, and a traceback in the log)"""
    refused = 0
    for depth in range(900, 1000, 3):
        line = (b'{"type":"check_user","x":' + b"[" * depth + rb'"\ud83d\ude00"'
                + b"]" * depth + b"}")
        try:
            frame = protocol.decode(line)
        except protocol.FrameError as exc:
            assert exc.code == "bad_json"
            refused += 1
        else:
            protocol.encode(frame)              # what is taken can be written again
    assert refused                              # (the deepest are refused)


@pytest.mark.parametrize("line, code, frame_id", [
    (b'{"type":5,"id":"C"}', "bad_field", "C"),
    (rb'{"type":"check_user","user":"\ud800","id":"C"}', "bad_utf8", "C"),
    (rb'{"type":"check_user","user":"\ud800","id":"\udc00"}', "bad_utf8", None),
    (rb'{"type":5,"id":"\udc00"}', "bad_field", None),
    (b'[1]', "not_object", None)])
def test_a_refused_frame_keeps_the_id_it_was_read_with(line, code, frame_id):
    with pytest.raises(protocol.FrameError) as refused:
        protocol.decode(line)
    assert (refused.value.code, refused.value.frame_id) == (code, frame_id)


@pytest.mark.parametrize("text", ['{"type":"x","a":[1,1,]}', '{"type":"x"', '{"type":"x",}',
                                  '{"type":"x","n":1' + "2" * 5000 + '}', "[" * 100000,
                                  '{"type":"x", "a": nul}', '{"type":"x","a":[1,1,1,1,]}'],
                         ids=range(7))
def test_json_bad_from_its_first_character_is_read_once(text, monkeypatch):
    """Read again by json.loads, a fuzzer's 64 KB frames, bad at their end, cost the one
    thread twice: json.loads would fail on them the same way, from the same character."""
    with pytest.raises((ValueError, RecursionError)):
        json.loads(text)
    monkeypatch.setattr(protocol.json, "loads", lambda text: pytest.fail("read twice"))
    with pytest.raises(protocol.FrameError) as refused:
        protocol.decode(text.encode())
    assert refused.value.code == "bad_json"


@pytest.mark.parametrize("text", [' {"type":"x"}', '{"type":"x"} ', '\ufeff{"type":"x"}',
                                  '{"type":"x"}\r', '\t{"type":"x"}\n'])
def test_json_with_blanks_or_a_byte_order_mark_around_it_is_still_read(text):
    assert protocol.decode(text.encode()) == {"type": "x"}
