"""mlpack's own requirement line for a bundle, with a wheel of it when no index has it.

A source checkout or editable install is not on any index, so the image could not install
it. Instead of invoking a build backend (which may need the network), the wheel is written
straight from the installed package files and metadata: a pure-Python package needs no more.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from importlib import metadata
from pathlib import Path

from . import __version__

_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: identical wheels, cached image layers


def installed_from_index() -> bool:
    """False for source checkouts, editable, local-directory and VCS installs."""
    here = Path(__file__).resolve()
    if not any(part in ("site-packages", "dist-packages") for part in here.parts):
        return False  # running from a source tree (editable install or PYTHONPATH)
    for dist in metadata.distributions(name="mlpack"):
        text = dist.read_text("direct_url.json")
        if text:  # PEP 610: installed from a URL, a local directory or VCS, not an index
            data = json.loads(text)
            return "archive_info" in data and not data.get("url", "").startswith("file:")
    return True


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(dest: Path) -> Path:
    """Write ``mlpack-<version>-py3-none-any.whl`` into ``dest`` from the running package."""
    package = Path(__file__).resolve().parent
    info_dir = f"mlpack-{__version__}.dist-info"
    try:
        dist = metadata.distribution("mlpack")
        meta = dist.read_text("METADATA") or ""
        entry_points = dist.read_text("entry_points.txt") or ""
    except metadata.PackageNotFoundError:
        meta, entry_points = "", "[console_scripts]\nmlpack = mlpack.cli:main\n"
    if not meta:
        meta = f"Metadata-Version: 2.1\nName: mlpack\nVersion: {__version__}\n"
    if f"Version: {__version__}" not in meta:  # stale metadata of an older editable install
        meta = "\n".join(f"Version: {__version__}" if ln.startswith("Version:") else ln for ln in meta.splitlines()) + "\n"
    entries: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            entries.append((f"mlpack/{path.relative_to(package).as_posix()}", path.read_bytes()))
    wheel_meta = "Wheel-Version: 1.0\nGenerator: mlpack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries += [
        (f"{info_dir}/METADATA", meta.encode()),
        (f"{info_dir}/WHEEL", wheel_meta.encode()),
        (f"{info_dir}/entry_points.txt", entry_points.encode()),
        (f"{info_dir}/top_level.txt", b"mlpack\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{info_dir}/RECORD,,\n"
    entries.append((f"{info_dir}/RECORD", record.encode()))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"mlpack-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return target


def mlpack_requirement(wheels: Path) -> str:
    """``mlpack==<version>``, adding its wheel to ``wheels`` unless an index serves it."""
    if not installed_from_index():
        build_wheel(wheels)
    return f"mlpack=={__version__}"
