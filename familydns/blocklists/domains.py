"""Domain-name validation and normalisation shared by every list format.

Lists are untrusted text: a stray ``/`` or ``*`` entry must not turn into a rule that
matches everything (Blocky #2156), and an IP or a bare TLD is never what a category list
means. Valid names come out lowercase, ASCII (IDNA), without the trailing dot.
"""

from __future__ import annotations

import ipaddress
import re

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63

# The common case (a plain lowercase name with an alphabetic TLD, at most 253 characters)
# in one C-level call; everything else takes the slow path, which gives the precise reason.
_PLAIN = re.compile(r"(?=.{1,253}\Z)(?:[a-z0-9_-]{1,63}\.)+[a-z][a-z0-9-]{0,62}")
_LABEL = re.compile(r"[a-z0-9_-]+")
_COMMON_ADDRESSES = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "255.255.255.255"})


class DomainError(ValueError):
    """A token is not a usable domain name; the message is the reason shown to parents."""


#: Truthy if a token is already a valid lowercase name of the common shape. A bound method
#: rather than a function: it is called once per list line on the hot path.
is_plain_name = _PLAIN.fullmatch


def is_ip_address(token: str) -> bool:
    """True for an IPv4 or IPv6 address literal (hosts-file targets, stray list entries)."""
    if token in _COMMON_ADDRESSES:
        return True
    if not token or not (token[0].isdigit() or ":" in token):
        return False
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def normalize_domain(token: str) -> str:
    """Return ``token`` as a lowercase ASCII name without trailing dot, or raise DomainError.

    Labels are 1-63 characters of ``[a-z0-9_-]`` (underscores occur in real lists), the
    name is at most 253 characters and has at least two labels. Non-ASCII names are
    converted with the standard library's IDNA codec.
    """
    name = token.lower()
    if _PLAIN.fullmatch(name):
        return name
    return _normalize_slow(token.strip())


def _normalize_slow(name: str) -> str:
    name = name.removesuffix(".")
    if not name or name in ("*", ".", "/") or "/" in name:
        raise DomainError("not a domain name")
    if not name.isascii():
        name = _to_ascii(name)
    name = name.lower()
    if is_ip_address(name):
        raise DomainError("IP address, not a domain name")
    if len(name) > MAX_NAME_LENGTH:
        raise DomainError(f"name longer than {MAX_NAME_LENGTH} characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise DomainError("no dot: a bare TLD or host name")
    for label in labels:
        if not label:
            raise DomainError("empty label")
        if len(label) > MAX_LABEL_LENGTH:
            raise DomainError(f"label longer than {MAX_LABEL_LENGTH} characters")
        if not _LABEL.fullmatch(label):
            raise DomainError(f"invalid character in label {label!r}")
    if labels[-1].isdigit():
        raise DomainError("numeric top-level label")
    return name


def _to_ascii(name: str) -> str:
    if "\ufffd" in name:
        raise DomainError("undecodable bytes")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DomainError(f"invalid internationalised name ({exc})") from None
