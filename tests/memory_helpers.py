"""Counting what idle users cost a server in memory: tracemalloc bytes while real clients on
127.0.0.1 connect and log in to a reactor under a virtual clock (tests/test_idle_memory.py for
native staying users, tests/test_irc_idle_memory.py for IRC users)."""
import gc
import socket
import tracemalloc

from reactor_helpers import drain, pump


def bytes_per_user(reactor, port, logins, connected, logged_in):
    """Every line of `logins` (bytes: one client's login each) from a client of its own
    connecting to `port`; `connected()` says all are accepted, `logged_in()` all are logged
    in -> tracemalloc bytes grown per client, the clients still connected."""
    clients = [socket.socket() for _ in logins]

    def drained():
        for client in clients:
            drain(client)
    try:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for client in clients:
            client.connect(("127.0.0.1", port))
        pump(reactor, connected)
        for client, login in zip(clients, logins):
            client.sendall(login)
            client.setblocking(False)
        pump(reactor, lambda: logged_in() and not reactor._dirty, between=drained)
        for _ in range(3):      # what logging in told the others, out and read
            reactor.run_once(timeout_s=0.01)
            drained()
        # a full collection empties the free lists: a tuple on one is still counted where it
        # was made (2,000 of a size are kept: up to 370 bytes a user here, by chance)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / len(logins)
    finally:
        for client in clients:
            client.close()
