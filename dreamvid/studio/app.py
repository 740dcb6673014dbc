"""The studio's web application (Starlette): one page, a JSON API, server-sent events.

Routes (every one behind :class:`Gate`, the token check)::

    GET  /                      the page (/?token=T sets the cookie and redirects here)
    GET  /static/...            its script and style sheet
    GET  /api/state             the renders of every schedule in the folder (also what /api/events sends)
    GET  /api/events            server-sent events: the state whenever it changes
    GET  /api/file?name=N       a schedule's text
    GET  /api/video?name=N      a rendered video (byte ranges, for seeking)
    GET  /api/peek?name=N       the newest frame of schedule N's render (its work folder's peek.jpg)
    POST /api/check             {name, text} -> problems with their lines, summary, frame count
    POST /api/timeline          {name, text} -> the timeline plot (PNG)
    POST /api/preview           {name, text, frame, scale} -> the frame (PNG); cancels the preview in progress
    POST /api/motion            {name, text} -> the camera path without dreaming (MP4, captions on)
    POST /api/estimate          {name, text} -> the render's estimated time here (validate --estimate)
    POST /api/save              {name, text} -> writes the schedule (atomically)
    POST /api/new               {name} -> a new schedule from a template
    POST /api/render            {name, fresh} -> starts (or resumes) the render of a saved schedule
    POST /api/stop              {name} -> stops it as Ctrl-C does

GET never changes anything; POST takes JSON only. Bad requests get a 4xx with
``{"error": "<one line>"}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dreamvid.studio import checks
from dreamvid.studio.paths import SCHEDULE_SUFFIXES, Folder, Refused
from dreamvid.studio.previews import Cancelled, Previewer, schedule_key
from dreamvid.studio.renders import Renders

STATIC = Path(__file__).parent / "static"
MAX_BODY = 2 << 20  # bytes of JSON a request may carry (a schedule is a few KB)
MAX_SCHEDULE = 1 << 20  # characters of schedule text
SCALES = (0.125, 0.25, 0.5, 1.0)  # preview scales the page offers
EVENT_POLL = 0.25  # seconds between looks at the render state, per event stream
DISK_POLL = 2.0  # seconds between scans of the folder (renders started elsewhere, new files)
RECHECK = 10.0  # seconds a listed schedule's check is trusted while its file is unchanged (its input may appear)
HEADERS = [  # on every response: the page loads nothing from elsewhere and is never framed
    (b"content-security-policy", (b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                  b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]  # fmt: skip
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
BROWSER_ENCODER = {"codec": "libx264", "pix_fmt": "yuv420p", "crf": 23, "preset": "veryfast"}  # the motion preview

log = logging.getLogger("dreamvid.studio")


class Studio:
    """What the application serves: the folder, its renders and previews, the token."""

    def __init__(self, folder: str | Path, *, token: str | None = "auto", port: int = 0):
        self.folder = Folder(folder)
        self.token = secrets.token_urlsafe(24) if token == "auto" else token  # None: no token (--no-token)
        self.cookie = f"dreamvid-studio-{port}"  # cookies ignore ports: one name per studio
        self.renders = Renders(self.folder)
        self.previewer = Previewer()
        self.closing = False  # the server is stopping: event streams end
        self._listing: dict[Path, tuple] = {}  # schedule file -> ((mtime, size), (schedule, problem), when)
        self._snapshot: tuple[float, int, dict] | None = None
        self._snapshot_lock = threading.Lock()
        self._motion: tuple[str, bytes] | None = None  # (schedule key, MP4) of the newest motion preview
        self._motion_lock = threading.Lock()

    def motion_video(self, schedule, key: str) -> bytes:
        """The camera path of ``schedule`` (:func:`dreamvid.motion`) as MP4 bytes a browser plays;
        the newest one is kept by ``key`` (the schedule's text, folder and input)."""
        import dataclasses
        import tempfile

        import dreamvid

        with self._motion_lock:
            if self._motion is not None and self._motion[0] == key:
                return self._motion[1]
            browser = dataclasses.replace(schedule, encoder=schedule.encoder.model_copy(update=BROWSER_ENCODER))
            with tempfile.TemporaryDirectory(prefix="dreamvid-motion-") as tmp:
                path = dreamvid.motion(browser, Path(tmp) / "motion.mp4", progress=False)
                video = path.read_bytes()
            self._motion = (key, video)
            return video

    def close(self) -> int:
        """The server is stopping: end event streams, cancel the preview, stop renders as Ctrl-C
        does (called once per signal: a second one aborts them). Returns the renders told."""
        self.closing = True
        self.previewer.cancel()
        return self.renders.signal_all()

    def parsed(self, path: Path):
        """(schedule or None, first problem) of a schedule file, cached by its mtime and size."""
        try:
            st = path.stat()
        except OSError as err:
            return None, str(err)
        stamp = (st.st_mtime_ns, st.st_size)
        known = self._listing.get(path)
        if known is None or known[0] != stamp or time.monotonic() - known[2] > RECHECK:
            name = self.folder.name(path)
            try:
                text = checks.read_text(path)
                if checks.is_job_file(text):
                    message = f"{JOB_FILE}: render it in a terminal with `dreamvid batch {self.folder.root / name}`"
                    known = (stamp, (None, message), time.monotonic())
                else:
                    result = checks.check(self.folder, name, text, decode=False)
                    known = (stamp, (result.schedule, result.problems[0].message if result.problems else ""),
                             time.monotonic())  # fmt: skip
            except (OSError, UnicodeDecodeError) as err:
                known = (stamp, (None, f"{name}: cannot read the schedule ({err})"), time.monotonic())
            self._listing[path] = known
        return known[1]

    def state(self, max_age: float = DISK_POLL) -> dict:
        """The renders of every schedule in the folder; rescanned when a render changed or after
        ``max_age`` seconds (shared by every page, so two tabs show the same)."""
        with self._snapshot_lock:
            now, version = time.monotonic(), self.renders.version
            if self._snapshot and self._snapshot[1] == version and now - self._snapshot[0] < max_age:
                return self._snapshot[2]
            rows = [(self.folder.name(p), *self.parsed(p)) for p in self.folder.schedules()]
            state = {"folder": str(self.folder.root), "renders": [_job_file(row) for row in self.renders.rows(rows)]}
            self._snapshot = (now, version, state)
            return state


JOB_FILE = "a batch job file"  # how a job file's row starts (it is listed, not opened as a schedule)


def _job_file(row: dict) -> dict:
    """A job file's row is in state ``job file`` (not an invalid schedule)."""
    if row["state"] == "invalid" and row["message"].startswith(JOB_FILE):
        row["state"] = "job file"
    return row


# ------------------------------------------------------------------------------ the gate


class Gate:
    """ASGI middleware: every request needs the token (cookie, ``X-Dreamvid-Token`` header or
    ``?token=``); ``/?token=T`` sets the cookie and redirects to ``/``. Requests that change
    something must be POSTs of JSON from the page's own origin. Adds :data:`HEADERS`."""

    def __init__(self, app, studio: Studio):
        self.app, self.studio = app, studio

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        request = Request(scope)
        problem = self.refusal(request)
        if problem:
            status, reason = problem
            return await _error(status, reason)(scope, receive, send_with_headers)
        token = self.studio.token
        if token and request.url.path == "/" and request.method == "GET" and "token" in request.query_params:
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(self.studio.cookie, token, httponly=True, samesite="strict", path="/")
            return await response(scope, receive, send_with_headers)
        await self.app(scope, receive, send_with_headers)

    def refusal(self, request: Request) -> tuple[int, str] | None:
        if request.method not in ("GET", "HEAD", "POST"):
            return 405, f"method {request.method} not allowed; expected GET or POST"
        token = self.studio.token
        if token:
            given = (request.headers.get("x-dreamvid-token") or request.query_params.get("token")
                     or request.cookies.get(self.studio.cookie) or "")  # fmt: skip
            if not hmac.compare_digest(given.encode(), token.encode()):
                what = "a wrong token" if given else "no token"
                return 403, (f"{what}; expected the token `dreamvid studio` printed: open the URL it printed "
                             "(ending in ?token=...)")  # fmt: skip
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
                return 403, f"a request from another site ({origin}); expected the studio's own page"
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return 415, "expected a JSON body (Content-Type: application/json)"
        return None


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


# ---------------------------------------------------------------------------- requests


async def _body(request: Request) -> dict:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(f"request body over {MAX_BODY} bytes; expected a schedule's JSON", 413)
    try:
        data = json.loads(raw)
    except ValueError:
        raise Refused("the body is not valid JSON; expected a JSON object") from None
    if not isinstance(data, dict):
        raise Refused("the body is not a JSON object; expected {\"name\": ..., ...}")
    return data


def _text(data: dict) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise Refused("text: missing or not a string; expected the schedule's YAML text")
    if len(text) > MAX_SCHEDULE:
        raise Refused(f"text: over {MAX_SCHEDULE} characters; expected a schedule")
    try:  # JSON can carry half a UTF-16 pair ("\ud800"), which no file can hold
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise Refused(f"text: character {err.start + 1} is half a UTF-16 pair; expected Unicode text") from None
    return text


def _studio(request: Request) -> Studio:
    return request.app.state.studio


def _schedule_name(studio: Studio, data: dict, *, exists: bool = True) -> tuple[str, Path]:
    path = studio.folder.file(data.get("name"), SCHEDULE_SUFFIXES, exists=exists)
    return studio.folder.name(path), path


async def _checked(studio: Studio, data: dict, *, decode: bool) -> tuple[str, str, checks.Check]:
    name, _ = _schedule_name(studio, data, exists=False)
    text = _text(data)
    return name, text, await to_thread.run_sync(lambda: checks.check(studio.folder, name, text, decode=decode))


def _first_problem(result: checks.Check) -> str:
    more = len(result.problems) - 1
    return result.problems[0].message + (f" (and {more} more)" if more > 0 else "")


# ------------------------------------------------------------------------------ routes


async def page(request: Request):
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})


