"""heap.py: the C heap's free pages go back to the system, every few seconds."""
import ctypes
import pathlib
import subprocess
import sys
import textwrap

import pytest

import heap
from heap import HeapTrimmer, trim_heap
from reactor import Reactor
from timers import VirtualClock

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_trimmer_trims_at_once_then_once_a_period_for_as_long_as_the_loop_runs():
    clock = VirtualClock()
    reactor = Reactor(clock)
    trims = []
    HeapTrimmer(reactor, every_s=5.0, trim=lambda: trims.append(clock.now()))
    clock.advance(4.9)
    assert trims == [0.0]                       # what starting up left, first
    clock.advance(20.1)
    assert trims == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    reactor.close_all("done")


def test_the_server_trims_its_heap_and_settles_the_collector_before_it_runs(
        tmp_path, monkeypatch):
    """server.main, its loop's run replaced by a note of what came before it."""
    import server
    seen = []
    monkeypatch.setattr(server, "HeapTrimmer", lambda reactor: seen.append("trimmer"))
    monkeypatch.setattr(server, "settle_collector", lambda: seen.append("settled"))
    monkeypatch.setattr(server.Reactor, "run", lambda reactor: seen.append("run"))
    credentials = tmp_path / "credential.txt"
    credentials.write_text("alice secret\n")
    assert server.main(["0", "--host", "127.0.0.1", "--credentials", str(credentials),
                        "--data-dir", str(tmp_path / "data")]) == 0
    assert seen == ["trimmer", "settled", "run"]


def test_a_settled_collector_leaves_startup_alone_scans_less_often_and_still_frees_cycles():
    # in a process of its own: freezing and thresholds are the whole interpreter's
    script = textwrap.dedent("""
        import gc, weakref
        import heap
        startup = [[n] for n in range(5000)]        # what starting up made
        heap.settle_collector(young=3000)
        assert gc.get_threshold()[0] == 3000
        assert gc.get_freeze_count() >= 5000        # left out of every scan
        scans = []
        gc.callbacks.append(lambda phase, info: phase == "start" and scans.append(1))
        class Node:
            pass
        a, b = Node(), Node()
        a.other, b.other = b, a                     # a cycle, then garbage
        freed = []
        weakref.finalize(a, freed.append, "a")
        del a, b
        churn = [[n] for n in range(2500)]          # under the threshold: no scan yet
        assert scans == [] and freed == []
        churn += [[n] for n in range(1000)]         # past it: a scan, and the cycle goes
        assert scans and freed == ["a"], (scans, freed)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def _rss_kb():
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(heap._MALLOC_TRIM is None, reason="no malloc_trim in this C library")
def test_free_pages_between_live_blocks_go_back_to_the_system():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = 16 * 1024                           # below glibc's mmap threshold: on the heap
    blocks = [libc.malloc(block) for _ in range(2048)]     # 32 MB
    for address in blocks:
        ctypes.memset(address, 1, block)        # touched: resident
    kept = blocks[::16]                         # one live block in 16 pins the heap's top
    for address in blocks:
        if address not in kept:
            libc.free(address)
    before_kb = _rss_kb()
    assert trim_heap()
    freed_kb = before_kb - _rss_kb()
    for address in kept:
        libc.free(address)
    assert freed_kb > 16 * 1024                 # most of the 30 MB freed between them
