"""Framing over a real socketpair: bytes in any chunking become the same frames, in order."""
import random
import socket

import pytest

from reactor import DISCARDING, MAX_FRAME_BYTES, READ_CHUNK_BYTES
from reactor_helpers import Recorder, feed, pump
from server_glue import NativePort


def random_frames(rng, count, longest):
    """Frames of every byte but the newline, some empty."""
    alphabet = bytes(b for b in range(256) if b != 10)
    return [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, longest)))
            for _ in range(count)]


def test_frames_fed_one_byte_at_a_time(make_pair):
    reactor, conn, peer, rec = make_pair()
    stream = "hello\nwörld\n\n{\"type\":\"x\"}\r\nlast".encode()
    for i in range(len(stream)):
        feed(reactor, peer, stream[i:i + 1])
    assert rec.frames == [b"hello", "wörld".encode(), b"", b'{"type":"x"}\r']
    assert bytes(conn._inbuf) == b"last"


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_frames_fed_in_random_chunks(make_pair, seed):
    reactor, conn, peer, rec = make_pair()
    rng = random.Random(seed)
    frames = random_frames(rng, 300, 400)
    stream = b"".join(frame + b"\n" for frame in frames)
    at = 0
    while at < len(stream):
        size = rng.randrange(1, 700)
        feed(reactor, peer, stream[at:at + size])
        at += size
    assert rec.frames == frames
    assert conn._inbuf is None      # a read that ends with a frame keeps no buffer