async def state(request: Request):
    studio = _studio(request)
    return JSONResponse(await to_thread.run_sync(studio.state))


async def events(request: Request):
    studio = _studio(request)

    async def stream():
        last, sent = None, 0.0
        yield "retry: 1000\n\n"
        while not studio.closing:
            data = json.dumps(await to_thread.run_sync(studio.state))
            if data != last:
                yield f"event: state\ndata: {data}\n\n"
                last, sent = data, time.monotonic()
            elif time.monotonic() - sent > 15:
                yield ": keep-alive\n\n"
                sent = time.monotonic()
            await asyncio.sleep(EVENT_POLL)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})  # fmt: skip


async def read_file(request: Request):
    studio = _studio(request)
    name, path = _schedule_name(studio, {"name": request.query_params.get("name")})
    try:
        text = checks.read_text(path)
    except UnicodeDecodeError as err:
        raise Refused(f"{name}: not UTF-8 text at byte {err.start}; expected a YAML schedule") from None
    return JSONResponse({"name": name, "text": text})


async def video(request: Request):
    studio = _studio(request)
    path = studio.folder.file(request.query_params.get("name"), VIDEO_SUFFIXES)
    return FileResponse(path, media_type="video/mp4" if path.suffix.lower() in (".mp4", ".m4v") else None,
                        headers={"cache-control": "no-store"})  # fmt: skip


