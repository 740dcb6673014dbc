"""dreamvid studio in a real browser: the operating system's headless Chromium, driven by
Playwright (which downloads nothing: it launches /usr/bin/chromium; `.ci/run` installs it).

Opens the printed URL, edits a value into an error and back, moves the slider to a preview,
renders a 10-frame video and checks that the page plays the new file. With
DREAMVID_SCREENSHOTS=1 it also writes the screenshots of docs/studio.md.
"""

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_studio import Server, make_folder

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
DOCS = Path(__file__).resolve().parents[1] / "docs"

if not os.environ.get("CI"):  # on CI a missing browser is a failure, not a skip
    pytest.importorskip("playwright", reason="pip install playwright (the driver only)")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: apt-get install chromium", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def shoot(page, name: str, part: str | None = None) -> None:
    """With DREAMVID_SCREENSHOTS=1, the page (or its element ``part``) into docs/``name``."""
    if os.environ.get("DREAMVID_SCREENSHOTS") == "1":
        if part:
            page.locator(part).screenshot(path=str(DOCS / name))
        else:
            page.screenshot(path=str(DOCS / name), full_page=True)


@contextmanager
def studio_page(folder: Path, log: Path):
    """``dreamvid studio folder`` (its output into ``log``) and a signed-in Chromium page on it:
    yields (page, server); afterwards the browser closes, the server stops and must exit 0."""
    server = Server(folder, log)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.goto(f"{server.url}?token={server.token}")
                yield page, server
            finally:
                browser.close()
    finally:
        code = server.stop()
        print(log.read_text())  # shown when the test fails
    assert code == 0


def test_edit_preview_render_and_play_in_chromium(tmp_path):
    segment = {"frames": 10, "layers": {"mixed0": 1.0}, "zoom": {0: 1.02, 9: 1.08}}  # mixed0: fits a 32-pixel preview
    folder = make_folder(tmp_path / "studio", segments=[segment])
    log = tmp_path / "studio.log"
    with studio_page(folder, log) as (page, server):
        assert page.url == server.url  # the token went into a cookie
        row = page.locator("tr[data-schedule='s.yaml']")
        row.click(timeout=60_000)  # listed once the event stream delivered the state
        editor = page.locator("#editor")
        expect(editor).to_have_value(folder.joinpath("s.yaml").read_text())
        expect(page.locator("#check")).to_contain_text("valid: 10 frames", timeout=30_000)

        text = editor.input_value()
        line = text.splitlines().index("fps: 10") + 1
        editor.fill(text.replace("fps: 10", "fps: -5"))  # a value into an error
        problem = page.locator("#problems li")
        expect(problem).to_have_count(1, timeout=30_000)
        expect(problem).to_have_text(f"line {line}: s.yaml: fps: -5 is out of range; expected a number > 0 "
                                     "and <= 240 (frames per second)")  # fmt: skip
        expect(page.locator("#gutter .bad")).to_have_text(str(line))
        expect(page.locator("#dirty")).to_contain_text("unsaved")
        shoot(page, "studio-error.png")
        editor.fill(text)  # fixed
        expect(problem).to_have_count(0, timeout=30_000)
        expect(page.locator("#check")).to_contain_text("valid: 10 frames")

        page.eval_on_selector("#frame", "el => { el.value = '6'; el.dispatchEvent(new Event('input')); }")
        preview = page.locator("#preview")
        expect(preview).to_have_attribute("data-frame", "6", timeout=120_000)
        page.wait_for_function("document.getElementById('preview').naturalWidth === 32")  # scale 1/2 of 64
        expect(page.locator("#timeline")).to_have_attribute("src", re.compile(r"^blob:"), timeout=30_000)

        page.click("#render")
        expect(row).to_have_attribute("data-state", "done", timeout=180_000)
        video = folder / "out" / "video.mp4"
        version = video.stat().st_mtime_ns
        src = f"/api/video?name=out%2Fvideo.mp4&v={version}"
        expect(page.locator("#video")).to_have_attribute("src", src, timeout=30_000)
        page.wait_for_function("""() => { const v = document.getElementById('video');
            return v.readyState >= 2 && v.videoWidth === 64 && v.currentTime > 0; }""", timeout=30_000)
        assert page.locator("#render").inner_text() == "Render"
        page.eval_on_selector("#frame", "el => { el.value = '9'; el.dispatchEvent(new Event('input')); }")
        expect(preview).to_have_attribute("data-frame", "9", timeout=120_000)
        shoot(page, "studio.png")