@pytest.mark.parametrize("read_bytes", [READ_CHUNK_BYTES, NativePort.read_bytes, 1000])
def test_many_frames_arrive_in_order_a_bounded_piece_per_pass(make_pair, read_bytes):
    """One pass reads at most the handler's read_bytes from a peer (READ_CHUNK_BYTES unless it
    says; the native port's 32 KiB), so a busy one cannot make a pass long for everyone (a
    sender's 1,000 broadcasts had held every ack up for half a second)."""
    reactor, conn, peer, rec = make_pair()
    if read_bytes != READ_CHUNK_BYTES:
        rec.read_bytes = read_bytes
    frames = [f"frame {i:05d}".encode()                           # 12 bytes with the newline
              for i in range(3 * read_bytes // 12)]
    peer.sendall(b"".join(frame + b"\n" for frame in frames))
    reactor.run_once(timeout_s=1.0)
    assert 0 < len(rec.frames) <= read_bytes // 12 < len(frames)
    for _ in range(len(frames) * 12 // read_bytes + 1):
        reactor.run_once(timeout_s=1.0)
    assert rec.frames == frames


def test_a_partial_frame_waits_for_its_newline(make_pair):
    reactor, conn, peer, rec = make_pair()
    feed(reactor, peer, b"abc")
    reactor.run_once(timeout_s=0)
    assert rec.frames == [] and bytes(conn._inbuf) == b"abc"
    feed(reactor, peer, b"def\nghi")
    assert rec.frames == [b"abcdef"]
    assert bytes(conn._inbuf) == b"ghi"


@pytest.mark.parametrize("length, oversize",
                         [(MAX_FRAME_BYTES - 1, False), (MAX_FRAME_BYTES, True)])
def test_the_limit_counts_the_newline(make_pair, length, oversize):
    reactor, conn, peer, rec = make_pair()
    peer.setblocking(False)
    peer.sendall(b"y" * length + b"\nnext\n")
    pump(reactor, lambda: b"next" in rec.frames)
    expected = [("oversize", None)] if oversize else [("frame", b"y" * length)]
    assert [(kind, detail) for kind, _, detail in rec.events] == expected + [("frame", b"next")]


@pytest.mark.parametrize("limit", [10, 1000])
def test_a_small_limit_keeps_a_frame_of_limit_bytes_newline_included(make_pair, limit):
    reactor, conn, peer, rec = make_pair(max_frame_bytes=limit)
    feed(reactor, peer, b"a" * (limit - 1))
    assert rec.events == []
    feed(reactor, peer, b"\n" + b"b" * limit)
    assert rec.frames == [b"a" * (limit - 1)]
    assert rec.of("oversize") == [None]       # `limit` bytes and no newline yet: too long


def test_oversize_frame_whose_newline_arrives_late(make_pair):
    reactor, conn, peer, rec = make_pair(max_frame_bytes=100)
    feed(reactor, peer, b"ok\n" + b"x" * 150)
    assert rec.of("oversize") == [None] and conn._inbuf is DISCARDING     # nothing held
    for _ in range(5):
        feed(reactor, peer, b"x" * 80)           # the rest of the same frame: dropped quietly
    feed(reactor, peer, b"tail of it\nnext\npart")
    assert [(kind, detail) for kind, _, detail in rec.events] == [
        ("frame", b"ok"), ("oversize", None), ("frame", b"next")]
    assert bytes(conn._inbuf) == b"part"
    feed(reactor, peer, b"ial\n")
    assert rec.frames[-1] == b"partial"
    assert not conn.closed and rec.closed == []


def test_oversize_frame_whose_newline_is_in_the_same_chunk(make_pair):
    reactor, conn, peer, rec = make_pair(max_frame_bytes=100)
    feed(reactor, peer, b"ok\n" + b"x" * 150 + b"\nnext\n" + b"z" * 120 + b"\nlast\n")
    assert [(kind, detail) for kind, _, detail in rec.events] == [
        ("frame", b"ok"), ("oversize", None), ("frame", b"next"), ("oversize", None),
        ("frame", b"last")]
    feed(reactor, peer, b"still usable\n")
    assert rec.frames[-1] == b"still usable"


def test_a_10_mb_frame_is_never_held_whole(make_pair):
    reactor, conn, peer, rec = make_pair()
    peer.setblocking(False)
    payload = memoryview(b"q" * (10 * 1024 * 1024) + b"\nafter\n")
    sent, largest = 0, 0

    def push_and_measure():
        nonlocal sent, largest
        held = conn._inbuf if conn._inbuf is not DISCARDING else None     # (dropping)
        largest = max(largest, len(held or b""))
        if sent < len(payload):
            try:
                sent += peer.send(payload[sent:sent + READ_CHUNK_BYTES * 4])
            except BlockingIOError:
                pass
    pump(reactor, lambda: b"after" in rec.frames, passes=20_000, timeout_s=0,
         between=push_and_measure)
    assert largest < MAX_FRAME_BYTES
    assert [(kind, detail) for kind, _, detail in rec.events] == [
        ("oversize", None), ("frame", b"after")]


def test_a_handler_that_closes_stops_the_frames_of_that_chunk(make_pair):
    reactor, conn, peer, rec = make_pair()

    def on_frame(conn, line):
        rec.events.append(("frame", conn, line))
        if line == b"quit":
            conn.close("bye")
    rec.on_frame = on_frame
    feed(reactor, peer, b"a\nquit\nb\n")
    assert rec.frames == [b"a", b"quit"]
    assert rec.closed == ["bye"]


def test_frames_begun_are_held_within_a_bound_in_all_and_the_biggest_is_dropped_past_it(
        make_pair):
    """Each frame begun is bounded, but not their number: a trial's 900 connections each
    holding 64 KiB took 60 MB, and the connection cap allows 10,000. Past the bound the
    biggest goes, not the one that grew: a hostile trial's frames held the bound, and the
    next user's message in two packets was the one refused."""
    reactor, conn, peer, rec = make_pair(partial_limit=100)
    ours, other_peer = socket.socketpair()
    try:
        other = Recorder()
        reactor.watch(ours, other, "other")
        feed(reactor, peer, b"a" * 80)                      # held: 80 of the 100
        assert reactor.partial_bytes == 80
        feed(reactor, other_peer, b"b" * 30)                # 110 in all: the 80 go
        assert rec.of("oversize") == [None] and not other.of("oversize")
        assert reactor.partial_bytes == 30                  # (87 at most: an eighth less)
        feed(reactor, other_peer, b"bb\nnext\n")            # the one that grew is whole
        assert other.frames == [b"b" * 32, b"next"]
        feed(reactor, peer, b"a\nafter\n")                  # the first goes on, past its end
        assert rec.frames == [b"after"] and reactor.partial_bytes == 0
        feed(reactor, other_peer, b"c" * 90)
        feed(reactor, other_peer, b"c" * 20)                # 110, and the biggest: it goes
        assert other.of("oversize") == [None] and reactor.partial_bytes == 0
        feed(reactor, peer, b"half")
        assert reactor.partial_bytes == 4
        conn.close("done")
        reactor.run_once(timeout_s=0)
        assert reactor.partial_bytes == 0                   # a closed one holds nothing
    finally:
        ours.close()
        other_peer.close()


def test_past_the_bound_frames_are_dropped_down_to_an_eighth_below_it_in_one_go(make_pair):
    """(a review's: dropped one at a time, each frame that grew past the bound scanned every
    holder again, and an attacker's refills kept the loop busy)"""
    reactor, conn, peer, rec = make_pair(partial_limit=800)
    pairs, holders = [], []
    try:
        for n in range(16):
            ours, theirs = socket.socketpair()
            pairs += [ours, theirs]
            holders.append(Recorder())
            reactor.watch(ours, holders[-1], f"h{n}")
            feed(reactor, theirs, b"x" * 50)                # 16 x 50: the bound, full
        assert reactor.partial_bytes == 800
        feed(reactor, pairs[1], b"x")                       # past it: 801
        dropped = [h for h in holders if h.of("oversize")]
        assert len(dropped) == 2 and holders[0] in dropped  # 51 and 50 go: 700, an eighth
        assert reactor.partial_bytes == 700                 # below the bound
        for n in range(1, 16, 2):                           # 80 more in: within it, none goes
            feed(reactor, pairs[2 * n + 1], b"x" * 10)
        assert len([h for h in holders if h.of("oversize")]) == 2
    finally:
        for sock in pairs:
            sock.close()


def test_past_the_bound_the_address_holding_the_most_loses_its_frames_first(make_pair):
    """(a re-attack's ten addresses held frames of 6.7 KB each up to the bound: another
    user's 16 KB message, in two packets, was the biggest frame, and refused)"""
    reactor, conn, peer, rec = make_pair(partial_limit=320)
    pairs, attackers = [], []
    try:
        for n in range(4):                                  # one address, 4 x 60 held
            ours, theirs = socket.socketpair()
            pairs += [ours, theirs]
            attackers.append(Recorder())
            reactor.watch(ours, attackers[-1], "10.0.0.66")
            feed(reactor, theirs, b"x" * 60)
        ours, theirs = socket.socketpair()
        pairs += [ours, theirs]
        user = Recorder()
        reactor.watch(ours, user, "10.0.0.7")
        feed(reactor, theirs, b"m" * 70)                    # 310: within it
        feed(reactor, theirs, b"m" * 30)                    # 340, the biggest frame: the
        assert not user.of("oversize")                      # attacker's address loses one
        assert len([a for a in attackers if a.of("oversize")]) == 1
        feed(reactor, theirs, b"\n")
        assert user.frames == [b"m" * 100]
    finally:
        for sock in pairs:
            sock.close()


@pytest.mark.parametrize("seed", [21, 22])
def test_the_bytes_held_in_frames_begun_come_back_to_nothing(make_pair, seed):
    reactor, conn, peer, rec = make_pair(max_frame_bytes=300)
    rng = random.Random(seed)
    stream = b"".join(b"x" * rng.randrange(0, 400) + b"\n" for _ in range(200))
    at = 0
    while at < len(stream):
        size = rng.randrange(1, 500)
        feed(reactor, peer, stream[at:at + size])
        assert reactor.partial_bytes == (len(conn._inbuf) if type(conn._inbuf) is bytearray
                                         else 0)
        at += size
    assert reactor.partial_bytes == 0
