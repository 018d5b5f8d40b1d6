"""The hub's web UI in a real browser (Playwright driving Debian's chromium) and over plain HTTP."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_fixtures import hub_token, running_hub
from tests.server import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVICE = textwrap.dedent(
    """
    import numpy as np
    import mlpack
    from mlpack.io import NumpyNdarray

    runner = mlpack.sklearn.get("iris_clf:latest").to_runner()
    svc = mlpack.Service("iris_classifier", runners=[runner])

    @svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 4)), output=NumpyNdarray())
    async def predict(arr: np.ndarray) -> np.ndarray:
        return await runner.predict.async_run(arr)
    """
)


@dataclass
class Filled:
    url: str
    data: Path
    token: str
    reader: str
    model: str
    bundle: str
    other_model: str


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPACK_")}
    return {**env, "MLPACK_HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def _run(home: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(home), cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """A hub holding a bundle, the model it uses, and one other model (pushed by the real CLI)."""
    base = tmp_path_factory.mktemp("hub-ui")
    data, home = base / "hub-data", base / "alice"
    with running_hub(data, "--no-access-log", env=_env(base / "hub-home")) as server:
        token = hub_token(data, "alice", env=_env(base / "hub-home"))
        reader = hub_token(data, "viewer", read_only=True, env=_env(base / "hub-home"))
        save = textwrap.dedent("""
            import sys, mlpack
            from sklearn import datasets, svm, tree
            X, y = datasets.load_iris(return_X_y=True)
            print(mlpack.sklearn.save_model("iris_clf", svm.SVC().fit(X, y), labels={"team": "ds"},
                                            metadata={"accuracy": 0.97}, signatures={"predict": {"batchable": True}}).tag)
            print(mlpack.sklearn.save_model("tree_clf", tree.DecisionTreeClassifier().fit(X, y), labels={"team": "ops"}).tag)
        """)
        model, other = _run(home, "-c", save).splitlines()
        proj = base / "project"
        proj.mkdir()
        (proj / "service.py").write_text(SERVICE)
        build_file = {"service": "service.py:svc", "python": {"packages": ["scikit-learn"]}}
        (proj / "mlpackfile.yaml").write_text(yaml.safe_dump(build_file))
        bundle = _run(home, "-m", "mlpack", "build", str(proj), "-o", "tag")
        _run(home, "-m", "mlpack", "hub", "login", server.url, "--token", token)
        _run(home, "-m", "mlpack", "push", bundle)
        _run(home, "-m", "mlpack", "models", "push", other)
        yield Filled(server.url, data, token, reader, model, bundle, other)


@pytest.fixture
def browser() -> Iterator:
    assert shutil.which("chromium") or Path(CHROMIUM).exists(), "chromium missing: run scripts/setup-browser.sh"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _path(tag: str) -> str:
    return tag.replace(":", "/")


@pytest.mark.slow
def test_browse_search_follow_and_delete_in_a_browser(filled: Filled, browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(filled.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#token", "mlph_not_a_token")
    page.click("button[type=submit]")
    expect(page.locator(".notice.error")).to_contain_text("unknown or revoked")
    page.fill("#token", filled.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(filled.url + "/models")
    cookie = next(c for c in context.cookies() if c["name"] == "mlpack_hub_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert filled.token not in cookie["value"]

    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    page.fill("input[name=q]", "tree")
    page.click("button:has-text('Search')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("tree_clf")
    page.fill("input[name=q]", "")
    page.fill("input[name=label]", "team=ds")
    page.click("button:has-text('Search')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("iris_clf")
    page.fill("input[name=label]", "team=nobody")
    page.click("button:has-text('Search')")
    expect(page.locator("main")).to_contain_text("No models match")

    page.click("header nav >> text=Bundles")
    bundle_name, bundle_version = filled.bundle.split(":")
    page.click(f"a:has-text('{bundle_version}')")
    expect(page.locator("h1")).to_have_text(filled.bundle)
    main = page.locator("main")
    expect(main).to_contain_text("POST /predict")
    expect(main).to_contain_text("NumpyNdarray(dtype=float64, shape=[-1, 4])")
    expect(main).to_contain_text("scikit-learn==")
    expect(main).to_contain_text(f"mlpack bundles pull {filled.bundle}")
    page.screenshot(path=str(tmp_path / "bundle.png"), full_page=True)
    if os.environ.get("MLPACK_HUB_SCREENSHOT"):
        shutil.copy(tmp_path / "bundle.png", os.environ["MLPACK_HUB_SCREENSHOT"])

    page.click(f"a:has-text('{filled.model}')")  # the bundle's model links to its page
    expect(page).to_have_url(filled.url + "/models/" + _path(filled.model))
    expect(page.locator("h1")).to_have_text(filled.model)
    expect(main).to_contain_text(f"mlpack models pull {filled.model}")
    expect(main).to_contain_text("mlpack.sklearn")
    expect(main).to_contain_text("accuracy: 0.97")
    expect(main).to_contain_text("by alice")
    expect(main.locator(".sha").first).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    expect(main).to_contain_text(filled.bundle)  # "used by"

    # the model a bundle uses: the confirmation page says so and offers to delete anyway; cancel
    page.click("text=Delete " + filled.model)
    expect(page.locator(".card")).to_contain_text(f"used by {filled.bundle}")
    page.click("text=Cancel")
    expect(page.locator("h1")).to_have_text(filled.model)

    # delete the bundle version, confirm, and see it gone
    page.goto(filled.url + "/bundles/" + _path(filled.bundle))
    page.click("text=Delete " + filled.bundle)
    expect(page.locator("h1")).to_contain_text("Delete bundle")
    page.click("button:has-text('Delete')")
    expect(page).to_have_url(re.compile(r"/bundles\?deleted="))
    expect(page.locator(".notice.ok")).to_contain_text(f"Deleted bundle {filled.bundle}")
    expect(page.locator(f"a:has-text('{bundle_version}')")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("No bundles on the hub yet")
    with httpx.Client(base_url=filled.url, headers={"Authorization": f"Bearer {filled.token}"}) as api:
        assert api.get(f"/api/v1/bundles/{_path(filled.bundle)}").status_code == 404
        assert api.get(f"/api/v1/models/{_path(filled.model)}").json()["used_by"] == []

    page.click("header button:has-text('Log out')")
    expect(page).to_have_url(filled.url + "/login")
    page.goto(filled.url + "/models")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fmodels"))
    context.close()


def _session(url: str, token: str) -> tuple[httpx.Client, str]:
    """A cookie session made through the login form, and a page's CSRF token."""
    client = httpx.Client(base_url=url, timeout=30)
    login = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    done = client.post("/login", data={"csrf": csrf, "token": token, "next": "/models"})
    assert done.status_code == 303 and done.headers["location"] == "/models"
    page = client.get("/models")
    return client, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


