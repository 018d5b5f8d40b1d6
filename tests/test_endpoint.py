"""The native endpoint picks, per API at start-up, what reads and writes a request: a
descriptor's own overrides must still be the ones called (the real server, an httpx client)."""

from __future__ import annotations

from pathlib import Path

from tests.server import running_server

SERVICE = '''
from __future__ import annotations

import mlpack
from mlpack.io import NumpyNdarray, Text


class Shouting(Text):
    """Overrides the body parser and the encoder: the base class's wrappers call these."""

    def _parse(self, body, mime, charset, source):
        return body.decode().upper()

    def _encode(self, obj):
        return (obj + "!").encode()


class FromHeader(NumpyNdarray):
    """Reads a Starlette Request itself: the header says how many rows to keep."""

    async def from_http_request(self, request):
        rows = int(request.headers["x-rows"])
        return self._parse(await request.body(), "application/json", None, "request body")[:rows]


class Tagged(NumpyNdarray):
    """Writes its own Response."""

    def to_http_response(self, obj, status_code=200):
        from starlette.responses import Response

        return Response(self._encode(obj), status_code=201, media_type="application/json", headers={"x-tag": "own"})


svc = mlpack.Service("descriptors")


@svc.api(input=Shouting(), output=Shouting())
async def shout(text: str) -> str:
    return text


@svc.api(input=FromHeader(), output=Tagged())
def first(arr):
    return arr.sum(axis=1)
'''


def test_a_descriptors_own_parse_encode_request_and_response_are_used(home: Path, tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    env = {"MLPACK_MAX_REQUEST_SIZE": "100"}
    with running_server("service.py:svc", home=home, cwd=tmp_path, env=env) as srv, srv.client() as c:
        res = c.post("/shout", content="hey", headers={"content-type": "text/plain"})
        assert (res.status_code, res.text) == (200, "HEY!")
        assert res.headers["content-type"].startswith("text/plain")
        res = c.post("/first", json=[[1, 2], [3, 4], [5, 6]], headers={"x-rows": "2"})
        assert (res.status_code, res.json(), res.headers["x-tag"]) == (201, [3, 7], "own")
        # the checks before the body still apply to a descriptor that reads its own Request
        big = c.post("/first", json=[[1, 2]] * 30, headers={"x-rows": "1"})
        assert big.status_code == 413 and "over the limit of 100 bytes" in big.json()["error"]
        res = c.post("/shout", content="é" * 60, headers={"content-type": "text/plain"})
        assert res.status_code == 413
        res = c.post("/shout", content="hey", headers={"content-type": "image/png"})
        assert res.status_code == 415 and "unsupported content-type 'image/png'" in res.json()["error"]