SHIPPED = Path(__file__).resolve().parents[1] / "schedules"


def test_first_run_on_the_shipped_schedules_previews_and_plays_the_motion(tmp_path):
    """The README's `dreamvid studio schedules/`, as a new user meets it: every shipped schedule
    opens valid, the job file is listed as one, a frame of demo.yaml previews, its motion
    preview plays in the page, and Render (its output ../out/ lies outside) says how to fix it."""
    import shutil

    folder = tmp_path / "repo" / "schedules"
    shutil.copytree(SHIPPED, folder)
    log = tmp_path / "studio.log"
    with studio_page(folder, log) as (page, server):
        row = page.locator("tr[data-schedule='demo.yaml']")
        expect(row).to_have_attribute("data-state", "outside", timeout=60_000)
        expect(page.locator("tr[data-schedule='logo-batch.yaml']")).to_have_attribute("data-state", "job file")
        expect(page.locator("tr[data-state='invalid']")).to_have_count(0)
        assert page.evaluate("""() => {  // long messages wrap: the table stays inside the left column
            const table = document.getElementById('renders').getBoundingClientRect();
            return table.right <= document.getElementById('schedules').getBoundingClientRect().right + 1; }""")
        row.click()
        expect(page.locator("#check")).to_contain_text("valid: 90 frames", timeout=60_000)
        page.eval_on_selector("#frame", "el => { el.value = '2'; el.dispatchEvent(new Event('input')); }")
        expect(page.locator("#preview")).to_have_attribute("data-frame", "2", timeout=180_000)
        page.click("#motion-button")
        page.wait_for_function("""() => { const v = document.getElementById('motion');
            return v.readyState >= 2 && v.videoWidth === 256 && v.currentTime > 0; }""", timeout=120_000)
        expect(page.locator("#motion-status")).to_contain_text("the camera path: 90 frames")
        page.click("#render")
        expect(page.locator("#render-status")).to_contain_text(
            "demo.yaml: output: " + str(tmp_path / "repo" / "out" / "demo.mp4") + " is outside the studio "
            "folder; expected a path inside", timeout=60_000)  # fmt: skip
        assert not (tmp_path / "repo" / "out").exists()
        shoot(page, "studio-first-run.png")


def test_a_render_in_progress_shows_its_newest_frame(tmp_path):
    # long enough (stopped early) that the 2 s between peeks sees the render move on, even on 2 free cores
    segment = {"frames": 200, "layers": {"mixed3": 1.0}, "zoom": 1.03, "rotate": 0.5}
    folder = make_folder(tmp_path / "studio", size=[192, 108], segments=[segment], checkpoint_every=10,
                         defaults={"iterations": 2, "octaves": 1, "jitter": 8, "step": 0.02})  # fmt: skip
    log = tmp_path / "studio.log"
    with studio_page(folder, log) as (page, server):
        row = page.locator("tr[data-schedule='s.yaml']")
        row.click(timeout=60_000)
        expect(page.locator("#check")).to_contain_text("valid: 200 frames", timeout=60_000)
        page.click("#render")
        expect(row).to_have_attribute("data-state", "running", timeout=60_000)
        peek = page.locator("#peek")
        page.wait_for_function("""() => { const img = document.getElementById('peek');
            return img.complete && img.naturalWidth === 192 && Number(img.dataset.frame) >= 2; }""",
                               timeout=180_000)  # fmt: skip
        first = int(peek.get_attribute("data-frame"))
        expect(page.locator("#peek-status")).to_contain_text(f"frame {first} of 200: the render's newest frame")
        page.wait_for_function("(first) => Number(document.getElementById('peek').dataset.frame) > first",
                               arg=first, timeout=120_000)  # it follows the render
        shoot(page, "studio-peek.png", "#look")
        page.click("#stop")  # the render may finish before the stop reaches it: either ends it
        expect(row).to_have_attribute("data-state", re.compile("^(stopped|done)$"), timeout=120_000)
