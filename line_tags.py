"""Every line after a handshake proves who wrote it: a tag on each, both ways.

A delivery connection (the server's, to a client's listening port) and a peer's link (to another
client's) begin with a challenge and response in both directions, keyed by a secret the two ends
share (PROTOCOL.md). That proves who is at each end when the connection begins, not that what
follows comes from them: in plain TCP, someone who can change packets on the way could add or
alter a frame after the handshake (a forged delivery numbered far ahead has the client take the
real ones after it as repeats, acknowledged and never shown; a forged `ack`, the server forget a
message as delivered). So from the handshake on, every line in each direction ends with a tag:

    {...,"tag":"<32 lowercase hex>"}

tag = the first 16 bytes of HMAC-SHA256(line key, direction "|" count "|" the line untagged),
where the line untagged is the line with `,"tag":"..."` taken out (it ends with `}`), `count`
is the line's number in its direction from 0 (decimal), the direction is `to-listener` or
`to-dialer`, and the line key is HMAC-SHA256(the secret, "chat-lines|" listener's nonce "|"
dialer's nonce), the nonces being the two the handshake exchanged. A line added, dropped,
altered, replayed or moved fails its tag, and the reader closes the connection: what it carried
and was not acknowledged goes again (deliveries) or is reported (private messages).
"""
import hmac

KEY_LABEL = b"chat-lines"
TO_LISTENER, TO_DIALER = b"to-listener", b"to-dialer"
TAG_BYTES = 16
_OPEN = b',"tag":"'
_CLOSE = b'"}'
_TAGGED_END = len(_OPEN) + 2 * TAG_BYTES + len(_CLOSE)     # what a tag adds to a line, and "}"


class LineTags:
    """One connection's tags, from its handshake on: `tag` what we send, `untag` what we read.
    `secret` is the handshake's key (text); `dialer`: we opened the connection."""
    __slots__ = ("_key", "_out", "_in", "_sent", "_read")

    def __init__(self, secret, listener_nonce, dialer_nonce, dialer):
        self._key = hmac.digest(secret.encode("utf-8"), b"|".join(
            (KEY_LABEL, listener_nonce.encode("utf-8"), dialer_nonce.encode("utf-8"))), "sha256")
        self._out, self._in = (TO_LISTENER, TO_DIALER) if dialer else (TO_DIALER, TO_LISTENER)
        self._sent = 0
        self._read = 0

    def tag(self, line):
        """One encoded frame, `{...}` and its newline (bytes) -> the same with its tag."""
        untagged = line[:-1]
        tag = self._tag(self._out, self._sent, untagged)
        self._sent += 1
        return b"".join((untagged[:-1], _OPEN, tag, _CLOSE, b"\n"))

    def untag(self, line):
        """A line read (bytes, no newline) -> the line untagged, or None if its tag is not the
        next one from the other end (or it has none)."""
        if len(line) <= _TAGGED_END or not line.endswith(_CLOSE) \
                or line[-_TAGGED_END:-_TAGGED_END + len(_OPEN)] != _OPEN:
            return None
        untagged = line[:-_TAGGED_END] + b"}"
        expected = self._tag(self._in, self._read, untagged)
        self._read += 1
        return untagged if hmac.compare_digest(line[-2 * TAG_BYTES - 2:-2], expected) else None

    def _tag(self, direction, count, untagged):
        message = b"|".join((direction, str(count).encode("ascii"), untagged))
        return hmac.digest(self._key, message, "sha256")[:TAG_BYTES].hex().encode("ascii")