async def peek(request: Request):
    studio = _studio(request)
    name, path = _schedule_name(studio, {"name": request.query_params.get("name")})
    schedule, problem = await to_thread.run_sync(lambda: studio.parsed(path))
    if schedule is None or schedule.output_path is None or not studio.folder.output_inside(schedule):
        raise Refused(problem or f"{name}: output: no render of it in the studio folder; nothing to show", 404)
    from dreamvid.rendering.workdir import peek_path, work_dir

    try:
        data = peek_path(work_dir(schedule.output_path)).read_bytes()
    except FileNotFoundError:
        raise Refused(f"{name}: its render has shown no frame yet", 404) from None
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})


async def check(request: Request):
    studio = _studio(request)
    _, _, result = await _checked(studio, await _body(request), decode=True)
    return JSONResponse(result.to_json())


async def timeline(request: Request):
    studio = _studio(request)
    _, _, result = await _checked(studio, await _body(request), decode=False)
    if not result.ok:
        raise Refused(_first_problem(result), 422)
    from dreamvid.tools.timeline import timeline_png

    png = await to_thread.run_sync(lambda: timeline_png(result.schedule, figsize=(8.0, 5.6), dpi=80))
    return Response(png, media_type="image/png", headers={"cache-control": "no-store"})


async def preview(request: Request):
    studio = _studio(request)
    data = await _body(request)
    cancel = studio.previewer.ticket()  # the newest request wins, whatever its check costs
    frame, scale = data.get("frame"), data.get("scale", 0.5)
    if isinstance(frame, bool) or not isinstance(frame, int):
        raise Refused(f"frame: got {frame!r}; expected a frame number")
    if scale not in SCALES:
        raise Refused(f"scale: got {scale!r}; expected one of {', '.join(map(str, SCALES))}")
    name, text, result = await _checked(studio, data, decode=True)
    if not result.ok:
        raise Refused(_first_problem(result), 422)
    s = result.schedule
    if not 0 <= frame < s.total_frames:
        raise Refused(f"frame: {frame} is outside the schedule; expected 0..{s.total_frames - 1}")
    key = schedule_key(text, (studio.folder.root / name).parent, s.input_path)
    try:
        png = await to_thread.run_sync(lambda: studio.previewer.png(s, key, frame, float(scale), cancel))
    except Cancelled:
        raise Refused("cancelled: a newer preview was asked for", 409) from None
    except RuntimeError as err:  # torch: "Output size is too small", "Kernel size can't be greater than ..."
        from dreamvid.core.errors import is_out_of_memory

        if is_out_of_memory(err) or "size" not in str(err).lower():
            raise
        w, h = (max(32, round(side * scale)) for side in s.size)
        raise Refused(f"frame {frame} at scale {scale} is {w}x{h} pixels (less at its coarser octaves): too small "
                      "for its layers; expected a larger scale", 422) from None  # fmt: skip
    return Response(png, media_type="image/png", headers={"cache-control": "no-store", "x-frame": str(frame)})


