"""Models in the store: ``model.yaml``, the ``Model`` handle, and ``mlpack.models.*``."""

from __future__ import annotations

import builtins
import platform
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .catalog import Catalog, Entry, InfoMixin
from .exceptions import BadInput, IntegrityError, InUse, NotFound
from .provenance import Provenance
from .settings import Settings
from .store import Store, hash_tree
from .tag import Tag, validate_part
from .yamlio import dump_yaml

if TYPE_CHECKING:
    from .contract import InputContract
    from .runner import Runner

MANIFEST = "model.yaml"
CUSTOM_OBJECTS = "custom_objects.pkl"
API_VERSION = "v1"
# framework modules that may be named in model.yaml; others are refused rather than imported
FRAMEWORKS = {"mlpack.sklearn": "mlpack.frameworks.sklearn", "mlpack.xgboost": "mlpack.frameworks.xgboost"}
# files a framework loads as data (XGBoost's native formats); any other file (joblib, pickle)
# can run code when loaded, so it needs a trusted entry
DATA_SUFFIXES = (".ubj", ".json")


def model_store(settings: Settings | None = None) -> Store:
    return CATALOG.store(settings)


@dataclass(frozen=True)
class ModelInfo(InfoMixin):
    """The contents of ``model.yaml``."""

    name: str
    version: str
    module: str
    creation_time: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_version: str = API_VERSION
    files: dict[str, str] = field(default_factory=dict)
    # what the model takes, recorded at save time (mlpack.contract); None for models saved before
    input_contract: dict[str, Any] | None = None


def read_info(path: Path) -> ModelInfo:
    return CATALOG.read_info(path)


class Model(Entry):
    """A model in the store. Cheap to create: the model itself loads only when asked."""

    noun = "model"
    info: ModelInfo

    @property
    def module(self) -> str:
        return self.info.module

    @property
    def creation_time(self) -> datetime:
        return datetime.fromisoformat(self.info.creation_time.replace("Z", "+00:00"))

    def trust_anchor(self) -> tuple[Path, str]:
        """A model inside a bundle (``<bundle>/models/<name>/<version>``) is as trusted as its bundle."""
        root = self.path.parent.parent
        if root.name == "models" and (root.parent / "bundle.yaml").is_file():
            return root.parent, "bundles"
        return self.path, "models"

    def file(self, rel: str) -> Path:
        """Path of a stored file to load, after checking its sha256 and, for pickles, trust."""
        if rel not in self.info.files:
            raise IntegrityError(f"model {self.tag} has no recorded file {rel}; save it again")
        if not rel.endswith(DATA_SUFFIXES):
            self.require_trusted(f"loading {rel}")
        self.verify(rel)
        return self.path / rel

    @cached_property
    def custom_objects(self) -> dict[str, Any]:
        """Extra objects saved with the model (e.g. a fitted DictVectorizer), loaded on first use."""
        if CUSTOM_OBJECTS not in self.info.files:
            return {}
        import joblib

        return joblib.load(self.file(CUSTOM_OBJECTS))

    def framework(self) -> Any:
        import importlib

        try:
            return importlib.import_module(FRAMEWORKS[self.info.module])
        except KeyError:
            raise IntegrityError(f"model {self.tag} names unknown module {self.info.module!r}") from None

    def load_model(self) -> Any:
        """The framework object (estimator, booster...), after verifying every file."""
        return self.framework().load_model(self)

    def load_runnable(self, *, checked: Collection[str] = ()) -> Mapping[str, Callable[..., Any]]:
        """One callable per signature (what a Runner calls), after verifying every file.

        ``checked``: the methods whose every single-argument call is first checked against
        ``input_contract`` by the caller; a framework may then skip checks of its own that the
        contract makes (scikit-learn's scan for NaN and infinity).
        """
        return self.framework().load_runnable(self, checked=checked)

    @cached_property
    def input_contract(self) -> InputContract | None:
        """What the model accepts (``model.yaml``'s ``input_contract``), or None if not recorded."""
        if self.info.input_contract is None:
            return None
        from .contract import InputContract

        return InputContract.from_dict(self.info.input_contract)

    def to_runner(
        self, name: str | None = None, max_batch_size: int | None = None, max_latency_ms: float | None = None
    ) -> Runner:
        from .runner import Runner

        return Runner(self, name=name, max_batch_size=max_batch_size, max_latency_ms=max_latency_ms)


CATALOG: Catalog[Model] = Catalog(
    kind="models",
    manifest=MANIFEST,
    noun="model",
    suffix=".mlmodel",
    info_cls=ModelInfo,
    entry_cls=Model,
    root=lambda settings: settings.models_root,
)


def normalize_signatures(signatures: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    if not signatures:
        return {"predict": {"batchable": False, "batch_dim": 0}}
    result: dict[str, dict[str, Any]] = {}
    for method, opts in signatures.items():
        if not isinstance(method, str) or not method.isidentifier():
            raise BadInput(f"signature name {method!r} is not a method name")
        opts = dict(opts or {})
        unknown = set(opts) - {"batchable", "batch_dim", "input_spec", "output_spec"}
        if unknown:
            raise BadInput(f"signature {method!r} has unknown options {sorted(unknown)}; use batchable, batch_dim")
        dim = opts.get("batch_dim", 0)
        if isinstance(dim, (tuple, builtins.list)):
            dim = [int(d) for d in dim]
        else:
            dim = int(dim)
        result[method] = {"batchable": bool(opts.get("batchable", False)), "batch_dim": dim}
    return result


def _clean_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (labels or {}).items()}


