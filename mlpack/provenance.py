"""Where a store entry came from and whether it is trusted to run code.

Provenance lives next to the manifest in ``provenance.yaml``. It is store metadata, not part
of the entry: the manifest does not record it, exports leave it out, imports never take it from
an archive, and ``mlpack models|bundles trust`` rewrites it. It is written into the staging
directory before commit, so an entry and its provenance appear together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

FILENAME = "provenance.yaml"

Kind = Literal["saved", "built", "imported", "pulled"]
KINDS: tuple[str, ...] = ("saved", "built", "imported", "pulled")


@dataclass(frozen=True)
class Provenance:
    """``kind`` says how the entry got here; ``source`` is the archive path or hub URL."""

    kind: Kind
    trusted: bool
    source: str | None = None
    time: str = ""

    @classmethod
    def new(cls, kind: Kind, *, trusted: bool | None = None, source: str | None = None) -> Provenance:
        """Entries made on this machine are trusted; imported or pulled ones only when asked."""
        if trusted is None:
            trusted = kind in ("saved", "built")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(kind=kind, trusted=trusted, source=source, time=now)

    def trusting(self) -> Provenance:
        return replace(self, trusted=True)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# Entries written before provenance existed were made by this machine's own saves and builds.
LEGACY = Provenance(kind="saved", trusted=True, source=None, time="")


def read_provenance(entry: Path) -> Provenance:
    """The entry's provenance; an entry from before provenance existed counts as saved here."""
    from .yamlio import load_yaml

    path = Path(entry) / FILENAME
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        return LEGACY
    except (OSError, ValueError):
        # unreadable provenance never grants trust
        return Provenance(kind="imported", trusted=False, source=None, time="")
    kind = data.get("kind")
    return Provenance(
        kind=kind if kind in KINDS else "imported",  # type: ignore[arg-type]
        trusted=data.get("trusted") is True and kind in KINDS,
        source=str(data["source"]) if data.get("source") is not None else None,
        time=str(data.get("time") or ""),
    )


def write_provenance(entry: Path, provenance: Provenance) -> None:
    """Write (or replace) ``provenance.yaml`` atomically."""
    from .fsutil import write_atomic
    from .yamlio import dumps_yaml

    write_atomic(Path(entry) / FILENAME, dumps_yaml(provenance.to_dict()))
