"""heap.py: the C heap's free pages go back to the system, every few seconds."""
import ast
import ctypes
import pathlib

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


def test_the_server_trims_its_heap():
    # (main builds its reactor and runs it; a test of main would be a process)
    tree = ast.parse((ROOT / "server.py").read_text(encoding="utf-8"))
    calls = [node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    assert "HeapTrimmer" in calls


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
