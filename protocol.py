"""The wire format shared by server, client and peers: JSON Lines.

One UTF-8 JSON object per line, ended by b"\\n", at most MAX_FRAME_BYTES long.
Every frame has a string "type"; a request may carry an "id" that its reply
repeats; an error is {"type": "error", "code": ..., "message": ...}.
PROTOCOL.md describes every frame; this module only encodes and checks them, and makes and
checks the proofs of the delivery handshake (mac, delivery_hello, delivery_proven).
"""
import hashlib
import hmac
import json
import json.encoder

MAX_FRAME_BYTES = 64 * 1024        # the longest frame, newline included
MAX_NAME_CHARS = 64                # a user name
MAX_TEXT_CHARS = 4000              # a message's text (the server's limit; the client checks first)
MAX_ID_CHARS = 64                  # a client's id for a message (mid), or a request id
MAX_REASON_CHARS = 300             # the words a user leaves with (an IRC QUIT message)
# client.py's heartbeat at its most often: each is a request, and faster ate a user's 20 a
# second (a trial's 0.01); a server's time-out under twice this ends its sessions
MIN_HEARTBEAT_S = 0.5
UNAVAILABLE_RETRY_S = 1            # an `unavailable` answer tells a client to retry after this
CONSENT_S = 60.0                   # a getaddress waits this long for its answer (by default)
MAX_SEQ = 2 ** 53 - 1              # the highest message number: exact in every JSON reader,
                                   # and in SQLite's 64-bit integers

# Stable machine-readable error codes, with the text a person reads.
ERRORS = {
    "too_long": f"frame longer than {MAX_FRAME_BYTES} bytes; it was discarded",
    "bad_utf8": "frame is not valid UTF-8",
    "bad_json": "frame is not valid JSON",
    "not_object": "frame is not a JSON object",
    "unknown_type": "unknown frame type",
    "bad_field": "a field is missing or has the wrong type",
    "no_session": "your session has ended; log in again",
    "unknown_user": "no such user",
    "wrong_password": "wrong password",
    "too_many_attempts": "too many wrong passwords; the name is blocked for a while",
    "locked": "this name is blocked for a while; try again later",
    "already_logged_in": "this connection carries a session already; log out first",
    "self": "you cannot do that to yourself",
    "blocked": "the recipient has blocked you",
    "already_blocked": "that user is already blocked",
    "not_blocked": "that user is not blocked",
    "offline": "that user is not online",
    "already_asked": "you already asked that user; wait for the answer",
    "no_request": "that user has no address request waiting for your answer",
    "not_allowed": "no valid consent: private messages are refused",
    "slow_down": "too many requests; slow down and try again later",
    "unavailable": "the server cannot store anything just now; try again later",
    "inbox_full": "too many messages already wait for that user",
    "store_full": "the server keeps as many messages as it can; try again later",
    "old_mid": "that message number is too far below the highest your client has sent to tell "
               "whether it was taken; send the message again under a new number",
    "too_slow": "no complete frame in time; the connection is closed",
    "tls_required": "this port speaks TLS: connect with TLS (client.py --tls, or --cafile "
                    "FILE for a certificate of the server's own), or to another port",
}


class FrameError(Exception):
    """A frame that cannot be understood; `code` is one of ERRORS. `frame_id`: the frame's
    "id", where it was read (a JSON object whose type or text is wrong), for the answer."""

    def __init__(self, code, detail="", frame_id=None):
        super().__init__(detail or ERRORS[code])
        self.code = code
        self.frame_id = frame_id


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# JSONEncoder.encode builds a C encoder on every call; one built once takes half the time
# (0.7 µs against 1.3 for a reply). Frames are made here, never cyclic: no cycle markers.
_c_encoder = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)


def encode_text(frame):
    """dict -> its JSON text, compact, without the newline."""
    if _c_encoder is None:
        return _encoder.encode(frame)       # a Python without the json accelerator
    return "".join(_c_encoder(frame, 0))


