"""When the server's TLS certificate is valid, for its start to warn of one expired or about to
expire: clients that check it (client.py --cafile, IRC clients) refuse to connect once it has,
with nothing in the server's log to say why.

The ssl module tells a certificate's dates only for a peer's or a CA's (getpeercert,
get_ca_certs), and a server's own is neither; so they are read here from the first certificate
in the PEM file, in DER: Certificate = SEQUENCE { tbsCertificate = SEQUENCE { [0] version,
serialNumber, signature, issuer, validity = SEQUENCE { notBefore, notAfter }, ... }, ... }.
"""
import calendar
import ssl
import time

SOON_S = 14 * 86400     # a certificate that expires sooner than this is warned of
_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
_UTC_TIME, _GENERALIZED_TIME, _VERSION = 0x17, 0x18, 0xA0


def validity(path):
    """(not before, not after) of the first certificate in the PEM file at `path`, in seconds
    since the epoch; None if there is none to read (OSError if the file cannot be read)."""
    with open(path, encoding="ascii", errors="replace") as pem:
        text = pem.read()
    begin = text.find(_BEGIN)
    end = text.find(_END, begin)
    if begin < 0 or end < 0:
        return None
    try:
        der = ssl.PEM_cert_to_DER_cert(text[begin:end + len(_END)])
        _, at, _ = _element(der, 0)             # into the Certificate
        _, at, _ = _element(der, at)            # into its tbsCertificate
        tag, start, end = _element(der, at)
        if tag == _VERSION:
            tag, start, end = _element(der, end)
        for _ in range(3):                      # on to signature, issuer, then validity
            tag, start, end = _element(der, end)
        first = _element(der, start)            # inside validity
        second = _element(der, first[2])
        return _time(der, *first), _time(der, *second)
    except (ValueError, IndexError):
        return None     # (not DER as expected: OpenSSL loaded it, so nothing to warn of here)


def warning(path, now):
    """A line for the log if the certificate at `path` is not valid at wall-clock time `now`
    or expires within SOON_S; else None."""
    try:
        dates = validity(path)
    except OSError:
        return None     # (it was loaded a moment ago: a file gone since is not this check's)
    if dates is None:
        return None
    not_before, not_after = dates
    if now >= not_after:
        return (f"the TLS certificate {path} expired on {_shown(not_after)}: clients that "
                f"check it refuse to connect until it is renewed and the server restarted")
    if now < not_before:
        return (f"the TLS certificate {path} is not valid until {_shown(not_before)}: clients "
                f"that check it refuse to connect until then (or the clock is wrong)")
    if not_after - now < SOON_S:
        hours = int((not_after - now) // 3600)      # (a day and 23 hours is not "1 day")
        if hours >= 48:
            within = f"in {hours // 24} days"
        elif hours >= 1:
            within = f"in {hours} hour{'s' if hours > 1 else ''}"
        else:
            within = "within the hour"
        return (f"the TLS certificate {path} expires on {_shown(not_after)}, {within}: renew "
                f"it and restart the server before then")
    return None


def _element(der, at):
    """The DER element at `at` -> (tag, where its contents start, where they end)."""
    tag, length = der[at], der[at + 1]
    start = at + 2
    if length & 0x80:           # the long form: the length in the next (length & 0x7F) bytes
        count = length & 0x7F
        length = int.from_bytes(der[start:start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("an element runs past the end")
    return tag, start, end


def _time(der, tag, start, end):
    """A UTCTime or GeneralizedTime (X.509 writes both in UTC, with a Z) -> seconds."""
    text = der[start:end].decode("ascii")
    if tag == _UTC_TIME:        # YYMMDDHHMMSSZ: 50 to 99 are the 1900s (RFC 5280)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"tag {tag:#x} is no time")
    return float(calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ")))


def _shown(at):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
