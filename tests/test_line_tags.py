"""The tag on every line after a handshake (line_tags.py): made as PROTOCOL.md says, and no line
added, changed, dropped, replayed, moved or turned around passes."""
import hashlib
import hmac

import pytest

import protocol
from line_tags import LineTags


def pair(secret="key", listener_nonce="nl", dialer_nonce="nd"):
    """The two ends of one connection: (the dialer's tags, the listener's)."""
    return (LineTags(secret, listener_nonce, dialer_nonce, dialer=True),
            LineTags(secret, listener_nonce, dialer_nonce, dialer=False))


def test_the_tag_is_the_one_protocol_md_describes():
    """Made by hand from the description, for a second implementation to follow."""
    dialer, _ = pair()
    line = protocol.encode({"type": "message", "from": "bob", "text": "hi", "seq": 7})
    key = hmac.new(b"key", b"chat-lines|nl|nd", hashlib.sha256).digest()
    first = hmac.new(key, b"to-listener|0|" + line[:-1], hashlib.sha256).digest()[:16].hex()
    second = hmac.new(key, b"to-listener|1|" + line[:-1], hashlib.sha256).digest()[:16].hex()
    assert dialer.tag(line) == line[:-2] + b',"tag":"' + first.encode() + b'"}\n'
    assert dialer.tag(line) == line[:-2] + b',"tag":"' + second.encode() + b'"}\n'


def test_lines_pass_both_ways_in_order_and_decode_as_they_were():
    dialer, listener = pair()
    for n in range(3):
        frame = {"type": "message", "from": "bob", "text": f"line {n} \u00e9\U0001f600", "seq": n}
        tagged = dialer.tag(protocol.encode(frame))
        assert protocol.decode(listener.untag(tagged[:-1])) == frame
        ack = listener.tag(protocol.encode({"type": "ack", "seq": n}))
        assert protocol.decode(dialer.untag(ack[:-1])) == {"type": "ack", "seq": n}


def tagged_lines(count=3):
    dialer, _ = pair()
    return [dialer.tag(protocol.encode({"type": "message", "seq": n}))[:-1]
            for n in range(count)]


@pytest.mark.parametrize("lines, fails_at", [
    ([b'{"type":"message","seq":0}'], 0),                               # no tag
    (tagged_lines()[1:], 0),                                            # one dropped
    (tagged_lines()[:1] * 2, 1),                                        # replayed
    (tagged_lines()[1::-1], 0),                                         # moved
    ([tagged_lines()[0].replace(b'"seq":0', b'"seq":9')], 0),           # changed
    ([tagged_lines()[0][:-3] + b'0"}'], 0),                             # its tag changed
    ([tagged_lines()[0][:-1]], 0),                                      # cut short
    ([tagged_lines()[0].replace(b',"tag"', b', "tag"')], 0),            # not as made
    ([b'{"tag":"' + b"0" * 32 + b'"}'], 0),                             # nothing but a tag
], ids=["none", "dropped", "replayed", "moved", "changed", "tag-changed", "cut", "spaced",
        "only-a-tag"])
def test_a_line_not_the_next_from_the_other_end_fails(lines, fails_at):
    _, listener = pair()
    results = [listener.untag(line) for line in lines]
    assert [result is None for result in results][:fails_at + 1] == [False] * fails_at + [True]


def test_a_line_of_another_connection_or_the_other_direction_fails():
    dialer, listener = pair()
    line = protocol.encode({"type": "ack", "seq": 1})
    assert dialer.untag(dialer.tag(line)[:-1]) is None              # our own, reflected
    for other in (pair(listener_nonce="other")[0], pair(dialer_nonce="other")[0],
                  pair(secret="guessed")[0]):
        assert listener.untag(other.tag(line)[:-1]) is None
