"""The server's CPU per staying login and logout, measured inside one process:
python3 tests/measure_login.py [LOGINS] [ROUNDS]

Builds the server as server.py does (its store on disk, its log to a file, its own secrets, the
rate limits off as bench.py sets them) on a real reactor, and plays bench.py's login scenario
against it from plain sockets in the same process: LOGINS users, 4 at a time, each connects,
logs in with stay and logs out; connections stay open. Only the server's passes are timed, as
the thread's user and system CPU (getrusage) around each, so the clients' own work is left out
and the figure moves less than bench.py's on a busy machine. Prints the median of ROUNDS runs;
compare two checkouts by running each in turn, a few times.
"""
import os
import socket
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from measure_server import Server, numbered_accounts                 # noqa: E402

CONCURRENCY = 4


class User:
    """One user of the scenario: connect and log in, then log out; `poll()` -> True when done."""

    def __init__(self, port, n):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.received = b""
        self.logged_in = False
        self.sock.sendall(b'{"type":"login","user":"user%d","password":"password%d",'
                          b'"stay":true,"id":1}\n' % (n, n))
        self.sock.setblocking(False)

    def poll(self):
        try:
            self.received += self.sock.recv(65536)
        except BlockingIOError:
            return False
        if not self.logged_in and b'"welcome"' in self.received:
            token = self.received.split(b'"token":"')[1].split(b'"')[0]
            self.logged_in, self.received = True, b""
            self.sock.setblocking(True)
            self.sock.sendall(b'{"type":"logout","token":"%s","id":2}\n' % token)
            self.sock.setblocking(False)
            return False
        return self.logged_in and b'"id":2' in self.received


def play(server, first, count):
    """`count` users from number `first`, CONCURRENCY at a time -> (server CPU s, users)."""
    numbers = iter(range(first, first + count))
    active = [User(server.port, next(numbers)) for _ in range(CONCURRENCY)]
    done, cpu_s = [], 0.0
    while active:
        cpu_s += server.pass_once()
        for user in [user for user in active if user.poll()]:
            active.remove(user)
            done.append(user)
            number = next(numbers, None)
            if number is not None:
                active.append(User(server.port, number))
    return cpu_s, done


def main():
    logins = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    per_login_us = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as workdir:
            count = logins + 2 * CONCURRENCY
            server = Server(workdir, numbered_accounts(count), connections=2 * count)
            play(server, 0, 2 * CONCURRENCY)                # warm up
            cpu_s, users = play(server, 2 * CONCURRENCY, logins)
            per_login_us.append(cpu_s / logins * 1e6)
            for user in users:
                user.sock.close()
            server.reactor.close_all()
            server.log_file.close()
    print(f"{statistics.median(per_login_us):.1f} us of server CPU per staying login and "
          f"logout (median of {rounds}: {', '.join(f'{us:.1f}' for us in per_login_us)})")


if __name__ == "__main__":
    main()