async def _valid_schedule(request: Request):
    """The studio, and the request's schedule (name, text, check result) when it is valid; else refused."""
    studio = _studio(request)
    name, text, result = await _checked(studio, await _body(request), decode=True)
    if not result.ok:
        raise Refused(_first_problem(result), 422)
    return studio, name, text, result


async def motion(request: Request):
    studio, name, text, result = await _valid_schedule(request)
    s = result.schedule
    if any(side % 2 for side in s.size):
        raise Refused(f"{name}: size: {s.size[0]}x{s.size[1]}; expected even sides for the motion preview "
                      "(the browser's yuv420p video)", 422)  # fmt: skip
    key = schedule_key(text, (studio.folder.root / name).parent, s.input_path)
    video = await to_thread.run_sync(lambda: studio.motion_video(s, key))
    return Response(video, media_type="video/mp4", headers={"cache-control": "no-store"})


async def estimate(request: Request):
    _, _, _, result = await _valid_schedule(request)
    import dreamvid

    found = await to_thread.run_sync(lambda: dreamvid.estimate(result.schedule))
    return JSONResponse({"text": str(found), "seconds": found.seconds, "frame_seconds": found.frame_seconds,
                         "peak_bytes": found.peak_bytes})  # fmt: skip


async def save(request: Request):
    studio = _studio(request)
    data = await _body(request)
    name, path = _schedule_name(studio, data, exists=False)
    text = _text(data)
    if not path.parent.is_dir():
        raise Refused(f"{name}: its folder does not exist; expected a folder inside the studio folder", 404)
    from dreamvid.core.files import write_atomic

    await to_thread.run_sync(lambda: write_atomic(path, text, make_folder=False))
    studio.renders.changed()
    return JSONResponse({"name": studio.folder.name(path), "saved": True})


TEMPLATE = """\
# A dreamvid schedule: every key, its default and range are in docs/schedule.md.
input: noise              # or an image in this folder, e.g. logo.png
output: out/{stem}.mp4
size: [256, 144]          # width, height
fps: 15
seed: 0
checkpoint_every: 30
defaults:
  iterations: 4
  octaves: 2
  step: 0.008
  jitter: 16
  zoom: 1.03              # scale per frame (> 1 zooms in)
segments:
  - frames: 45
    layers: {{mixed0: 1.0}}   # edges and strokes
  - frames: 45
    layers: {{mixed3: 1.0}}   # circles and eyes
    transition: 15
"""


