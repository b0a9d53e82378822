"""Counting what idle users cost a server in memory: tracemalloc bytes while real clients on
127.0.0.1 connect and log in to a reactor under a virtual clock (tests/test_idle_memory.py for
native staying users, tests/test_irc_idle_memory.py for IRC users)."""
import gc
import socket
import tracemalloc

from reactor_helpers import drain, pump


def bytes_per_user(glue, port, logins, warm=20):
    """Every line of `logins` (bytes: one client's login each) from a client of its own
    connecting to `port`, a listener of `glue`'s reactor -> tracemalloc bytes grown per client
    once the glue holds its connection and the core its session, the clients still connected.

    The first `warm` log in before the count begins: what the first logins of a process grow
    once (caches, tables that earlier tests may or may not have grown already) is not a
    user's, and left out it cannot make the figure depend on which tests ran before."""
    reactor = glue.reactor

    def connected(count):
        return len(glue.conns) == count

    def logged_in(count):
        return len(glue.core.online_users()) == count

    clients = [socket.socket() for _ in logins]

    def drained(count):
        for client in clients[:count]:
            drain(client)

    def log_in(first, last):
        for client in clients[first:last]:
            client.connect(("127.0.0.1", port))
        pump(reactor, lambda: connected(last))
        for client, login in zip(clients[first:last], logins[first:last]):
            client.sendall(login)
            client.setblocking(False)
        pump(reactor, lambda: logged_in(last) and not reactor._dirty,
             between=lambda: drained(last))
        for _ in range(3):      # what logging in told the others, out and read
            reactor.run_once(timeout_s=0.01)
            drained(last)
    try:
        log_in(0, warm)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        log_in(warm, len(logins))
        # a full collection empties the free lists: a tuple on one is still counted where it
        # was made (2,000 of a size are kept: up to 370 bytes a user here, by chance)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        return (sum(stat.size_diff for stat in after.compare_to(before, "filename"))
                / (len(logins) - warm))
    finally:
        for client in clients:
            client.close()
