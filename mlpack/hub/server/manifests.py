"""Checking what a push sends: names, versions, paths, hashes, and the manifest that binds them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import yaml

from ...exceptions import BadInput, InvalidTag
from ...tag import Tag, validate_part

KINDS = {"models": "model.yaml", "bundles": "bundle.yaml"}
NOUNS = {"models": "model", "bundles": "bundle"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESERVED = frozenset({"provenance.yaml"})
MAX_PATH = 1024


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise BadInput(f"unknown kind {kind!r}: use models or bundles", status=404)
    return kind


def check_part(value: str, what: str) -> str:
    """A name or version exactly as the store spells it (lower case: the hub never renames)."""
    try:
        checked = validate_part(value.lower(), what)
    except InvalidTag as exc:
        raise BadInput(str(exc)) from None
    if checked != value:
        raise BadInput(f"invalid {what} {value!r}: use lower case")
    return checked


def check_sha(value: Any, what: str = "sha256") -> str:
    if not isinstance(value, str) or not SHA256.match(value):
        raise BadInput(f"invalid {what} {value!r}: expected 64 lowercase hex digits")
    return value


def check_relpath(rel: Any, manifest: str) -> str:
    if not isinstance(rel, str) or not rel or len(rel) > MAX_PATH:
        raise BadInput(f"invalid file path {rel!r}")
    pure = PurePosixPath(rel)
    if (
        rel.startswith("/")
        or "\\" in rel
        or "\x00" in rel
        or pure.as_posix() != rel
        or any(part in ("", ".", "..") for part in rel.split("/"))
    ):
        raise BadInput(f"file path {rel!r} leaves the entry or is not a plain relative POSIX path")
    if rel in (manifest, *RESERVED):
        raise BadInput(f"file path {rel!r} is reserved; the manifest is sent as manifest_text")
    return rel


@dataclass(frozen=True)
class Push:
    """A validated commit request."""

    kind: str
    name: str
    version: str
    manifest_text: str
    manifest_sha256: str
    manifest: dict[str, Any]
    files: dict[str, tuple[str, int]]  # relpath -> (sha256, size)
    labels: dict[str, str]
    creation_time: str
    created_ts: float
    models: list[Tag]  # for bundles: the model versions it uses

    @property
    def size(self) -> int:
        return len(self.manifest_text.encode()) + sum(size for _, size in self.files.values())


def parse_push(kind: str, name: str, version: str, body: Any, *, max_manifest: int, max_files: int, now: float) -> Push:
    manifest_name = KINDS[kind]
    if not isinstance(body, dict):
        raise BadInput('the body must be a JSON object {"manifest_text": ..., "files": {...}}')
    text = body.get("manifest_text")
    if not isinstance(text, str) or not text.strip():
        raise BadInput("manifest_text is missing: send the exact text of " + manifest_name)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > max_manifest:
        raise BadInput(f"manifest_text is larger than {max_manifest} bytes", status=413)
    try:
        manifest = _load_without_aliases(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{manifest_name} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(manifest, dict):
        raise BadInput(f"{manifest_name} must hold a mapping")
    noun = NOUNS[kind]
    if manifest.get("name") != name or str(manifest.get("version")) != version:
        raise BadInput(f"{manifest_name} describes {manifest.get('name')}:{manifest.get('version')}, not {name}:{version}")
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        raise BadInput(f"{manifest_name} has no files mapping")
    sent = body.get("files")
    if not isinstance(sent, dict):
        raise BadInput('files must be an object {"relpath": {"sha256": ..., "size": ...}}')
    if len(sent) > max_files:
        raise BadInput(f"a {noun} may hold at most {max_files} files", status=413)
    files: dict[str, tuple[str, int]] = {}
    for rel, spec in sent.items():
        check_relpath(rel, manifest_name)
        if not isinstance(spec, dict):
            raise BadInput(f"files[{rel!r}] must be an object with sha256 and size")
        sha = check_sha(spec.get("sha256"), f"sha256 of {rel}")
        size = spec.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadInput(f"files[{rel!r}].size must be a non-negative integer")
        if recorded.get(rel) != sha:
            raise BadInput(f"file {rel} is not recorded in {manifest_name} with sha256 {sha}")
        files[rel] = (sha, size)
    left_out = sorted(set(recorded) - set(files))
    if left_out:
        raise BadInput(f"{manifest_name} records files the push does not send: {', '.join(left_out[:10])}")
    labels = manifest.get("labels") or {}
    if not isinstance(labels, dict):
        raise BadInput(f"labels in {manifest_name} must be a mapping")
    labels = {str(k)[:255]: str(v)[:1024] for k, v in labels.items()}
    creation_time = str(manifest.get("creation_time") or "")[:40]
    models: list[Tag] = []
    if kind == "bundles":
        for item in manifest.get("models") or []:
            tag_text = item.get("tag") if isinstance(item, dict) else item
            try:
                tag = Tag.parse(str(tag_text))
            except InvalidTag as exc:
                raise BadInput(f"bundle.yaml lists an invalid model: {exc}") from None
            if tag.version is None or tag.is_latest:
                raise BadInput(f"bundle.yaml lists model {tag_text!r} without a version")
            models.append(tag)
    return Push(
        kind=kind,
        name=name,
        version=version,
        manifest_text=text,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        manifest=manifest,
        files=files,
        labels=labels,
        creation_time=creation_time,
        created_ts=_timestamp(creation_time, now),
        models=models,
    )


def _timestamp(text: str, default: float) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases: a manifest is small and plain; aliases only serve bombs."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise BadInput("the manifest uses YAML aliases, which the hub does not accept")
        return super().compose_node(parent, index)


def _load_without_aliases(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a safe loader
