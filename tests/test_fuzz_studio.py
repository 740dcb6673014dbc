"""Fuzzing the studio's requests (issue 22): arbitrary JSON bodies, names and schedule texts
sent to every route through Starlette's TestClient.

The property: every answer is a page, a PNG, a video or JSON; a refusal is a 4xx with a
one-line ``error``; never a 5xx (an uncaught exception), never a file written outside the
studio folder, and nothing written inside it except by /api/save and /api/new. Previews and
renders are replaced by stubs that record the call (what is under test is the request
handling, not the dreaming). Budget and long run: tests/fuzzing.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

pytest.importorskip("starlette", reason="the studio extra (pip install 'dreamvid[studio]')")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from dreamvid.studio.app import Studio, create_app  # noqa: E402
from tests.fuzzing import (  # noqa: E402
    bounded,
    budget,
    count,
    fuzz,
    fuzz_item,  # noqa: E402, F401 - an autouse fixture (Hypothesis statistics)
    listing,
)
from tests.strategies import ANY_VALUE, SCHEDULES, TEXT, YAML_TEXT, dump  # noqa: E402
from tests.test_studio import make_folder  # noqa: E402


def tame(value):
    """``value`` with integers too long for str() as hex text (JSON cannot write them)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**4000:
        return hex(value)
    if isinstance(value, list):
        return [tame(v) for v in value]
    if isinstance(value, dict):
        return {tame(k): tame(v) for k, v in value.items()}
    return value


def body(value) -> bytes:
    return json.dumps(tame(value), default=str).encode("utf-8", "surrogatepass")


NAMES = st.one_of(
    st.sampled_from(["s.yaml", "new.yaml", "sub/x.yaml", "../x.yaml", "/etc/passwd", "~/x.yaml", "s.yml", "in.png",
                     "a\\b.yaml", "a\x00.yaml", "\ud800.yaml", "x" * 300 + ".yaml", "out/video.mp4", ".", "",
                     "s.yaml/x.yaml", "./s.yaml", "sub//x.yaml", "%2e%2e/x.yaml"]),
    TEXT, ANY_VALUE,
)
TEXTS = st.one_of(YAML_TEXT, SCHEDULES.map(dump), TEXT, ANY_VALUE)
POSTS = ["/api/check", "/api/timeline", "/api/preview", "/api/save", "/api/new", "/api/render", "/api/stop"]
BODIES = st.one_of(
    st.fixed_dictionaries({}, optional={"name": NAMES, "text": TEXTS, "frame": st.one_of(st.integers(-2, 30), ANY_VALUE),
                                        "scale": st.one_of(st.sampled_from([0.125, 0.25, 0.5, 1.0]), ANY_VALUE),
                                        "fresh": st.one_of(st.booleans(), ANY_VALUE)}).map(body),
    ANY_VALUE.map(body),
    st.binary(max_size=200),
)


@pytest.fixture()
def studio(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "studio")
    (folder / "sub").mkdir()
    s = Studio(folder)
    calls = []
    monkeypatch.setattr(s.previewer, "png", lambda *a, **k: calls.append("preview") or b"\x89PNG stub")
    monkeypatch.setattr(s.renders, "start", lambda name, schedule, fresh=False: calls.append("render") or
                        SimpleNamespace(to_json=lambda: {"state": "stub"}))
    s.calls = calls
    yield s
    s.close()


def test_fuzz_studio_requests(studio, tmp_path):
    client = TestClient(create_app(studio, allowed_hosts=["testserver"]),
                        headers={"X-Dreamvid-Token": studio.token})

    @budget(200)
    @given(st.one_of(
        st.tuples(st.sampled_from(POSTS), BODIES, st.sampled_from(["application/json", "application/json; x=1",
                                                                   "text/plain", ""])),
        st.tuples(st.sampled_from(["/api/file", "/api/video", "/api/state", "/", "/nothere"]),
                  NAMES.map(lambda n: str(tame(n))[:2000].encode("utf-8", "replace").decode()),  # what a URL can carry
                  st.just(None)),
    ))
    @example(("/api/check", body({"name": "\ud800.yaml", "text": "input: noise\n"}), "application/json"))
    @example(("/api/check", body({"name": "x" * 300 + ".yaml", "text": "a: 1\n"}), "application/json"))
    @example(("/api/save", body({"name": "new.yaml", "text": "a: \ud800\n"}), "application/json"))
    @example(("/api/file", "x" * 300 + ".yaml", None))
    def studio_requests(request):
        count("studio_requests")
        route, payload, content_type = request
        before = listing(tmp_path)
        with bounded():
            if content_type is None:
                r = client.get(route, params={"name": payload})
            else:
                r = client.post(route, content=payload, headers={"content-type": content_type})
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            error = r.json()["error"]
            assert error and "\n" not in error and "Traceback" not in error, error
        after = listing(tmp_path)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert all(k == "studio" or k.startswith("studio/") for k in changed), f"wrote outside the folder: {changed}"
        if route not in ("/api/save", "/api/new"):
            assert not changed, f"{route} wrote {changed}"

    fuzz(studio_requests)
