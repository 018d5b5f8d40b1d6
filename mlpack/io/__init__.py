"""IO descriptors: how an API reads its input and writes its output.

``JSON``, ``NumpyNdarray``, ``PandasDataFrame`` and ``Text`` each read an HTTP request,
write an HTTP response, read CLI input (``--input`` text, ``--input-file``), stream input
files in chunks (``iter_file``), write CLI output and describe themselves in OpenAPI.

Offline output of many chunks goes through ``ChunkWriter`` and is always one valid document
(see ``mlpack.io.writer``).

- ``base``: ``IODescriptor`` and the helpers descriptors share;
- ``writer``: ``to_json_bytes``, ``output_format`` and ``ChunkWriter``;
- ``json_io``, ``numpy_io``, ``pandas_io``, ``text_io``: one descriptor each.
- ``readers``: ``iter_chunks``, the chunked readers of input files (CSV, JSON, JSON Lines,
  Parquet); ``csv_numeric``: the fast reader for CSV of numbers;
- ``chunks``: ``Chunk``, rows with their place in the file; ``tables``: dtype casts that name
  the bad cell; ``sources``: format detection and opening input files.

numpy, pandas, pyarrow, starlette, pydantic and orjson are imported inside functions so
that ``import mlpack.io`` (and so the CLI) stays fast.
"""

from __future__ import annotations

# `X as X`: importable from mlpack.io as before the split, though not in __all__
from .base import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from .base import JSON_TYPES as JSON_TYPES
from .base import IODescriptor
from .json_io import JSON
from .numpy_io import NumpyNdarray
from .pandas_io import CSV_TYPES as CSV_TYPES
from .pandas_io import ORIENTS as ORIENTS
from .pandas_io import PandasDataFrame
from .text_io import Text
from .writer import OUTPUT_FORMATS, ChunkWriter, output_format, to_json_bytes
from .writer import _frame as _frame

__all__ = [
    "JSON", "OUTPUT_FORMATS", "ChunkWriter", "IODescriptor", "NumpyNdarray", "PandasDataFrame", "Text",
    "output_format", "to_json_bytes",
]  # fmt: skip
