"""End to end over TLS: a certificate made by the test, the real server and real clients."""
import json
import socket
import ssl

from certs import make_certificate
from realprocs import PtyClient, ServerProcess


def read_to_end(sock):
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_login_and_message_over_tls(tmp_path):
    cert, key = make_certificate(tmp_path)
    server = ServerProcess(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    clients = []
    try:
        server.wait_log(r"; TLS\)")
        # the test's certificate is made for 2 days: the start warns that it expires soon
        server.wait_log(r"the TLS certificate \S+cert\.pem expires on [\d-]+ [\d:]+ UTC, "
                        r"in 4[67] hours: renew it")
        for name, password in (("columbia", "116bway"), ("seas", "summerisover")):
            client = PtyClient(server.port, "--cafile", str(cert))
            clients.append(client)
            client.expect("Please enter username:")
            client.type(name)
            client.expect("Please enter password:")
            client.type(password)
            client.expect("You have successfully logged in.")
        clients[0].type("message seas over tls")
        clients[1].expect("columbia: over tls")
        # a client that does not speak TLS is told so, in the protocol's words, and nothing
        # it sent is taken (it was reset, and read nothing, before)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
            plain.sendall(b'{"type":"check_user","user":"columbia"}\n')
            answer = json.loads(read_to_end(plain))
            assert answer["type"] == "error" and answer["code"] == "tls_required"
            assert "client.py --tls" in answer["message"]
        server.wait_log("closed: tls: not a TLS handshake")
        # and client.py without TLS says why and leaves, not asking for a name again and again
        for staying in ((), ("--stay-connected",)):
            # (a trial's staying client asked for the name first, and said why only after it)
            forgetful = PtyClient(server.port, *staying)
            clients.append(forgetful)
            forgetful.expect("client.py: this port speaks TLS: connect with TLS (client.py "
                             "--tls, or --cafile FILE")
            assert forgetful.wait_exit() == 1
            assert "Please enter username:" not in forgetful.output
        clients[0].type("online")
        clients[0].expect("seas")                   # the server went on serving
    finally:
        for client in clients:
            client.kill()
        assert server.stop() == 0


def test_a_client_that_does_not_trust_the_certificate_cannot_log_in(tmp_path):
    cert, key = make_certificate(tmp_path)
    server = ServerProcess(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    client = PtyClient(server.port, "--tls")        # system CAs only: the self-signed cert fails
    try:
        # the server is looked for before the username is asked: its certificate fails there
        client.expect("Cannot reach the server")
        client.expect("(tls: self-signed certificate)")
        assert "Please enter username:" not in client.output
    finally:
        client.kill()
        assert server.stop() == 0


def test_the_irc_port_speaks_tls_too(tmp_path):
    cert, key = make_certificate(tmp_path)
    server = ServerProcess(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key),
                           "--irc-port", "0")
    client = PtyClient(server.port, "--cafile", str(cert))
    try:
        irc_port = int(server.wait_log(r"IRC clients on [\d.]+:(\d+) \(TLS\)").group(1))
        client.expect("Please enter username:")
        client.type("seas")
        client.expect("Please enter password:")
        client.type("summerisover")
        client.expect("You have successfully logged in.")
        context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", irc_port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as irc:
            irc.sendall(b"PASS 116bway\r\nNICK columbia\r\nUSER c 0 * :c\r\nJOIN #chat\r\n"
                        b"PRIVMSG seas :over tls from irc\r\n")
            client.expect("columbia: over tls from irc")
            received = b""
            while b" 366 " not in received:
                received += irc.recv(4096)
            assert b" 001 columbia " in received
        with socket.create_connection(("127.0.0.1", irc_port), timeout=5) as plain:
            plain.sendall(b"NICK columbia\r\nUSER c 0 * :c\r\n")
            assert read_to_end(plain) == (b"ERROR :Closing link: this port speaks TLS (connect "
                                          b"with TLS, or to another port)\r\n")
    finally:
        client.kill()
        assert server.stop() == 0


def test_the_server_ends_tls_with_its_own_close_not_a_cut(tmp_path):
    """(irssi, after the server's ERROR line, said "SSL read error: unexpected eof"; WeeChat,
    "The TLS connection was non-properly terminated": the server closed without TLS's end)"""
    cert, key = make_certificate(tmp_path)
    server = ServerProcess(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key),
                           "--irc-port", "0")
    try:
        irc_port = int(server.wait_log(r"IRC clients on [\d.]+:(\d+) \(TLS\)").group(1))
        context = ssl.create_default_context(cafile=str(cert))
        for port, last_words in ((server.port, b'{"type":"check_user","user":"seas"}\n'
                                                b'{"type":"bye"}\n'),
                                 (irc_port, b"QUIT :done\r\n")):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname="localhost",
                                        suppress_ragged_eofs=False) as tls:
                tls.sendall(last_words)
                assert read_to_end(tls)         # (a cut raises SSLEOFError here)
    finally:
        assert server.stop() == 0
