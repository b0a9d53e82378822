"""A TCP relay for the end-to-end tests: a client connects to it as to the server, and the test
cuts every relayed connection at once, the way a network does, to watch the client come back."""
import selectors
import socket
import threading

from realprocs import WAIT_S


class Relay:
    """127.0.0.1:port -> the server: each accepted connection gets its own to the server, and
    sever() closes every pair at once (both ends see the connection end)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._peers = {}                 # socket -> the socket it relays to
        self._severing = threading.Event()
        self._severed = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sever(self):
        """Cut every relayed connection; returns once they are closed."""
        self._severed.clear()
        self._severing.set()
        self._wake_out.send(b"x")
        assert self._severed.wait(WAIT_S), "the relay did not sever"

    def stop(self):
        self._stopping = True
        self._wake_out.send(b"x")
        self._thread.join(WAIT_S)
        for sock in (self.listener, self._wake_in, self._wake_out):
            sock.close()

    def _run(self):
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_in, selectors.EVENT_READ, "wake")
        while not self._stopping:
            for key, _ in self._selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._wake_in.recv(64)
                    if self._severing.is_set():
                        self._severing.clear()
                        for sock in list(self._peers):
                            self._drop(sock)
                        self._severed.set()
                else:
                    self._pass_on(key.fileobj)
        for sock in list(self._peers):
            self._drop(sock)

    def _accept(self):
        client, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=WAIT_S)
        self.accepted += 1
        for sock, other in ((client, upstream), (upstream, client)):
            self._peers[sock] = other
            self._selector.register(sock, selectors.EVENT_READ, "data")

    def _pass_on(self, sock):
        try:
            data = sock.recv(65536)
            if data:
                self._peers[sock].sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock):
        other = self._peers.pop(sock, None)
        if other is None:
            return
        self._peers.pop(other, None)
        for each in (sock, other):
            self._selector.unregister(each)
            each.close()
