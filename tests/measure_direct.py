"""The server's CPU per direct message on staying connections, measured inside one process:
python3 tests/measure_direct.py [direct|direct-mid|fanin|broadcast|pingpong] [MESSAGES] [ROUNDS]
[--floor] [--sync-normal]

Builds the server as server.py does (its store on disk, its log to a file, its own secrets, the
rate limits off as bench.py sets them) on a real reactor, and plays bench.py's scenario against
it from plain sockets in the same process: direct, 16 senders each keeping 256 messages in
flight to a receiver of its own (direct-mid: each message with a mid, as client.py sends);
fanin, 32 senders keeping 32 each in flight to one receiver; broadcast, one sender keeping
1,024 broadcasts in flight to 100 receivers (per delivery, then); pingpong, one message in
flight from one user to another, the next sent when its reply is in. Receivers acknowledge
the highest number of each read. With --floor, floor_server.py (bench.py's yardstick: the
design's steps without the chat's rules) plays the server's part instead; with --sync-normal,
either commits as `--sync normal` does (no disk sync, whose kernel time counts). Only the
server's passes are timed, as the thread's user and system CPU (getrusage) around each, so
the clients' own work is left out and the figure moves less than bench.py's on a busy machine.
Prints the median of ROUNDS runs in microseconds per message; compare two checkouts by running
each in turn, a few times.
"""
import os
import re
import socket
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from measure_server import Floor, Server, numbered_accounts        # noqa: E402

PAD = "x" * 32                      # the text of each message (bench.py's pad is as short)
SEQ = re.compile(rb'"seq":(\d+)\}')
FULL = re.compile(rb'"full":(\d+)')
SCENARIOS = {"direct": (16, 16, 256, False), "direct-mid": (16, 16, 256, True),
             "fanin": (32, 1, 32, False),
             "broadcast": (1, 100, 1024, False),
             "pingpong": (1, 1, 1, False)}   # senders, receivers, in flight, with a mid


class Client:
    """A staying client on a plain non-blocking socket."""

    def __init__(self, port, n):
        self.name = f"user{n}"
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(b'{"type":"login","user":"user%d","password":"password%d",'
                          b'"stay":true,"id":0}\n' % (n, n))
        self.sock.setblocking(False)
        self.tail = b""
        self.token = None
        self.sent = self.answered = self.acked = 0

    def read(self):
        """-> the complete lines that arrived since the last read."""
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return []
        *lines, self.tail = (self.tail + data).split(b"\n")
        if self.token is None:
            for line in lines:
                if b'"welcome"' in line:
                    self.token = line.split(b'"token":"')[1].split(b'"')[0].decode()
        return lines

    def send(self, data):
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)


def play(server, scenario, messages, first_account):
    """One run -> server CPU seconds per message (per delivery, for broadcast)."""
    senders_count, receivers_count, in_flight, mid = SCENARIOS[scenario]
    receivers = [Client(server.port, first_account + n) for n in range(receivers_count)]
    senders = [Client(server.port, first_account + receivers_count + n)
               for n in range(senders_count)]
    everyone = receivers + senders
    while any(client.token is None for client in everyone):
        server.pass_once()
        for client in everyone:
            client.read()
    requests = []
    for n, sender in enumerate(senders):
        to = receivers[n % receivers_count].name
        head = f'{{"type":"message","token":"{sender.token}","to":"{to}","text":"{PAD}"'
        if scenario == "broadcast":
            head = f'{{"type":"broadcast","token":"{sender.token}","text":"{PAD}"'
        requests.append((sender, head))
    quota = messages // senders_count      # each sender's share
    fan_out = receivers_count if scenario == "broadcast" else 1
    expected = quota * senders_count * fan_out
    delivered, cpu_s = 0, 0.0
    while delivered < expected:
        for sender, head in requests:
            room = min(in_flight - (sender.sent - sender.answered), quota - sender.sent)
            if room > 0:
                mids = f',"mid":"m{sender.name}-{{}}"' if mid else ""
                sender.send("".join(f'{head},"id":{seq}{mids.format(seq + 1)}}}\n'
                                    for seq in range(sender.sent, sender.sent + room)).encode())
                sender.sent += room
        cpu_s += server.pass_once()
        for sender, _ in requests:
            for line in sender.read():
                if line.startswith(b'{"type":"ok"'):
                    sender.answered += 1
                    # a broadcast's recipients with too much waiting already do not get it
                    expected -= int(FULL.search(line).group(1)) if b'"full"' in line else 0
        for receiver in receivers:
            seqs = [int(found.group(1)) for line in receiver.read()
                    if (found := SEQ.search(line))]
            if seqs:
                delivered += len(seqs)
                receiver.send(b'{"type":"ack","seq":%d}\n' % max(seqs))
    for client in everyone:     # logged out: a session left detached would be broadcast to
        client.send(b'{"type":"logout","token":"%s"}\n' % client.token.encode())
    server.pass_once()
    for client in everyone:
        client.sock.close()
    return cpu_s / delivered


def main():
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    floor = "--floor" in sys.argv[1:]
    sync = "normal" if "--sync-normal" in sys.argv[1:] else "full"
    scenario = args[0] if args else "direct"
    messages = int(args[1]) if len(args) > 1 else 100_000
    rounds = int(args[2]) if len(args) > 2 else 3
    per_message_us = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as workdir:
            if floor:
                server = Floor(workdir, numbered_accounts(300), sync=sync)
            else:
                server = Server(workdir, numbered_accounts(300), connections=400, sync=sync)
            play(server, scenario, 2000, 0)                 # warm up
            per_message_us.append(play(server, scenario, messages, 150) * 1e6)
            server.close()
    print(f"{scenario}{' (the floor)' if floor else ''}, sync {sync}: "
          f"{statistics.median(per_message_us):.2f} us of server CPU per message "
          f"(median of {rounds}: {', '.join(f'{us:.2f}' for us in per_message_us)})")


if __name__ == "__main__":
    main()