async def new(request: Request):
    studio = _studio(request)
    data = await _body(request)
    name, path = _schedule_name(studio, data, exists=False)
    if path.exists():
        raise Refused(f"{name}: already exists; expected a new file name", 409)
    if not path.parent.is_dir():
        raise Refused(f"{name}: its folder does not exist; expected a folder inside the studio folder", 404)
    import os

    try:  # O_EXCL: two tabs creating the same name cannot overwrite each other
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise Refused(f"{name}: already exists; expected a new file name", 409) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(TEMPLATE.format(stem=path.stem))
    studio.renders.changed()
    return JSONResponse({"name": studio.folder.name(path), "created": True})


async def render(request: Request):
    studio = _studio(request)
    data = await _body(request)
    name, path = _schedule_name(studio, data)
    fresh = data.get("fresh", False)
    if not isinstance(fresh, bool):
        raise Refused(f"fresh: got {fresh!r}; expected true or false")
    text = checks.read_text(path)
    result = await to_thread.run_sync(lambda: checks.check(studio.folder, name, text, decode=True))
    if not result.ok:
        raise Refused(_first_problem(result), 422)
    job = studio.renders.start(name, result.schedule, fresh=fresh)
    return JSONResponse({"name": name, **job.to_json()})


async def stop(request: Request):
    studio = _studio(request)
    data = await _body(request)
    name, path = _schedule_name(studio, data)
    schedule, problem = await to_thread.run_sync(lambda: studio.parsed(path))
    if schedule is None or schedule.output_path is None:
        raise Refused(problem or f"{name}: output: no output file; nothing to stop", 409)
    job = studio.renders.stop(schedule.output_path)
    return JSONResponse({"name": name, **job.to_json()})


# ----------------------------------------------------------------------------- errors


async def _refused(request: Request, err: Refused):
    return _error(err.status, str(err))


async def _http_error(request: Request, err: HTTPException):
    reason = {404: "no such page", 405: f"method {request.method} not allowed here"}.get(err.status_code, err.detail)
    return _error(err.status_code, f"{request.url.path}: {reason}")


async def _dreamvid_error(request: Request, err: Exception):
    from dreamvid.core.errors import InputError, first_line

    status = 422 if isinstance(err, InputError) else 500
    return _error(status, first_line(err))


async def _os_error(request: Request, err: OSError):
    from dreamvid.core.errors import describe_os_error

    return _error(500, describe_os_error(err))


async def _crash(request: Request, err: Exception):
    log.exception("studio: %s %s failed", request.method, request.url.path)
    return _error(500, f"internal error ({type(err).__name__}); the studio's terminal has the details")


def create_app(studio: Studio, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The application serving ``studio``. ``allowed_hosts``: the Host headers accepted
    (default: the loopback names), so that a DNS-rebinding page cannot reach it."""
    from dreamvid.core.errors import DreamvidError

    routes = [
        Route("/", page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
        Route("/api/file", read_file, methods=["GET"]),
        Route("/api/video", video, methods=["GET"]),
        Route("/api/peek", peek, methods=["GET"]),
        Route("/api/check", check, methods=["POST"]),
        Route("/api/timeline", timeline, methods=["POST"]),
        Route("/api/preview", preview, methods=["POST"]),
        Route("/api/motion", motion, methods=["POST"]),
        Route("/api/estimate", estimate, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
        Route("/api/new", new, methods=["POST"]),
        Route("/api/render", render, methods=["POST"]),
        Route("/api/stop", stop, methods=["POST"]),
    ]
    hosts = allowed_hosts or ["127.0.0.1", "localhost", "::1", "[::1]"]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(Gate, studio=studio)],
        exception_handlers={Refused: _refused, HTTPException: _http_error, DreamvidError: _dreamvid_error,
                            OSError: _os_error, Exception: _crash},
    )
    app.state.studio = studio
    return app