@pytest.mark.slow
def test_forms_need_their_csrf_token_and_write_rights(filled: Filled) -> None:
    client, csrf = _session(filled.url, filled.token)
    target = f"/models/{_path(filled.other_model)}/delete"
    try:
        assert client.post(target, data={}).status_code == 403
        tampered = ("y" if csrf[0] == "x" else "x") + csrf[1:]  # one character off, never equal
        assert client.post(target, data={"csrf": tampered}).status_code == 403
        assert client.post("/logout", data={}).status_code == 403
        assert client.get(f"/models/{_path(filled.other_model)}").status_code == 200  # still there
        # login itself is a double-submit form: without the cookie's twin it is refused
        fresh = httpx.post(filled.url + "/login", data={"csrf": "forged", "token": filled.token})
        assert fresh.status_code == 403 and "mlpack_hub_session" not in fresh.headers.get("set-cookie", "")
        # a forged or tampered session cookie is no session
        forged = httpx.get(filled.url + "/models", cookies={"mlpack_hub_session": "e30.AAAA"})
        assert forged.status_code == 303 and forged.headers["location"].startswith("/login")
    finally:
        client.close()

    reader, reader_csrf = _session(filled.url, filled.reader)
    try:
        page = reader.get(f"/models/{_path(filled.other_model)}")
        assert page.status_code == 200 and "Delete " not in page.text
        assert reader.post(target, data={"csrf": reader_csrf}).status_code == 403
        assert reader.get(f"/models/{_path(filled.other_model)}").status_code == 200
    finally:
        reader.close()


@pytest.mark.slow
def test_bearer_header_reads_pages_and_bad_paths_are_404(filled: Filled) -> None:
    headers = {"Authorization": f"Bearer {filled.token}"}
    with httpx.Client(base_url=filled.url, headers=headers, timeout=30) as ui:
        page = ui.get("/models")
        assert page.status_code == 200 and filled.other_model.split(":")[0] in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "<script" not in page.text and "http://" not in page.text.replace(filled.url, "")
        assert ui.get("/models/tree_clf/latest").status_code == 200
        versions = ui.get("/models/tree_clf")  # every version of one name, the latest marked
        tree_version = filled.other_model.split(":")[1]
        assert versions.status_code == 200 and f'href="/models/tree_clf/{tree_version}"' in versions.text
        assert '<span class="pill">latest</span>' in versions.text
        assert ui.get("/models/no_such_model/latest").status_code == 404
        assert ui.get("/models/Bad..Name/latest").status_code == 404
        assert ui.get("/api/v1/models").status_code == 200  # the API still answers under the UI
    assert httpx.get(filled.url + "/models", headers={"Authorization": "Bearer mlph_nope"}).status_code == 401
    for target in ("//evil.example/", "/\t/evil.example/", "https://evil.example/"):
        login = httpx.get(filled.url + "/login", params={"next": target})
        assert 'name="next" value="/"' in login.text, target
    login = httpx.get(filled.url + "/login", params={"next": "/bundles?q=iris"})
    assert 'name="next" value="/bundles?q=iris"' in login.text
