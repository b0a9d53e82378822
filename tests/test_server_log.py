"""The server's log (server_glue.Logger): one timestamped line per event, and the lines one
loop pass says written together, in order, in one write."""
import time

from chat_server import ChatServer
from reactor import Reactor
from timers import VirtualClock
from server_events import Log
from server_glue import ServerGlue, make_logger
from storage import Store

WALL_START = 1_700_000_000.0


class Stream:
    """A stream that keeps each write apart, and counts its flushes."""

    def __init__(self):
        self.writes = []
        self.flushes = 0

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        self.flushes += 1


def stamp(wall):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def test_a_line_is_written_and_flushed_at_once_with_the_time_it_was_said():
    clock, stream = VirtualClock(wall_start=WALL_START), Stream()
    log = make_logger(clock, stream)
    log("alice logged in from 127.0.0.1")
    clock.advance(1.5)
    log("alice logged out")
    assert stream.writes == [f"{stamp(WALL_START)} alice logged in from 127.0.0.1\n",
                             f"{stamp(WALL_START + 1.5)} alice logged out\n"]
    assert stream.flushes == 2


def test_many_lines_go_in_one_write_in_order():
    clock, stream = VirtualClock(wall_start=WALL_START), Stream()
    make_logger(clock, stream).many(["a logged in", "b logged in", "a logged out"])
    at = stamp(WALL_START)
    assert stream.writes == [f"{at} a logged in\n{at} b logged in\n{at} a logged out\n"]
    assert stream.flushes == 1


def test_a_passes_log_lines_go_out_together_at_its_end_in_the_order_said():
    clock, stream = VirtualClock(wall_start=WALL_START), Stream()
    reactor = Reactor(clock)
    store = Store(":memory:")
    glue = ServerGlue(reactor, ChatServer({}, store), store, make_logger(clock, stream))
    glue.apply([Log("first"), Log("refused x from 10.0.0.1", ("refused x", "10.0.0.1")),
                Log("second")])
    assert stream.writes == []          # carried out at the end of the pass, after its commit
    reactor.run_once(timeout_s=0)
    at = stamp(WALL_START)
    assert stream.writes == [f"{at} first\n{at} refused x from 10.0.0.1\n{at} second\n"]
    glue.apply([Log("refused x from 10.0.0.1", ("refused x", "10.0.0.1")), Log("third")])
    reactor.run_once(timeout_s=0)       # the repeat is counted, not said
    assert stream.writes[1:] == [f"{at} third\n"]


def test_a_log_that_takes_one_line_at_a_time_gets_them_in_order():
    reactor = Reactor(VirtualClock())
    store, lines = Store(":memory:"), []
    glue = ServerGlue(reactor, ChatServer({}, store), store, lines.append)
    glue.apply([Log("first"), Log("second")])
    reactor.run_once(timeout_s=0)
    assert lines == ["first", "second"]
