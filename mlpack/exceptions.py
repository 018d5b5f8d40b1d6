"""The errors mlpack raises. Only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class MlpackError(Exception):
    """Base class of every error mlpack raises on purpose.

    ``http_status`` is what the server answers when the error escapes an API call.
    """

    http_status: int = 500
    exit_code: int = 1


class InvalidTag(MlpackError, ValueError):
    """A tag does not follow ``name[:version]``."""

    http_status = 400
    exit_code = 2


class NotFound(MlpackError, LookupError):
    """No model or bundle matches a tag."""

    http_status = 404
    exit_code = 3


class AmbiguousTag(MlpackError, LookupError):
    """A version prefix matches more than one version."""

    http_status = 400
    exit_code = 2


class IntegrityError(MlpackError):
    """A stored file does not match the sha256 recorded for it."""


class StorageError(MlpackError):
    """A file cannot be written or read for a reason of the system: disk full, permissions,
    a store directory that is missing or not a directory."""


class ArchiveError(MlpackError):
    """An exported archive cannot be read or would write outside the store."""

    exit_code = 2


class AlreadyExists(MlpackError):
    """An import or save would overwrite an existing entry."""

    http_status = 409


class InUse(MlpackError):
    """A model cannot be deleted because a bundle uses it."""

    http_status = 409


class BadInput(MlpackError, ValueError):
    """Input to an API (HTTP body, CLI input, file row) is malformed or does not validate."""

    http_status = 400
    exit_code = 2

    def __init__(self, message: str, *, status: int | None = None, details: object = None) -> None:
        super().__init__(message)
        if status is not None:
            self.http_status = status
        self.details = details


class ServiceUnavailable(MlpackError):
    """The runner could not take a request in time (queue past ``max_latency_ms``)."""

    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(MlpackError):
    """A configuration file, mlpackfile or setting is invalid."""

    exit_code = 2


class ServeError(MlpackError):
    """The server could not keep serving (e.g. its worker processes kept failing)."""


class BuildError(MlpackError):
    """``mlpack build`` could not produce a bundle."""


class ImportServiceError(MlpackError):
    """A service target (``module.py:svc``, bundle tag or path) cannot be loaded."""

    exit_code = 2


class MissingDependency(MlpackError, ImportError):
    """An optional dependency (scikit-learn, xgboost, pyarrow...) is not installed."""


class ContainerizeError(MlpackError):
    """No usable container backend, or the image build failed."""


class Untrusted(MlpackError):
    """Loading an entry would run code (pickles, a bundle's ``src/``) from a source not trusted yet.

    A server-side condition (the operator must trust the entry), so a 500 if a request hits it.
    """

    exit_code = 4
