"""A self-signed certificate for 127.0.0.1 and localhost, made by openssl for the TLS tests."""
import shutil
import subprocess

import pytest


def make_certificate(directory, days=2, name="cert"):
    """Write <name>.pem and its key <name>-key.pem into directory, valid for `days` from now;
    returns their paths. Skips without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed, so no certificate can be made for the TLS test")
    cert = directory / f"{name}.pem"
    key = directory / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", str(days),
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
