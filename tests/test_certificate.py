"""certificate.py: the dates of the server's TLS certificate, read from its PEM file, and the
start's warning of one expired, not yet valid, or about to expire."""
import ssl
import subprocess

import certificate
from certs import make_certificate
from certificate import SOON_S, validity, warning


def openssl_dates(cert):
    """(not before, not after) as openssl itself reads them from `cert`."""
    shown = subprocess.run(["openssl", "x509", "-noout", "-startdate", "-enddate", "-in",
                            str(cert)], check=True, capture_output=True, text=True).stdout
    dates = dict(line.split("=", 1) for line in shown.splitlines())
    return (ssl.cert_time_to_seconds(dates["notBefore"]),
            ssl.cert_time_to_seconds(dates["notAfter"]))


def test_the_dates_are_those_openssl_reads(tmp_path):
    cert, _ = make_certificate(tmp_path)
    assert validity(cert) == openssl_dates(cert)


def test_a_date_after_2049_is_read_in_its_four_digit_form(tmp_path):
    cert, _ = make_certificate(tmp_path, days=12000, name="long")
    not_before, not_after = validity(cert)
    assert (not_before, not_after) == openssl_dates(cert)
    assert not_after - not_before == 12000 * 86400


def test_the_first_certificate_of_a_chain_is_the_one_read(tmp_path):
    first, _ = make_certificate(tmp_path, days=30, name="first")
    second, _ = make_certificate(tmp_path, days=60, name="second")
    chain = tmp_path / "chain.pem"
    chain.write_text(first.read_text() + second.read_text())
    assert validity(chain) == openssl_dates(first) != openssl_dates(second)


def test_a_file_without_a_certificate_or_with_a_broken_one_has_no_dates(tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificate here\n")
    assert validity(empty) is None
    cert, _ = make_certificate(tmp_path)
    lines = cert.read_text().splitlines()
    cut = tmp_path / "cut.pem"      # the base64 of its first 144 bytes, then the end line
    cut.write_text("\n".join(lines[:3] + [lines[-1]]) + "\n")
    assert validity(cut) is None
    assert warning(cut, 0.0) is None
    assert warning(tmp_path / "gone.pem", 0.0) is None


def test_the_warning_says_expired_not_yet_valid_soon_or_nothing(tmp_path, monkeypatch):
    cert = tmp_path / "cert.pem"
    not_before, not_after = 1_700_000_000.0, 1_700_000_000.0 + 90 * 86400
    monkeypatch.setattr(certificate, "validity", lambda path: (not_before, not_after))
    assert warning(cert, not_before + 86400) is None
    assert warning(cert, not_after - SOON_S - 1) is None
    assert warning(cert, not_after - 3.5 * 86400) == (
        f"the TLS certificate {cert} expires on 2024-02-12 22:13 UTC, in 3 days: renew it and "
        f"restart the server before then")
    assert "in 47 hours" in warning(cert, not_after - 48 * 3600 + 1)
    assert "in 1 hour:" in warning(cert, not_after - 3600)
    assert "within the hour" in warning(cert, not_after - 3599)
    assert warning(cert, not_after) == (
        f"the TLS certificate {cert} expired on 2024-02-12 22:13 UTC: clients that check it "
        f"refuse to connect until it is renewed and the server restarted")
    assert warning(cert, not_before - 1) == (
        f"the TLS certificate {cert} is not valid until 2023-11-14 22:13 UTC: clients that "
        f"check it refuse to connect until then (or the clock is wrong)")
