"""BentoML 0.x input and output adapters (``from mlpack.adapters import DataframeInput``).

Each one is an ``mlpack.io`` descriptor, so it reads HTTP requests, ``mlpack run`` input and
files, and describes itself in OpenAPI exactly like the descriptor it extends.
"""

from __future__ import annotations

from typing import Any

from .exceptions import ConfigError
from .io import JSON, PandasDataFrame, Text

__all__ = ["DataframeInput", "DataframeOutput", "DefaultOutput", "JsonInput", "JsonOutput", "StringInput", "StringOutput"]


def _ignore(kwargs: dict[str, Any], allowed: set[str], cls: str) -> None:
    # 0.x documentation options (http_input_example, request_schema...) have no effect here
    unknown = set(kwargs) - allowed
    if unknown:
        raise ConfigError(f"{cls}: unknown argument(s) {', '.join(sorted(unknown))}")


_BASE_OPTIONS = {"http_input_example", "request_schema", "is_batch_input"}


class DataframeInput(PandasDataFrame):
    """A table: JSON (a list of rows such as ``[[5.1, 3.5, 1.4, 0.2]]``, records, columns or
    split) or ``text/csv``. The API gets a ``pandas.DataFrame`` of every row sent.

    ``orient=None`` (the 0.x default) takes any of these JSON shapes.
    """

    def __init__(
        self,
        orient: str | None = None,
        typ: str = "frame",
        columns: list[Any] | None = None,
        dtype: Any = None,
        input_dtypes: Any = None,
        **base_kwargs: Any,
    ) -> None:
        if typ != "frame":
            raise ConfigError(f"DataframeInput: typ={typ!r} is not supported; use typ='frame'")
        _ignore(base_kwargs, _BASE_OPTIONS, "DataframeInput")
        # "records" reads lists of rows, records and column dicts alike
        super().__init__(orient=orient or "records", columns=columns, dtype=dtype if dtype is not None else input_dtypes)
        self._any_orient = orient is None

    def openapi_schema(self, contract: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``PandasDataFrame`` schema: records and list rows, declared columns required.

        The 0.x default (``orient=None``) also reads a ``split`` or ``columns`` object; the
        description says so, as OpenAPI 3.0 cannot tie their parts together (equal lengths).
        """
        schema = super().openapi_schema(contract)
        if self._any_orient:
            schema["description"] = (
                "Records or lists of rows; also a split object ({columns, data}) or a columns object ({column: {index: value}})."
            )
        return schema


class JsonInput(JSON):
    """Any JSON document; the API gets the parsed value (with ``batch=True``, a list of them)."""

    def __init__(self, **base_kwargs: Any) -> None:
        _ignore(base_kwargs, _BASE_OPTIONS, "JsonInput")
        super().__init__()


class StringInput(Text):
    """Plain text; the API gets a ``str``."""

    def __init__(self, **base_kwargs: Any) -> None:
        _ignore(base_kwargs, _BASE_OPTIONS, "StringInput")
        super().__init__()


class JsonOutput(JSON):
    """The result as JSON (numpy arrays and pandas objects included): the 0.x default output."""

    def __init__(self, **kwargs: Any) -> None:
        _ignore(kwargs, {"cors", "ensure_ascii"}, "JsonOutput")
        super().__init__()


DefaultOutput = JsonOutput


class DataframeOutput(PandasDataFrame):
    """A DataFrame (or array) result as JSON in ``output_orient`` (default ``records``)."""

    def __init__(self, output_orient: str = "records", **kwargs: Any) -> None:
        _ignore(kwargs, {"cors"}, "DataframeOutput")
        super().__init__(orient=output_orient)


class StringOutput(Text):
    """The result as plain text."""
