# The two commands a new user needs: `make server PORT=4119` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 4119
IRC ?=
HOST ?= 127.0.0.1
ARGS ?=

.PHONY: server client gui test test-setup clean cert bench irctest

# IRC=6667: IRC clients (irssi, WeeChat) join the same room on that port too (IRC=0: none).
server:
	$(PYTHON) server.py $(PORT) $(if $(filter-out 0 no off false,$(IRC)),--irc-port $(IRC)) $(ARGS)

# STAY=1: one connection that stays open (behind NAT; STAY=0: not); add ARGS=--no-listen to open no port.
client:
	$(PYTHON) client.py $(HOST) $(PORT) $(if $(filter-out 0 no off false,$(STAY)),--stay-connected) $(ARGS)

gui:
	$(PYTHON) client.py $(HOST) $(PORT) --gui $(ARGS)

# Issue 7's benchmark: starts its own server on a free loopback port, under 3 minutes; for example
# ARGS="--quick" (seconds), ARGS="--scenario direct --rounds 4", ARGS="--profile --scenario broadcast".
bench:
	$(PYTHON) bench.py $(ARGS)

# A project-local virtual environment with the pinned test tools; the .pth file makes every
# Python started inside the tests (the end-to-end servers and clients) record coverage too.
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/python -c "import site; open(site.getsitepackages()[0] + '/chat_coverage.pth', 'w').write('import coverage; coverage.process_startup()\n')"
	touch $@

# What the tests need beyond Python: a virtual display (Xvfb) for the GUI test, tmux for the
# terminal's, and the real IRC clients (irssi in tmux, WeeChat headless) for
# tests/test_irc_clients.py, installed when missing and possible (root with apt-get); without
# them those tests skip and say why.
test-setup:
	PYTHON=$(PYTHON) bash tests/setup_display.sh
	bash tests/setup_irc_clients.sh

test: $(VENV)/.installed test-setup
	rm -f .coverage .coverage.*
	COVERAGE_PROCESS_START=$(CURDIR)/.coveragerc $(VENV)/bin/python -m coverage run -m pytest -q tests
	$(VENV)/bin/python -m coverage combine --quiet
	$(VENV)/bin/python -m coverage report

# The public IRC server conformance suite (github.com/progval/irctest) against the IRC port, on
# the part that fits one room and user accounts: IRCTEST=path of a checkout with its own
# requirements installed (pytest, pytest-timeout); ROOM=#chan names the room the tests use most.
# IRCTEST_MARKS leaves out what irctest's own runs of other servers leave out (IRCTEST_MARKS=
# runs them too).
IRCTEST_MARKS ?= not implementation-specific and not deprecated and not strict
IRCTEST_FILES = connection_registration pingpong quit messages join part names who whois cap \
	sasl echo_message message_tags utf8 isupport
irctest:
	@test -n "$(IRCTEST)" || { echo "make irctest IRCTEST=DIR: DIR is a checkout of github.com/progval/irctest with its requirements installed" >&2; exit 2; }
	cp tests/irctest_chatroom.py $(IRCTEST)/irctest/controllers/chatroom.py
	cd $(IRCTEST) && CHATROOM_SERVER=$(CURDIR)/server.py CHATROOM_ROOM='$(or $(ROOM),#chat)' \
		$(PYTHON) -m pytest -p no:cacheprovider --timeout 60 -m '$(IRCTEST_MARKS)' --controller \
		irctest.controllers.chatroom $(IRCTEST_FILES:%=irctest/server_tests/%.py)

clean:
	rm -rf $(VENV) .coverage .coverage.* .pytest_cache tests/__pycache__ __pycache__

# A self-signed certificate for TLS: make server ARGS="--tls-cert cert.pem --tls-key key.pem",
# then make client ARGS="--cafile cert.pem" (HOST=localhost or 127.0.0.1). For a server others
# reach, NAME=its host name (NAME=chat.example.edu; an address: NAME=IP:203.0.113.7). A key
# already here is not overwritten: the clients' copies of cert.pem would stop matching.
NAME ?= localhost
cert:
	@if [ -e key.pem ] || [ -e cert.pem ]; then \
		echo "key.pem or cert.pem is here already: move them away first (clients hold copies of cert.pem)"; \
		exit 1; fi
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$(NAME:IP:%=%)" \
		-addext "subjectAltName=$(if $(filter IP:%,$(NAME)),$(NAME),DNS:$(NAME)),IP:127.0.0.1" \
		-keyout key.pem -out cert.pem