def save(
    module: str,
    name: str,
    write: Callable[[Path], None],
    *,
    signatures: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    framework_name: str = "",
    framework_versions: Mapping[str, str] | None = None,
    input_contract: InputContract | None = None,
    settings: Settings | None = None,
) -> Model:
    """Save a model atomically: ``write(dir)`` writes the framework's files into staging."""
    name = validate_part(name, "name")
    sigs = normalize_signatures(signatures)
    store = model_store(settings)
    context = {
        "framework_name": framework_name,
        "framework_versions": dict(framework_versions or {}),
        "mlpack_version": __version__,
        "python_version": platform.python_version(),
    }
    with store.stage() as staged:
        write(staged)
        if custom_objects:
            import joblib

            joblib.dump(dict(custom_objects), staged / CUSTOM_OBJECTS)
        files = hash_tree(staged, skip=frozenset({MANIFEST}))
        holder: dict[str, ModelInfo] = {}

        def write_manifest(path: Path, version: str) -> None:
            info = ModelInfo(
                name=name,
                version=version,
                module=module,
                creation_time=datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                labels=_clean_labels(labels),
                options=dict(options or {}),
                metadata=_plain(dict(metadata or {})),
                context=context,
                signatures=sigs,
                files=files,
                input_contract=input_contract.to_dict() if input_contract is not None else None,
            )
            try:
                dump_yaml(info.to_dict(), path / MANIFEST)
            except ValueError as exc:
                raise BadInput(f"model {name}: {exc}; keep metadata, labels and signatures small") from exc
            holder["info"] = info

        tag = store.commit(staged, name, write_manifest, provenance=Provenance.new("saved"))
    return Model(store.path(tag), holder["info"])


def _plain(value: Any) -> Any:
    """Metadata as plain YAML types (numpy scalars and the like become Python ones)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (builtins.list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    for kind in (bool, int, float):  # also numpy scalars, which subclass or mimic these
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def get(tag: Tag | str, settings: Settings | None = None) -> Model:
    """The model for ``name``, ``name:latest``, ``name:version`` or a unique version prefix."""
    return CATALOG.get(tag, settings)


def list(  # noqa: A001 - mirrors bentoml.models.list
    name: str | None = None, labels: Mapping[str, str] | None = None, settings: Settings | None = None
) -> builtins.list[Model]:
    """Models in the store, newest first, optionally filtered by name and labels."""
    return CATALOG.list(name, labels, settings)


def users(tag: Tag, settings: Settings | None = None) -> builtins.list[str]:
    """Bundles that were built with model ``tag``."""
    from .bundles import bundle_store

    bundles = bundle_store(settings)
    used = []
    for btag, data, _ in bundles.summaries(bundles.entries()):
        refs = [m.get("tag") if isinstance(m, dict) else m for m in data.get("models") or []]
        if str(tag) in refs:
            used.append(str(btag))
    return used


def delete(tag: Tag | str, *, force: bool = False, settings: Settings | None = None) -> Tag:
    model = get(tag, settings)
    if not force:
        in_use = users(model.tag, settings)
        if in_use:
            raise InUse(f"model {model.tag} is used by bundle(s) {', '.join(in_use)}; delete with --force to remove it anyway")
    CATALOG.delete(model.tag, settings)
    return model.tag


def export_model(tag: Tag | str, path: str | Path | None = None, settings: Settings | None = None) -> Path:
    """Write ``<name>-<version>.mlmodel`` (a tar.gz); ``path`` may be a directory or a file."""
    return CATALOG.export(get(tag, settings), path, settings)


def import_model(
    path: str | Path, settings: Settings | None = None, *, trust: bool = False, provenance: Provenance | None = None
) -> Model:
    """Import an archive made by ``export_model``; hashes are checked before it is visible.

    The model is untrusted (its pickles will not load) unless ``trust`` or a later ``trust(tag)``;
    a hub client passes its own ``provenance`` (``Provenance.new("pulled", source=url)``).
    """

    def check(info: ModelInfo) -> None:
        if info.module not in FRAMEWORKS:
            raise IntegrityError(f"archive {path}: unknown model module {info.module!r}")
        if info.input_contract is not None:
            from .contract import InputContract

            InputContract.from_dict(info.input_contract)  # refuse a malformed one now, not at serve time

    return CATALOG.import_(path, settings, check, trust=trust, provenance=provenance)


def trust(tag: Tag | str, settings: Settings | None = None) -> Model:
    """Trust a stored model (e.g. an imported one): its pickled files may load from now on."""
    return CATALOG.trust(tag, settings)


def check_installed(module: str, package: str, extra: str) -> Any:
    """Import an optional framework or explain how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        from .exceptions import MissingDependency

        raise MissingDependency(f"{package} is not installed: pip install 'mlpack[{extra}]'") from exc


__all__ = ["Model", "ModelInfo", "NotFound", "delete", "export_model", "get", "import_model", "list", "save", "trust"]
