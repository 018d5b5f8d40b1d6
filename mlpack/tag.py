"""Tags (``name[:version]``) and generated versions."""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass

from .exceptions import InvalidTag

_PART = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")
MAX_PART = 63
LATEST = "latest"
# Crockford's base32 in ASCII order, so that versions sort like the times they encode.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 11  # 55 bits of microseconds: good until year 3111
_RANDOM_CHARS = 5  # 25 random bits keep same-microsecond saves from different processes apart
VERSION_LENGTH = _TIME_CHARS + _RANDOM_CHARS


class UppercaseTagWarning(UserWarning):
    """A tag had upper-case letters and was lowered."""


def validate_part(part: str, what: str = "name") -> str:
    """Return ``part`` lowered and checked against the tag grammar, or raise InvalidTag."""
    if not isinstance(part, str) or not part:
        raise InvalidTag(f"invalid tag: the {what} is empty; use name[:version], e.g. iris_clf:latest")
    lowered = part.lower()
    if lowered != part:
        warnings.warn(f"tag {what} {part!r} has upper-case letters; using {lowered!r}", UppercaseTagWarning, stacklevel=3)
    if len(lowered) > MAX_PART:
        raise InvalidTag(f"invalid tag {what} {part!r}: longer than {MAX_PART} characters")
    if ".." in lowered or not _PART.match(lowered):
        raise InvalidTag(
            f"invalid tag {what} {part!r}: use lowercase letters, digits and inner '-', '_', '.' "
            "(no '..', '/', spaces; start and end with a letter or digit)"
        )
    return lowered


@dataclass(frozen=True, order=True)
class Tag:
    """A store reference. ``version`` is None (meaning latest), ``latest``, a version or a prefix."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str | Tag) -> Tag:
        if isinstance(text, Tag):
            return text
        if not isinstance(text, str) or not text.strip():
            raise InvalidTag("invalid tag: empty; use name[:version], e.g. iris_clf:latest")
        name, sep, version = text.strip().partition(":")
        if sep and ":" in version:
            raise InvalidTag(f"invalid tag {text!r}: more than one ':'; use name[:version]")
        return cls(validate_part(name, "name"), validate_part(version, "version") if sep else None)

    @classmethod
    def validated(cls, name: str, version: str | None = None) -> Tag:
        return cls(validate_part(name, "name"), None if version is None else validate_part(version, "version"))

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name

    @property
    def is_latest(self) -> bool:
        return self.version in (None, LATEST)


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_version(now_ns: int | None = None) -> str:
    """A 16-character lowercase base32 version that sorts by creation time."""
    micros = (time.time_ns() if now_ns is None else now_ns) // 1000
    return _encode(micros, _TIME_CHARS) + _encode(int.from_bytes(os.urandom(4), "big"), _RANDOM_CHARS)


def version_time(version: str) -> float:
    """The creation time (seconds since the epoch) encoded in a generated version."""
    value = 0
    for ch in version[:_TIME_CHARS]:
        value = value * 32 + _ALPHABET.index(ch)
    return value / 1e6
