"""irctest controller for the chat room server's IRC port (server.py --irc-port).

Copy it to irctest/controllers/chatroom.py in an irctest checkout, then from there:

    CHATROOM_SERVER=/path/to/server.py pytest --controller irctest.controllers.chatroom \
        irctest/server_tests/messages.py ...

Environment:
    CHATROOM_SERVER   path of server.py (required)
    CHATROOM_ROOM     the room's channel name (default #chat)
    CHATROOM_PYTHON   interpreter to run it with (default: this one)
    CHATROOM_SYNC_SLEEP  seconds irctest waits before reading replies (default 0: replies
                      must come in order, before the PONG to irctest's synchronising PING)

The server has no account registration: accounts come from its credentials file, read at
start. So `run()` writes every nick the test suite uses as an *open* account (a name alone: no
password needed, NICK/USER log it in), or, for a passworded test case (`password=`), with that
password. `registerUser()` records `name password`; the server is restarted with the new file
before the next client connects (`wait_for_port`), so a test's registerUser calls made before
its first client cost one restart. Accounts that tests register *after* a client connected
(who/whois with SASL) are written at start for test cases that ask for services, so no restart
cuts those clients off.
"""
import os
from pathlib import Path
import shutil
import sys
from typing import Dict, Optional, Tuple, Type

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities

SERVER = os.environ["CHATROOM_SERVER"]       # this project's server.py (make irctest sets it)
ROOM = os.environ.get("CHATROOM_ROOM", "#chat")
PYTHON = os.environ.get("CHATROOM_PYTHON", sys.executable)
SYNC_SLEEP = float(os.environ.get("CHATROOM_SYNC_SLEEP", "0"))

# Nicks that irctest's server tests connect with (connectClient / NICK); the server folds case
# (CASEMAPPING=ascii), so one spelling per folded name is kept (the first).
NICKS = """
    foo bar baz qux quux bat bazbat buzz nick nick1 nick2 nick3 user user2 user3 user4
    userOne userTwo usernick testnick otherNick coolNick alice bob carol carl carmen charlie
    Claire curious dave evan joe joiner chanop sender recver observer unrelated malice mallory
    schmoe shivaram val netcat reguser guest1 guest2 guest3 first second valid root ircop
    modegettr botnick unprivileged web nonweb proxyclient proxyclient2 proxyclientv2
    Işıl
""".split()

# Accounts that tests register (registerUser) after a client is already connected; written
# up front for test cases with run_services, so their registration needs no restart.
SERVICES_ACCOUNTS = {
    "jilles": "sesame",
    "coolAcct": "sesame",
    "val": "sesame",
    "shivaram": "sesame",
    "other": "password",
    "testuser": "mypassword",
    "Scramtest": "sesame",
}


def _fold(name: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in name)


class ChatroomController(BaseServerController, DirectoryBasedController):
    software_name = "chatroom"
    supported_sasl_mechanisms = {"PLAIN"}
    supports_sts = False
    sync_sleep_time = SYNC_SLEEP
    capabilities = frozenset(
        {
            Capabilities.ECHO_MESSAGE,
            Capabilities.MESSAGE_TAGS,
            Capabilities.SERVER_TIME,
        }
    )

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.password: Optional[str] = None
        self.registered: Dict[str, str] = {}  # account -> password (registerUser)
        self.restart_needed = False

    def get_hostname_and_port(self) -> Tuple[str, int]:
        """A free port on the loopback address (irctest's default binds 0.0.0.0)."""
        (_, port) = super().get_hostname_and_port()
        return ("127.0.0.1", port)

    # -- the credentials file and the process -----------------------------------------------

    def _write_credentials(self) -> None:
        assert self.directory
        accounts: Dict[str, Optional[str]] = {}  # folded name -> password; None: open
        spellings: Dict[str, str] = {}  # folded name -> the spelling written
        for name in NICKS:
            if _fold(name) not in spellings:
                spellings[_fold(name)] = name
                accounts[_fold(name)] = self.password
        for name, password in self.registered.items():
            spellings.setdefault(_fold(name), name)
            accounts[_fold(name)] = password
        lines = []
        for key, password in accounts.items():
            lines.append(spellings[key] if password is None else f"{spellings[key]} {password}")
        (self.directory / "credentials.txt").write_text("\n".join(lines) + "\n", "utf-8")

    def _start(self) -> None:
        assert self.directory
        self._write_credentials()
        data_dir = self.directory / "data"
        shutil.rmtree(data_dir, ignore_errors=True)  # a restart begins with an empty store
        data_dir.mkdir()
        self.proc = self.execute(
            [
                PYTHON,
                SERVER,
                "0",  # the native port: any free one
                "--host", self.hostname,
                "--irc-port", str(self.port),
                "--irc-name", "My.Little.Server",
                "--irc-room", ROOM,
                "--data-dir", data_dir,
                "--credentials", self.directory / "credentials.txt",
                # irctest opens many connections and logins quickly from one address
                "--failed-logins", "0",
                "--user-rate", "0",
                "--address-rate", "0",
            ],
            cwd=Path(SERVER).parent,
        )
        self.port_open = False

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str],
        websocket_port: Optional[int],
    ) -> None:
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if ssl:
            raise NotImplementedByController("TLS")  # the server can; not wired up here
        assert self.proc is None
        self.hostname = hostname
        self.port = port
        self.password = password
        self.create_config()
        if run_services:
            self.registered.update(SERVICES_ACCOUNTS)
        self._start()

    def registerUser(
        self,
        case,  # type: ignore[no-untyped-def]
        username: str,
        password: Optional[str] = None,
    ) -> None:
        if not password:
            raise NotImplementedByController("accounts without a password")
        # Clients connected before the restart are cut off: see the module docstring.
        if self.registered.get(username) != password:
            self.registered[username] = password
            self.restart_needed = True

    def wait_for_port(self) -> None:
        if self.restart_needed:
            self.restart_needed = False
            self.kill_proc()
            self._start()
        super().wait_for_port()

    def wait_for_services(self) -> None:
        """No services process: accounts are the server's own (see registerUser)."""
        self.wait_for_port()


def get_irctest_controller_class() -> Type[ChatroomController]:
    return ChatroomController
