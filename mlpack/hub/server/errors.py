"""Errors the hub answers with, beyond the ones it shares with the rest of mlpack."""

from __future__ import annotations

from collections.abc import Sequence

from ...exceptions import InUse, MlpackError


class Unauthorized(MlpackError):
    http_status = 401


class Forbidden(MlpackError):
    http_status = 403


class Conflict(MlpackError):
    """A 409 with extra fields (``missing`` blobs, ``missing_models``, ``used_by``)."""

    http_status = 409

    def __init__(self, message: str, **fields: Sequence[str]) -> None:
        super().__init__(message)
        self.fields = {k: list(v) for k, v in fields.items()}


class TooLarge(MlpackError):
    http_status = 413


class InUseConflict(InUse):
    def __init__(self, message: str, used_by: list[str]) -> None:
        super().__init__(message)
        self.fields = {"used_by": used_by}
