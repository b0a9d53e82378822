"""Fixtures shared by the end-to-end tests: a real server, and real clients in pseudo-terminals."""
import pytest

from realprocs import PtyClient, ServerProcess


@pytest.fixture
def server(tmp_path):
    """The real server on a free port, with its own data directory; it must stop cleanly."""
    proc = ServerProcess(tmp_path)
    yield proc
    assert proc.stop() == 0, proc.log()


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
