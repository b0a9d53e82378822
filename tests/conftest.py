"""Fixtures shared by the tests: socketpairs on a reactor, a reactor on real time, a real
server and real clients in pseudo-terminals."""
import signal
import socket

import pytest

from reactor import Reactor
from timers import RealClock, VirtualClock
from reactor_helpers import WATCHDOG_S, Recorder
from guiprocs import Screens
from realprocs import PtyClient, ServerProcess
from relay import Relay


@pytest.fixture
def logged():
    """What a reactor made by make_pair logs."""
    return []


@pytest.fixture
def make_pair(logged):
    """make_pair(**reactor_options) -> (reactor, conn, peer socket, recorder): a reactor on a
    virtual clock watching one end of a socketpair."""
    made = []

    def make(**options):
        reactor = Reactor(VirtualClock(), log=logged.append, **options)
        ours, peer = socket.socketpair()
        made.extend((ours, peer))
        recorder = Recorder()
        return reactor, reactor.watch(ours, recorder, "pair"), peer, recorder
    yield make
    for sock in made:
        sock.close()


@pytest.fixture
def loop():
    """A reactor on real time that stops itself after WATCHDOG_S, with signal handlers put
    back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                                    signal.SIGQUIT)}
    reactor = Reactor(RealClock())
    reactor.call_later(WATCHDOG_S, reactor.stop)
    yield reactor
    signal.set_wakeup_fd(-1)
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def server(tmp_path):
    """The real server on a free port, with its own data directory; it must stop cleanly."""
    proc = ServerProcess(tmp_path)
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def relay(server):
    """A TCP relay to the server (relay.port) whose connections the test can cut."""
    relay = Relay(server.port)
    yield relay
    relay.stop()


@pytest.fixture
def clients(server):
    """clients(*options) starts a real client in a pseudo-terminal; all are killed at the end."""
    started = []

    def start(*args):
        client = PtyClient(server.port, *args)
        started.append(client)
        return client
    yield start
    for client in started:
        client.kill()


@pytest.fixture(scope="session")
def screens(tmp_path_factory):
    """screens.get(size) -> (a virtual display, a Tk of the test's on it), kept for the whole
    session (guiprocs.Screens says why)."""
    kept = Screens(str(tmp_path_factory.mktemp("screens")))
    yield kept
    kept.stop()
