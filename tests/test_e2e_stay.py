"""End to end, staying connected: real server and clients on 127.0.0.1. The staying client
without a listening port talks to the server through a TCP relay in this test, so the test can
cut its connection the way a network does, and then watch it come back without losing or
repeating a message. Every wait is bounded; nothing sleeps."""
from realprocs import WAIT_S, PtyClient, login, start_server, wait_log


def test_a_staying_client_without_a_port_chats_and_resumes_after_a_cut(
        server, clients, relay, tmp_path):
    alice = PtyClient(relay.port, "--stay-connected", "--no-listen")
    try:
        login(alice, "columbia")
        server.wait_log(r"columbia logged in from 127\.0\.0\.1, staying connected")
        bob = clients()
        login(bob, "seas")
        alice.expect("seas has logged in.")              # presence, on alice's own connection
        alice.type("message seas hello from behind a NAT")
        bob.expect("columbia: hello from behind a NAT")
        bob.type("message columbia hi back")
        alice.expect("seas: hi back")

        # consent: alice asks, bob agrees, the address comes back on alice's connection; alice
        # can dial bob, but no one can be given alice's address: she has no port
        alice.type("getaddress seas")
        bob.expect("Do you agree to have a private talk with columbia? Y columbia/N columbia")
        bob.type("Y columbia")
        alice.expect("got address!")
        alice.type("private seas psst")
        alice.expect("This client has no listening port, so it cannot take private messages")
        bob.expect("columbia (private): psst")
        # alice, with no port, is still asked; agreeing gives no address, and both are told why
        bob.type("getaddress columbia")
        alice.expect("Do you agree to have a private talk with seas? Y seas/N seas")
        alice.type("Y seas")
        alice.expect("You agreed, but this client has no listening port, so seas cannot reach it")
        bob.expect("columbia agreed, but their client has no listening port, so it cannot take "
                   "private messages. Use message columbia <text> instead.")

        # a consent question reaches a staying client (this one listens, for peers)
        carol = clients("--stay-connected")
        login(carol, "google")
        bob.type("getaddress google")
        carol.expect("Do you agree to have a private talk with seas? Y seas/N seas")
        carol.type("N seas")
        bob.expect("google refused to give you their address.")

        # the cut: one message races it, three follow while alice is away, and alice types one
        bob.type("message columbia racing the cut")
        relay.sever()
        server.wait_log("columbia's staying connection closed")
        for n in range(1, 4):
            bob.type(f"message columbia while away {n}")
        alice.type("message seas typed while away")
        server.wait_log("columbia resumed the session on connection")
        for n in range(1, 4):
            alice.expect(f"seas: while away {n}")
        bob.expect("columbia: typed while away")
        alice.type("online")                              # a round trip after everything
        alice.expect("google")
        for line in ["seas: racing the cut", "seas: while away 1", "seas: while away 2",
                     "seas: while away 3", "seas: hi back"]:
            assert alice.output.count(line) == 1, alice.output
        assert bob.output.count("columbia: typed while away") == 1
        # the probe at the start (does the port speak TLS?), the first connection, the new one
        assert relay.accepted == 3
        alice.press(b"\x03")                              # Ctrl-C: logs out on it, then exits
        assert alice.wait_exit() == 0
        server.wait_log("columbia logged out")
        carol.expect("columbia has logged out.")
    finally:
        alice.kill()


def test_a_staying_client_left_at_the_login_prompt_past_the_frame_time_logs_in_quietly(
        tmp_path):
    # the server ends a connection that sends no frame in its frame time: a staying client
    # waiting for its user's name lets that one go and opens another for the name
    proc, port = start_server(tmp_path, 0, "--frame-time", "0.5")
    client = PtyClient(port, "--stay-connected", "--verbose")     # (its diagnostics shown)
    try:
        wait_log(tmp_path, "no complete frame within 0.5 s")     # at the login prompt
        client.expect("Please enter username:")
        # the name is typed once the client has let that connection go: typed between the
        # server's close and the client's reading it, it would go on the closed connection
        client.expect("the server ended the unused connection")
        client.type("columbia")
        client.expect("Please enter password:")
        client.type("116bway")
        client.expect("You have successfully logged in.")
        wait_log(tmp_path, ", staying connected")
        assert "Cannot reach" not in client.output and "back" not in client.output
        client.press(b"\x03")
        assert client.wait_exit() == 0
    finally:
        client.kill()
        proc.terminate()
        proc.wait(WAIT_S)


def test_a_staying_client_is_told_the_server_is_shutting_down(tmp_path):
    """(an operator's trial: IRC clients were told, with ERROR; client.py only read that the
    server could not be reached)"""
    proc, port = start_server(tmp_path, 0)
    client = PtyClient(port, "--stay-connected")
    try:
        login(client, "columbia")
        wait_log(tmp_path, ", staying connected")
        proc.terminate()
        proc.wait(WAIT_S)
        client.expect("The server is shutting down; this client will try to reach it again "
                      "until it is back.")
        client.expect("Server unreachable")             # the status line, not a line more
        assert "Cannot reach the server" not in client.output
        client.press(b"\x03")
        client.wait_exit()
    finally:
        client.kill()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(WAIT_S)