def encode(frame):
    """dict -> one line of bytes, newline included."""
    if type(frame) is Numbered:
        return frame.wire
    return (encode_text(frame) + "\n").encode("utf-8")


class Numbered(dict):
    """A stored message as delivered: the frame with its "seq" (and "offline": true when it
    waited for a login), carrying its line. One object serves every recipient: a broadcast
    to a hundred users is encoded once, and each gets the identical bytes."""
    __slots__ = ("wire",)


def line_head(frame):
    """A frame's line without its closing brace (bytes), for the store to append the number:
    any frame's, by the encoder. The server makes its chat messages' with chat_head's templates
    instead (faster); this is the reference the tests hold those to, and their way to a head."""
    return encode_text(frame)[:-1].encode("utf-8")


# A chat message's line and the usual replies, from templates: what the C encoder writes for
# these shapes, in a fraction of its time. Strings go through the encoder's own string
# function, so every escape is the same; numbers are ints, whose JSON is their repr.
_encode_string = json.encoder.encode_basestring
_FLAGS = (b"", b',"offline":true', b',"notice":true', b',"notice":true,"offline":true')
_HEAD_STARTS = {"message": {}, "broadcast": {}}     # kind -> sender -> the head up to the text
_HEAD_STARTS_MAX = 100_000          # senders are accounts: a bound that no real room reaches


def chat_head(kind, sender, text, notice=False, offline=False):
    """line_head of {"type": kind, "from": sender, "text": text}, with "notice": true and
    "offline": true after it when set (in that order): the head of a message or broadcast.
    `kind` is "message" or "broadcast"; sender and text are strings. What comes before the
    text is made once per sender (a head 1.0 -> 0.5 us on a slow hour here)."""
    starts = _HEAD_STARTS[kind]
    start = starts.get(sender)
    if start is None:
        if len(starts) >= _HEAD_STARTS_MAX:
            starts.clear()
        start = starts[sender] = ('{"type":"%s","from":%s,"text":'
                                  % (kind, _encode_string(sender))).encode("utf-8")
    head = start + _encode_string(text).encode("utf-8")
    return head + _FLAGS[2 * notice + offline] if notice or offline else head


OK_STORED_LINES = {False: b'{"type":"ok","stored":false,"id":%d}\n',
                   True: b'{"type":"ok","stored":true,"id":%d}\n'}  # % a whole-number id
OK_SKIPPED_LINE = b'{"type":"ok","skipped":%d,"id":%d}\n'     # a broadcast's, % (skipped, id)
_OK_STORED_TEXT = {False: '{"type":"ok","stored":false,"id":%s}\n',
                   True: '{"type":"ok","stored":true,"id":%s}\n'}
_OK_STORED_KEYS = ("type", "stored", "id")
_OK_KEYS = ("type", "id")
_OK_LINE = b'{"type":"ok","id":%d}\n'          # a heartbeat's, a logout's, a block's


def reply_line(frame):
    """A reply (dict) -> its line (bytes, newline included), as encode gives it. Two shapes,
    keys in this order, come from templates: a plain yes, {"type": "ok", "id": int}, and the
    reply to a message, {"type": "ok", "stored": bool, "id": int or str} (OK_STORED_LINES,
    which the core also uses itself); any other frame from the encoder."""
    if len(frame) == 2 and tuple(frame) == _OK_KEYS and frame["type"] == "ok" and type(
            frame["id"]) is int:
        return _OK_LINE % frame["id"]
    if len(frame) == 3 and tuple(frame) == _OK_STORED_KEYS and frame["type"] == "ok":
        stored, frame_id = frame["stored"], frame["id"]
        if type(stored) is bool:
            if type(frame_id) is int:
                return OK_STORED_LINES[stored] % frame_id
            if type(frame_id) is str:
                return (_OK_STORED_TEXT[stored] % _encode_string(frame_id)).encode("utf-8")
    if _c_encoder is None:
        return (_encoder.encode(frame) + "\n").encode("utf-8")
    return ("".join(_c_encoder(frame, 0)) + "\n").encode("utf-8")   # (encode, inline)


