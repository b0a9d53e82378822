"""The server's heap: its free pages given back to the system a few seconds after a burst, and
the cycle collector settled before serving (settle_collector, at the end).

A burst of logins leaves the C allocator (glibc's malloc) with free memory scattered among
the blocks that live on: the burst's frames, replies and buffers came and went between them.
glibc returns by itself only free memory at the top of its heap; malloc_trim returns every
whole free page inside it too. At 10,000 idle users that was 230 bytes of each user's RSS
(bench idle, staying: 1.31 -> 1.08 KB). With another C library there is nothing to call,
and nothing is done.

The cycle collector is the other cost of a heap that churns: every message makes a few dicts
and lists that die at once, and the collector's youngest generation was scanned every 700 of
them, its older ones now and then with every window's waiting frames in them.
"""
import ctypes
import gc

TRIM_EVERY_S = 5.0      # how long free pages may stay with the process after a burst
YOUNG_COLLECT = 5_000   # allocations between the cycle collector's scans of its youngest


def _find_malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def trim_heap():
    """Return the C heap's whole free pages to the system -> True if there was a way to."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)         # 0: keep no free pad at the top
    return True


class HeapTrimmer:
    """Trims the heap at the next pass and every `every_s` seconds after, on `reactor`'s
    timers: it costs an idle server one wake-up per period, where a trim after each burst
    would need a notion of burst in the loop."""

    def __init__(self, reactor, every_s=TRIM_EVERY_S, trim=trim_heap):
        self._reactor = reactor
        self._every_s = every_s
        self._trim = trim
        # first at the first pass: what starting up left (the accounts read, the store
        # opened) goes before any user comes
        reactor.call_soon(self._tick)

    def _tick(self):
        self._trim()
        self._reactor.call_later(self._every_s, self._tick)


def settle_collector(young=YOUNG_COLLECT):
    """Before serving: what starting up made (modules, the accounts, the store's index) leaves
    the cycle collector's scans, which would only find it alive again, and the youngest
    generation is scanned every `young` allocations instead of 700. The server lets go of its
    connections and their timers by hand rather than leave them to the collector, so the
    cyclic garbage that now waits longer for it is little (and is still freed: tested). Inside
    one process (tests/measure_direct.py, gc.callbacks) the collector took 0.6-0.85 us of a
    direct or fan-in message, in pauses of up to 8.6 ms (the oldest generation's scans of what
    starting up made); settled, 0-0.27 us, pauses to 1.3."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *gc.get_threshold()[1:])