class _NotJSON(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, but they are no JSON."""


def _refuse_constant(name):
    raise _NotJSON(name)


# (a student's client sending NaN was answered ok, and would fail against any other server)
_decoder = json.JSONDecoder(parse_constant=_refuse_constant)
_scan = _decoder.scan_once


def decode_own(line):
    """A line this server encoded (bytes, one JSON object, its newline included or not) ->
    its dict: none of decode's checks, which a line of our own passes (the IRC link reads the
    core's replies and deliveries back so, and the store's lines are read back so, in a third
    of json.loads's time)."""
    return _scan(line.decode("utf-8"), 0)[0]


def numbered_line(wire):
    """A stored line (bytes) read back -> its Numbered form."""
    message = Numbered(decode_own(wire))
    message.wire = wire
    return message


def _bad_json(exc):
    """The FrameError for JSON that could not be read (the scanner's ValueError,
    RecursionError or StopIteration inside a value).
    RecursionError: "[[[[..." nested deeper than the parser's stack (the fuzzer found it); a
    number of thousands of digits is valid JSON Python will not read."""
    if isinstance(exc, _NotJSON):
        return FrameError("bad_json", f"{exc} is not a JSON number")
    return FrameError("bad_json", "a number in it is too long to read" if
                      "integer string conversion" in str(exc) else "")


def decode(line):
    """One line of bytes (without or with its newline) -> dict with a str "type".

    Raises FrameError with the code that says what is wrong.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("bad_utf8") from None
    # json.loads, in a third of its time for a frame that is one JSON value exactly (the
    # usual case): the C scanner alone, without json.loads's Python layers. JSON bad from its
    # first character is refused where the scanner stops, as json.loads would refuse it;
    # anything else (blanks or a byte order mark before it, a "\r" from a terminal or more
    # after it) goes to the decoder's whole reading, which decides: what is accepted and
    # refused is exactly what json.loads does, but for NaN and Infinity, which are no JSON.
    try:
        frame, end = _scan(text, 0)
    except StopIteration as missing:
        if missing.value:
            # (a value missing inside one begun at its first character: `[1,]`) as below
            raise _bad_json(missing) from None
        end = None          # (no value at its first character: blanks, a byte order mark)
    except (ValueError, RecursionError) as exc:
        # a value began at its first character and is bad: json.loads would read it from
        # there too, and fail the same way (read again, a fuzzer's 64 KB frames bad at their
        # end cost the one thread twice their 2.6 ms each)
        raise _bad_json(exc) from None
    if end != len(text):
        try:
            # (a byte order mark first: an editor on Windows saved the frame so, and a trial's
            # was refused as bad JSON)
            frame = _decoder.decode(text[1:] if text.startswith("\ufeff") else text)
        except (ValueError, RecursionError) as exc:
            raise _bad_json(exc) from None
    if not isinstance(frame, dict):
        raise FrameError("not_object")
    escaped = "\\ud" in text or "\\uD" in text
    if not isinstance(frame.get("type"), str):
        raise FrameError("bad_field", "every frame needs a string 'type'",
                         _id_to_repeat(frame, escaped))
    if escaped:
        unwritable = _unwritable(frame)
        if unwritable is not None:
            raise FrameError(*unwritable, _id_to_repeat(frame, escaped))
    return frame


def _id_to_repeat(frame, escaped):
    """A refused frame's "id", for its answer (a client matches replies by it), unless the
    line's surrogate escapes (`escaped`) leave it unwritable."""
    frame_id = frame.get("id")
    return None if escaped and _unwritable(frame_id) is not None else frame_id


def _unwritable(value):
    """(code, detail) if `value` cannot be written again as a line, else None: a string in
    it holds a lone surrogate ("\\ud800" alone is valid JSON, but no UTF-8 can carry it:
    every line made from it would fail to encode, far from here), or it is nested too deeply
    to be written (valid JSON just shallow enough to be read, with such an escape: a fuzzer's
    RecursionError, and no answer). Asked only of a line with such an escape in it: a pair,
    an emoji say, is one character."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "bad_utf8", "a \\u escape of half a surrogate pair is not text"
    except RecursionError:
        return "bad_json", "nested too deeply"
    return None


def decoded(line):
    """A received frame's bytes -> dict; a bad frame becomes the error frame that names it
    (for a reader that has no one to answer, such as a client reading the server)."""
    try:
        return decode(line)
    except FrameError as exc:
        return error(exc.code, detail=str(exc))


# Close reasons as a person reads them (reactor.py gives short ones).
NOT_OURS = "its answer was not the chat server's"
_REASON_WORDS = {"eof": "the connection closed before a reply"}
_UNREADABLE = ("bad_json", "not_object", "bad_utf8")     # an answer in no dialect of ours


def foreign(frame):
    """True if a frame the server sent, as `decoded` gave it, was no frame of this protocol at
    all: another program listens at that port (a web server, or the IRC port)."""
    return frame.get("type") == "error" and frame.get("code") in _UNREADABLE and "id" not in frame


def reason_text(reason):
    """A reactor close reason -> words for the user: "eof" says what it means."""
    return _REASON_WORDS.get(reason, reason)


def whole(seconds):
    """30.0 -> 30, so durations read naturally on the wire and in logs."""
    return int(seconds) if seconds == int(seconds) else seconds


def error(code, frame_id=None, detail=""):
    """An error frame for `code`, repeating the request's id when it had one."""
    reply = {"type": "error", "code": code, "message": detail or ERRORS[code]}
    if frame_id is not None:
        reply["id"] = frame_id
    return reply


def text_field(frame, name, max_chars=None):
    """frame[name] if it is a non-empty string (at most max_chars), else FrameError."""
    value = frame.get(name)
    if not isinstance(value, str) or not value:
        raise FrameError("bad_field", f"'{name}' must be a non-empty string")
    if max_chars is not None and len(value) > max_chars:
        raise FrameError("bad_field", f"'{name}' is longer than {max_chars} characters")
    return value


def name_field(frame, name, max_chars=MAX_NAME_CHARS):
    """frame[name] if it could be a user name: text_field, and no control, format or space
    characters (a NUL or an escape in a name is refused, not looked up), else FrameError."""
    value = text_field(frame, name, max_chars)
    if not value.isprintable() or " " in value:     # (name_chars_ok, inline: the hot path)
        raise FrameError("bad_field", f"'{name}' must not hold control characters or spaces")
    return value


def name_chars_ok(value):
    """True if `value` holds no control, format or space character, as a user name must: the
    client checks a name with this before it sends one; name_field keeps the same rule inline
    (every request with a name passes there, and a call per request is counted)."""
    # str.isprintable() is False for every space but " " (Unicode separators are not
    # printable), so this is "no control, format or space character", in C, not per char
    return value.isprintable() and " " not in value


def mid_field(frame):
    """frame["mid"] -> (client id, number), or None if absent; else FrameError. A mid is
    "<client id>-<number>": each run of a client has its own id and numbers its messages
    1, 2, 3 ... (PROTOCOL.md, "Guaranteed delivery")."""
    value = frame.get("mid")
    if value is None:
        return None
    if isinstance(value, str) and 2 < len(value) <= MAX_ID_CHARS:
        client, _, number = value.rpartition("-")
        if client and number.isascii() and number.isdigit():
            number = int(number)        # (once: every message with a mid comes this way)
            if 0 < number <= MAX_SEQ:
                return client, number
    raise FrameError("bad_field", f"'mid' must be \"<client id>-<number>\", at most "
                                  f"{MAX_ID_CHARS} characters, the number from 1 to {MAX_SEQ}")


def flag_field(frame, name, default=None):
    """frame[name] if it is true or false (`default` when absent), else FrameError."""
    value = frame.get(name, default)
    if type(value) is not bool:
        raise FrameError("bad_field", f"'{name}' must be true or false")
    return value


def int_field(frame, name, lowest, highest):
    """frame[name] if it is a whole number from `lowest` to `highest`, else FrameError: a number
    from the wire is bounded here, before anything deeper (SQLite, say) can choke on it."""
    value = frame.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise FrameError("bad_field", f"'{name}' must be a whole number from {lowest} to {highest}")
    return value


# A delivery connection's handshake (PROTOCOL.md): the server proves the session's key for the
# listener's nonce, and the listener proves it back for the server's.
DELIVERY_SERVER_LABEL = "chat-delivery-server"
DELIVERY_CLIENT_LABEL = "chat-delivery-client"


def mac(key, label, *parts):
    """The proof that one knows `key`, over `label` and `parts` (strings): hex HMAC-SHA256 of
    "label|part|part...". The label keeps a proof made for one purpose from serving another."""
    message = "|".join((label, *parts)).encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def mac_ok(key, given, label, *parts):
    """True if `given` is mac(key, label, *parts), compared in constant time."""
    if not isinstance(given, str) or not isinstance(key, str):
        return False
    return hmac.compare_digest(given.encode("utf-8"), mac(key, label, *parts).encode("utf-8"))


# An address's peer key, as delivered to a listening port in plain TCP: sealed with the session's
# proof, which only crossed inside the login's (TLS) reply (PROTOCOL.md, "Peer to peer")
ADDRESS_KEY_LABEL = "chat-address-key"


def _pad(key, label, parts, size):
    """`size` bytes only one who knows `key` can make for (label, parts): HMAC-SHA256 blocks."""
    blocks, n = b"", 0
    while len(blocks) < size:
        n += 1
        blocks += bytes.fromhex(mac(key, label, *parts, str(n)))
    return blocks[:size]


def seal(secret, key, label, *parts):
    """`secret` (ASCII text) hidden from all but those who know `key` -> hex: XOR with a pad
    of `key`'s over `label` and `parts`, which must never repeat for one key (a counter)."""
    data = secret.encode("ascii")
    return bytes(a ^ b for a, b in zip(data, _pad(key, label, parts, len(data)))).hex()


def unseal(sealed, key, label, *parts):
    """seal's inverse -> the secret, or None if `sealed` is no sealed text of a secret's size
    (MAX_ID_CHARS at most), or does not open to printable ASCII with `key`."""
    if not isinstance(sealed, str) or not 0 < len(sealed) <= 2 * MAX_ID_CHARS:
        return None
    try:
        data = bytes.fromhex(sealed)
    except ValueError:
        return None
    secret = bytes(a ^ b for a, b in zip(data, _pad(key, label, parts, len(data))))
    text = secret.decode("latin-1")
    return text if text.isascii() and text.isprintable() and " " not in text else None


def nonce_field(frame, name="nonce"):
    """frame[name] if it can be a challenge's nonce (1 to MAX_ID_CHARS characters), else None."""
    value = frame.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS else None


# -- the delivery handshake, which proves the session both ways (PROTOCOL.md, "Delivery") -----

def delivery_hello(user, key, line, our_nonce, head):
    """The listener's first line, its challenge -> our hello for `user`'s session, which proves
    the session's `key` for its nonce and says the highest number given so far (`head`); None
    if the line is no challenge. -> (hello, the listener's nonce)."""
    frame = decoded(line)
    theirs = nonce_field(frame) if frame["type"] == "challenge" else None
    if theirs is None:
        return None
    proof = mac(key, DELIVERY_SERVER_LABEL, user, theirs, our_nonce, str(head))
    return {"type": "hello", "user": user, "nonce": our_nonce, "head": head,
            "mac": proof}, theirs


def delivery_proven(key, line, their_nonce, our_nonce):
    """The listener's answer to our hello -> True if it proves the session's `key` back: only
    then is anything delivered to it (a process that took a dead client's port cannot)."""
    frame = decoded(line)
    return frame["type"] == "ok" and mac_ok(key, frame.get("mac"), DELIVERY_CLIENT_LABEL,
                                            their_nonce, our_nonce)
