"""dreamvid batch: variants of a schedule rendered in parallel, locally or as Ray tasks.

The videos must be those of each variant rendered alone, a worker killed part-way must be
retried and resume to the same video, a bad variant fails alone, and a rerun renders nothing;
on a cluster started with `ray start --head` (token authentication on) too, a lost node included.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import yaml

from dreamvid.batch import run as batch
from dreamvid.batch.jobs import done_marker, fingerprint, is_finished, load_job
from dreamvid.batch.pool import local_plan
from dreamvid.core.errors import InputError
from dreamvid.media.read import read_frames
from dreamvid.rendering.loop import render
from dreamvid.rendering.workdir import work_dir
from dreamvid.schedule.schedule import load_schedule
from tests.conftest import ENV, ROOT, run_cli, write_schedule

TINY = {"size": [64, 64], "checkpoint_every": 2,
        "defaults": {"iterations": 1, "octaves": 1, "jitter": 4, "step": 0.02, "zoom": 1.05}}  # fmt: skip
SEGMENTS = [{"frames": 5, "layers": {"mixed0": 1.0}}]
GOOD = {"a_64x64": ("a.png", [64, 64]), "a_96x64": ("a.png", [96, 64]),
        "b_64x64": ("b.png", [64, 64]), "b_96x64": ("b.png", [96, 64])}  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A base schedule s.yaml, two images and one file that is not an image."""
    folder = tmp_path_factory.mktemp("batch")
    write_schedule(folder, segments=SEGMENTS, **TINY)
    cv2.imwrite(str(folder / "a.png"), skimage.data.astronaut()[::8, ::8, ::-1])
    cv2.imwrite(str(folder / "b.png"), skimage.data.chelsea()[::4, ::4, ::-1])
    (folder / "bad.png").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def references(project):
    """Each good variant's schedule written by hand and rendered alone by the ordinary render,
    with ``threads`` torch threads: on the CPU the bits of a dream depend on the thread
    count (reductions split differently), so a reference uses the batch worker's count."""
    import torch

    base = yaml.safe_load((project / "s.yaml").read_text())
    cache = {}

    def reference(name, threads):
        if (name, threads) not in cache:
            image, size = GOOD[name]
            path = project / f"ref_{name}.yaml"
            path.write_text(yaml.safe_dump({**base, "input": image, "size": size, "output": f"ref/{name}.mp4"}))
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                cache[name, threads] = render(load_schedule(path), output=project / f"ref-{threads}" / f"{name}.mp4")
            finally:
                torch.set_num_threads(before)
        return cache[name, threads]

    return reference


def write_job(folder, name, job):
    path = folder / name
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def same_video(a, b):
    fa, fb = read_frames(a), read_frames(b)
    return len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb))


def table(stdout):
    """{video: (status, whole line)} from the final table, which is all of stdout (Ray's own
    messages, such as a lost node's, go to stderr)."""
    assert stdout.split()[:2] == ["video", "status"], stdout
    rows = [line.split() for line in stdout.splitlines()[1:] if line.strip()]
    return {r[0]: (r[1], line) for r, line in zip(rows, stdout.splitlines()[1:])}


class KillRenders(threading.Thread):
    """SIGKILLs processes rendering videos into ``folder`` (a render's pid is in its work
    folder's lock), as a lost node or the OOM killer would: the first video to write a
    checkpoint (only video ``first``, when given) once, and every run of video ``always`` as
    soon as it holds its lease. ``stop()`` returns the name of the video killed once."""

    def __init__(self, folder, first=None, always=None):
        super().__init__(daemon=True)
        self.folder, self.first, self.always = folder, first, always
        self.killed, self.runs_killed, self.done = None, [], threading.Event()
        self.start()

    def run(self):
        deadline = time.monotonic() + 300
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.killed is None:
                for ckpt in self.folder.glob(f"{self.first or '*'}.mp4.parts/ckpt-*.pt"):
                    if self._kill(ckpt.parent):
                        self.killed = ckpt.parent.name.removesuffix(".mp4.parts")
                        break
            if self.always:
                pid = self._kill(self.folder / f"{self.always}.mp4.parts", spare=self.runs_killed)
                if pid:
                    self.runs_killed.append(pid)
            time.sleep(0.002)

    @staticmethod
    def _kill(work, spare=()):
        """SIGKILL the holder of ``work``'s lease unless it is in ``spare``; its pid, or None."""
        try:
            pid = int((work / "lock").read_text().split()[0])
            if pid not in spare:
                os.kill(pid, signal.SIGKILL)
                return pid
        except (OSError, ValueError, IndexError):  # no lease yet, or its holder is gone already
            pass
        return None

    def stop(self):
        self.done.set()
        self.join()
        return self.killed


def test_local_batch_gives_the_solo_videos_retries_a_killed_worker_and_reruns_nothing(project, references):
    job = write_job(project, "local.yaml", {"schedule": "s.yaml", "output": "out-local",
                                            "inputs": ["a.png", "b.png", "bad.png"],
                                            "sizes": [[64, 64], [96, 64]]})  # fmt: skip
    killer = KillRenders(project / "out-local")
    r = subprocess.run([sys.executable, "-m", "dreamvid", "batch", str(job), "--workers", "2"],
                       capture_output=True, text=True, env=ENV, timeout=300)  # fmt: skip
    killed = killer.stop()
    assert r.returncode == 1, r.stderr  # the bad input failed; the others did not
    rows = table(r.stdout)
    for name in ("bad_64x64", "bad_96x64"):
        assert rows[name][0] == "failed" and "bad.png: neither a readable image nor a video" in rows[name][1]
    assert killed in GOOD
    assert f"{killed}: worker killed by SIGKILL; resuming at frame" in r.stderr
    assert "2 runs" in rows[killed][1] and "resumed at frame" in rows[killed][1]
    out = project / "out-local"
    threads = local_plan(2, 6)[2]  # each of 2 workers gets cores // 2 threads
    for name in GOOD:
        assert rows[name][0] == "done", r.stdout
        assert same_video(out / f"{name}.mp4", references(name, threads)), name
        assert not work_dir(out / f"{name}.mp4").exists()
        # the resolved schedule beside the video renders that variant alone
        assert load_schedule(out / f"{name}.yaml").output_path == out / f"{name}.mp4"
    mtimes = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in GOOD}

    again = run_cli("batch", job, "--workers", "1")  # one worker, for the bad input
    assert again.returncode == 1, again.stderr
    rows = table(again.stdout)
    assert {name: rows[name][0] for name in GOOD} == dict.fromkeys(GOOD, "skipped")
    assert rows["bad_64x64"][0] == "failed"
    assert "4 of 6 videos already complete" in again.stderr
    assert {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in GOOD} == mtimes


@pytest.fixture(scope="module")
def ray_local():
    """A private Ray instance on this machine, localhost only, no dashboard or usage stats."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}})  # fmt: skip
    yield ray
    ray.shutdown()


def test_ray_batch_gives_the_solo_videos_retries_a_killed_task_and_reruns_nothing(
    project, references, ray_local, monkeypatch
):
    job = write_job(project, "ray.yaml", {"schedule": "s.yaml", "output": "out-ray", "inputs": ["a.png", "b.png"],
                                          "sizes": [[64, 64], [96, 64]]})  # fmt: skip
    killer = KillRenders(project / "out-ray")
    events = []
    results = batch.run(load_job(job), ray="auto", callback=events.append)
    assert [r.status for r in results] == ["done"] * 4, [r.error for r in results]
    killed = next(r for r in results if r.name == killer.stop())
    assert killed.attempts == 2 and killed.resumed_from > 0  # Ray reran it; it resumed
    assert any(e.event == "retry" and e.name == killed.name for e in events)
    assert events[-1].event == "done" and events[-1].frames_done == events[-1].frames_total == 20
    for r in results:
        assert same_video(r.output, references(r.name, 1)), r.name  # 1 CPU per task, 1 thread
    mtimes = [r.output.stat().st_mtime_ns for r in results]

    events = []
    again = batch.run(load_job(job), ray="auto", callback=events.append)
    assert [r.status for r in again] == ["skipped"] * 4
    assert not [e for e in events if e.event in ("video", "frame")]
    assert [r.output.stat().st_mtime_ns for r in again] == mtimes


# ------------------------------------------------------------------ job files (no rendering)


def test_variants_are_named_from_what_varies_and_carry_their_overrides(project):
    job = write_job(project, "names.yaml", {"schedule": "s.yaml", "inputs": ["a.png", "noise"], "sizes": ["96x64"],
                                            "seed": [1, 2], "defaults.zoom": [1.01]})  # fmt: skip
    variants = load_job(job)
    assert [v.name for v in variants] == ["a_96x64_seed1_zoom1.01", "a_96x64_seed2_zoom1.01",
                                          "noise_96x64_seed1_zoom1.01", "noise_96x64_seed2_zoom1.01"]  # fmt: skip
    v = variants[1]
    assert v.schedule.seed == 2 and v.schedule.size == (96, 64) and v.schedule.params(1).zoom == 1.01
    assert v.schedule.input_path == project / "a.png" and variants[2].schedule.input_path is None
    assert v.output == project / "out" / "a_96x64_seed2_zoom1.01.mp4"
    assert v.schedule.params(1).layers == load_schedule(project / "s.yaml").params(1).layers


def test_a_plain_list_of_schedules_is_a_job(project):
    other = write_schedule(project / "other", segments=SEGMENTS, **TINY)
    job = project / "list.yaml"
    job.write_text(yaml.safe_dump(["s.yaml", str(other.relative_to(project))]))
    with pytest.raises(InputError, match="also that of an earlier variant"):  # both are called s
        load_job(job)
    renamed = other.rename(other.with_name("t.yaml"))
    job.write_text(yaml.safe_dump(["s.yaml", str(renamed.relative_to(project))]))
    variants = load_job(job)
    assert [v.name for v in variants] == ["s", "t"]
    assert variants[1].schedule.input_path == renamed.parent / "in.png"  # relative to its own schedule


def test_every_variant_is_checked_up_front_with_the_job_file_variant_and_key(project):
    job = write_job(project, "bad-sizes.yaml", {"schedule": "s.yaml", "sizes": [[64, 64], [63, 64]],
                                                "segments.0.frames": [0, 5]})  # fmt: skip
    with pytest.raises(InputError) as err:
        load_job(job)
    lines = str(err.value).splitlines()
    assert all(line.startswith(f"{job}: variant ") for line in lines)
    assert any("variant 63x64_frames5 (from s.yaml): size: 63x64 has an odd side" in line for line in lines)
    assert any("variant 64x64_frames0 (from s.yaml): segments[0].frames:" in line for line in lines)
    assert not any("64x64_frames5" in line.split(":")[1] for line in lines)  # the good variant is fine

    job = write_job(project, "bad-key.yaml", {"schedule": "s.yaml", "seeds": [1, 2]})
    with pytest.raises(InputError, match=f"^{job}: seeds: did you mean seed\\?; expected schedule, schedules"):
        load_job(job)
    job = write_job(project, "bad-path.yaml", {"schedule": "s.yaml", "segments.7.zoom": [1.0]})
    with pytest.raises(InputError, match=f"^{job}: variant zoom1.0: segments.7.zoom: the base schedule has no "):
        load_job(job)


def test_finished_means_this_schedule_completed_it(project):
    base = write_schedule(project / "done", segments=SEGMENTS, **TINY)
    job = write_job(project / "done", "done.yaml", {"schedule": "s.yaml", "seed": [5]})
    (v,) = load_job(job)
    assert not is_finished(v.schedule)
    v.output.parent.mkdir()
    v.output.write_bytes(b"a finished video")
    marker = {"fingerprint": fingerprint(v.schedule), "bytes": v.output.stat().st_size}
    done_marker(v.output).write_text(json.dumps(marker))
    assert is_finished(v.schedule)
    base.write_text(base.read_text().replace("zoom: 1.05", "zoom: 1.06"))  # the base schedule changed
    (changed,) = load_job(job)
    assert changed.output == v.output and not is_finished(changed.schedule)
    work_dir(v.output).mkdir()  # a render is (or was) under way
    assert not is_finished(v.schedule)
    work_dir(v.output).rmdir()
    v.output.write_bytes(b"replaced")
    assert not is_finished(v.schedule)


def test_ray_flag_without_ray_says_how_to_get_it(project, monkeypatch, capsys):
    from dreamvid.cli import main

    job = write_job(project, "no-ray.yaml", {"schedule": "s.yaml", "output": "out-no-ray"})
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["batch", str(job), "--ray", "auto"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'dreamvid[ray]'" in err
    assert not (project / "out-no-ray").exists()  # nothing written


def test_the_example_job_validates():
    variants = load_job(ROOT / "schedules" / "logo-batch.yaml")
    assert [v.name for v in variants] == ["logo_1920x1080", "logo_1080x1920", "logo_1080x1080"]
    assert {v.output.parent for v in variants} == {ROOT / "out" / "batch"}


# A batch driven from Python whose callback sends this process a real SIGINT at the moment a
# worker's result is being booked (between the result and the next video being handed out).
CTRL_C_AT_FIRST_RESULT = """
import os, signal, sys
from dreamvid.batch import run as batch
from dreamvid.batch.jobs import load_job

sent = []

def callback(p):
    if p.event == "finished" and not sent:
        sent.append(os.kill(os.getpid(), signal.SIGINT))

results = batch.run(load_job(sys.argv[1]), workers=1, callback=callback)
print(";".join(f"{r.name}={r.status}" for r in results))
"""


def test_ctrl_c_while_a_result_is_booked_stops_the_local_batch(project):
    """The first Ctrl-C asks the batch to stop; it must stop (the booked video done, the
    other not started or interrupted), not hang until a second Ctrl-C."""
    job = write_job(project, "ctrl-c.yaml", {"schedule": "s.yaml", "output": "out-ctrl-c", "seed": [1, 2],
                                             "segments.0.frames": [2]})  # fmt: skip
    r = subprocess.run([sys.executable, "-c", CTRL_C_AT_FIRST_RESULT, str(job)], capture_output=True, text=True,
                       env=ENV, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    statuses = dict(item.split("=") for item in r.stdout.strip().split(";"))
    assert sorted(statuses.values()) in (["done", "not started"], ["done", "interrupted"]), statuses


# ------------------------------------------------------------------ what a batch says (issue 21)


def _complete(job):
    """Mark every variant of ``job`` finished (a video file and its done-marker), without rendering."""
    variants = load_job(job)
    for v in variants:
        v.output.parent.mkdir(parents=True, exist_ok=True)
        v.output.write_bytes(b"a finished video")
        marker = {"fingerprint": fingerprint(v.schedule), "bytes": v.output.stat().st_size}
        done_marker(v.output).write_text(json.dumps(marker))
    return variants


def test_nothing_left_to_render_starts_no_ray_and_no_bar(project, monkeypatch, capsys):
    pytest.importorskip("ray")
    from dreamvid.batch import cluster
    from dreamvid.cli import main

    job = write_job(project, "complete.yaml", {"schedule": "s.yaml", "output": "out-complete", "seed": [1, 2]})
    _complete(job)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started although nothing was left to render")

    monkeypatch.setattr(cluster, "connect", no_ray)
    assert main(["batch", str(job), "--ray", "local"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "all 2 videos are already complete; nothing to render"
    assert [status for status, _ in table(out).values()] == ["skipped", "skipped"]
    # docs/batch.md says the same (issue 32: it said "in one line", and the table was left out)
    doc = re.search(r"says so in one line on stderr\s+\(`([^`]+)`\), prints the table \(every video\s+\*skipped\*\) on stdout",
                    (ROOT / "docs" / "batch.md").read_text())
    assert doc and re.sub(r"\d+", "2", doc.group(1)) == err.strip()


def test_the_table_reports_time_spent_and_frames_rendered_in_this_run(project):
    """An interrupted video's time is the time it ran (not 0.0 s), and its frames are those
    dreamed in this run; a video whose frames were all rendered before is 'joined only'."""
    from dreamvid.batch.run import Tracker
    from dreamvid.cli import _batch_table
    from dreamvid.core.progress import Progress

    job = write_job(project, "table.yaml", {"schedule": "s.yaml", "output": "out-table", "seed": [1, 2]})
    variants = load_job(job)
    tracker = Tracker(variants, variants, lambda p: None)
    a, b = (v.name for v in variants)
    tracker.progress(a, Progress("start", start=2, total=5))
    for n in (3, 4):
        tracker.progress(a, Progress("frame", frame=n, total=5, start=2))
    tracker.progress(b, Progress("start", start=5, total=5))
    time.sleep(0.3)
    tracker.finish(a, {"status": "interrupted", "frames": 0, "error": "cancelled"})  # as Ray reports a cancel
    tracker.finish(b, {"status": "done", "frames": 5, "seconds": 0.0})
    rows = {line.split()[0]: line.split() for line in _batch_table(tracker.results.values()).splitlines()[1:]}
    assert rows[a][:4] == [a, "interrupted", "4/5", "2"] and float(rows[a][4]) >= 0.3
    assert rows[b][:5] == [b, "done", "5/5", "joined", "only"] and float(rows[b][5]) >= 0.3


def test_a_video_that_only_needed_joining_says_so(project, net):
    """Its frames were all rendered (and kept) before; the batch only joins them."""
    job = write_job(project, "join.yaml", {"schedule": "s.yaml", "output": "out-join", "seed": [7]})
    (v,) = load_job(job)
    render(v.schedule, model=net, keep_parts=True)
    v.output.unlink()
    r = run_cli("batch", job)
    assert r.returncode == 0, r.stderr
    assert f"done {v.name}: joined only in " in r.stderr
    status, line = table(r.stdout)[v.name]
    assert status == "done" and " joined only " in line


def test_ray_keeps_its_log_lines_to_itself(project):
    """`--ray local` prints dreamvid's lines only (Ray's warnings only with --debug)."""
    pytest.importorskip("ray")
    job = write_job(project, "ray-quiet.yaml", {"schedule": "s.yaml", "output": "out-ray-quiet",
                                                "segments.0.frames": [2]})  # fmt: skip
    r = run_cli("batch", job, "--ray", "local", timeout=400)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and "frame" not in line]  # the bar aside
    assert all(line.startswith(("done ", "video ")) for line in lines), r.stderr
    assert "WARNING" not in r.stderr and "Token authentication" not in r.stderr


def test_rays_messages_on_the_driver_go_to_stderr_so_stdout_is_the_table_alone(monkeypatch, capsys):
    """Ray prints a lost node's or a retried task's message with its own ``print_to_stdstream``
    on ``sys.stdout``, from a driver thread; inside ``cluster.joined`` that lands on stderr
    (CI once saw raylet log lines above the table on stdout)."""
    pytest.importorskip("ray")
    from ray._private import worker as ray_worker

    from dreamvid.batch import cluster

    calls = []
    monkeypatch.setattr(cluster, "connect", lambda address, logs=False: calls.append("connect") or True)
    monkeypatch.setattr(cluster, "disconnect", lambda: calls.append("disconnect"))
    message = {"lines": ["Task _remote_render failed. There are 3 retries remaining"], "pid": "raylet", "is_err": False}
    with cluster.joined("auto"):
        thread = threading.Thread(target=ray_worker.print_to_stdstream, args=(message, False))
        thread.start()
        thread.join()
    print("video status")
    out, err = capsys.readouterr()
    assert calls == ["connect", "disconnect"]
    assert out == "video status\n" and "3 retries remaining" in err


# ------------------------------------------------------------ a real cluster: `ray start --head` (issue 33)

# The `ray` command of the Ray these tests import (its console script calls this same main;
# PATH plays no part). The tests run it as users do: a head started on its own, with token
# authentication on (Ray's default once a token exists), joined by address and with `auto`.
RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """Ray started as users start it, ``ray start ... --block``, each node in a process group
    of its own, with a private HOME (the token in HOME/.ray/auth_token, never the user's) and
    a private RAY_TMPDIR (the sessions, and the address file `auto` reads). Every port Ray
    opens by a fixed number gets a free one, so no other cluster on this machine is reached or
    disturbed. Its processes are those whose environment holds its HOME (Ray's workers rename
    themselves, so a command line is not enough)."""

    def __init__(self):
        self.home = Path(tempfile.mkdtemp(prefix="dv-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
        (self.home / ".ray").mkdir()
        (self.home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
        (self.home / "t").mkdir()
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {k: v for k, v in ENV.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        self.env.update(HOME=str(self.home), RAY_TMPDIR=str(self.home / "t"), RAY_USAGE_STATS_ENABLED="0",
                        RAY_health_check_period_ms="1000")  # a node that went away is marked dead sooner  # fmt: skip
        self.nodes = []

    def start_head(self):
        return self.start_node(["--head", "--port", str(self.port), "--include-dashboard", "false"], self.env)

    def start_node(self, args, env, cpus=2, timeout=120):
        """Start a node; returns its ``ray start --block`` process once Ray says it runs."""
        log = self.home / f"node{len(self.nodes)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([*RAY_CLI, "start", *args, "--block", "--num-cpus", str(cpus), "--disable-usage-stats",
                                     "--dashboard-agent-listen-port", str(_free_port())],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.nodes.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            proc.log = log.read_text(errors="replace")
            if "Ray runtime started" in proc.log:
                return proc
            time.sleep(0.2)
        raise AssertionError(f"ray start {' '.join(args)} did not start:\n{log.read_text(errors='replace')[-3000:]}")

    def processes(self, node=None):
        """The pids of this cluster's live processes (of one node's process group, with ``node``)."""
        found, mark = set(), f"HOME={self.home}\0".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                pgid = os.getpgid(int(entry.name))
                ours = pgid == node.pid if node else (mark in (entry / "environ").read_bytes() or
                                                      pgid in [n.pid for n in self.nodes])  # fmt: skip
                zombie = (entry / "stat").read_text().split(")")[-1].split()[0] == "Z"
            except (OSError, ValueError):
                continue
            if ours and not zombie:
                found.add(int(entry.name))
        return found

    def stop(self):
        """Stop this cluster only (`ray stop` would stop every Ray on the machine): SIGTERM its
        processes, SIGKILL what is left after 3 s; returns the pids still alive after that."""
        for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            for pid in self.processes():
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=5)
        left = self.processes()
        shutil.rmtree(self.home, ignore_errors=True)
        return left


@pytest.fixture(scope="module")
def head():
    """A Ray cluster started as users start one, `ray start --head`, stopped whatever happens."""
    pytest.importorskip("ray", reason="Ray is not installed (bash install.sh --test installs it)")
    cluster = RayCluster()
    try:
        assert "Token authentication is enabled" in cluster.start_head().log  # Ray >= 2.59 when a token exists
        yield cluster
    finally:
        left = cluster.stop()
        assert not left, f"processes of the test's Ray cluster outlived it: {sorted(left)}"


def cli(args, env, timeout=400):
    return subprocess.run([sys.executable, "-m", "dreamvid", *map(str, args)], check=False, capture_output=True,
                          text=True, env=env, timeout=timeout)  # fmt: skip


def test_a_cluster_batch_by_address_survives_a_killed_worker_and_fails_a_video_that_keeps_dying(
    project, references, head
):
    """By address, with the token where Ray keeps it (~/.ray/auth_token): a_64x64's worker is
    SIGKILLed after its first checkpoint and Ray's retry resumes it there; every run of
    b_64x64 is killed, so after --retries 1 it fails alone. Then `--ray auto` finishes it."""
    job = write_job(project, "cluster.yaml", {"schedule": "s.yaml", "output": "out-cluster", "inputs": ["a.png", "b.png"],
                                              "sizes": [[64, 64]]})  # fmt: skip
    out = project / "out-cluster"
    killer = KillRenders(out, first="a_64x64", always="b_64x64")
    t = time.monotonic()
    r = cli(["batch", job, "--ray", head.address, "--retries", "1"], head.env)
    killer.stop()
    print(f"by address: {time.monotonic() - t:.1f} s")
    assert r.returncode == 1, r.stderr  # b failed; a did not
    rows = table(r.stdout)
    assert killer.killed == "a_64x64" and rows["a_64x64"][0] == "done", r.stdout + r.stderr
    resumed = re.search(r"a_64x64: its worker was restarted; resuming at frame (\d+) \(attempt 2\)", r.stderr)
    assert resumed and int(resumed[1]) >= 2, r.stderr  # the first checkpoint holds frames 0-1: not frame 0 again
    assert f"(resumed at frame {resumed[1]}, 2 runs)" in rows["a_64x64"][1]
    assert same_video(out / "a_64x64.mp4", references("a_64x64", 1))  # 1 CPU per task: 1 torch thread
    assert len(killer.runs_killed) == 2  # the first run and its one retry
    assert rows["b_64x64"][0] == "failed" and "its worker died 2 times" in rows["b_64x64"][1], r.stdout
    assert not (out / "b_64x64.mp4").exists()
    print(f"a_64x64 resumed at frame {resumed[1]} of 5 after a SIGKILL; b_64x64 killed {len(killer.runs_killed)} times")

    t = time.monotonic()
    again = cli(["batch", job, "--ray", "auto"], head.env)  # RAY_TMPDIR: auto finds this cluster
    print(f"auto: {time.monotonic() - t:.1f} s")
    assert again.returncode == 0, again.stderr
    rows = table(again.stdout)
    assert rows["a_64x64"][0] == "skipped" and rows["b_64x64"][0] == "done", again.stdout
    assert same_video(out / "b_64x64.mp4", references("b_64x64", 1))


def _parent(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1])


def kill_node_when_its_video_has_a_checkpoint(cluster, node, folder, timeout=300):
    """SIGKILL every process of ``node`` (its raylet and agents, and the worker rendering a
    video there) once that video has a checkpoint in ``folder``, as when a machine goes away;
    returns that video's name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = cluster.processes(node)
        for lock in folder.glob("*.parts/lock"):
            try:
                worker = int(lock.read_text().split()[0])
                there = _parent(worker) in members
            except (OSError, ValueError, IndexError):
                continue
            if there and any(lock.parent.glob("ckpt-*.pt")):
                for pid in members | {worker}:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                return lock.parent.name.removesuffix(".mp4.parts")
        time.sleep(0.05)
    raise AssertionError("no video was rendered on the second node")


def test_a_node_that_goes_away_takes_no_video_with_it(project, references, head):
    """A second node joins as docs/batch.md says (RAY_AUTH_MODE=token, the head's token in
    ~/.ray/auth_token); once its video has a checkpoint the whole node is killed. Ray reruns
    the task on the head, it resumes from that checkpoint, and the batch finishes (the
    progress queue lives on the driver's node: before, it could live on the lost node, and
    the batch died with ActorUnavailableError)."""
    node = head.start_node(["--address", head.address], {**head.env, "RAY_AUTH_MODE": "token"})
    job = write_job(project, "node-lost.yaml", {"schedule": "s.yaml", "output": "out-node-lost", "inputs": ["a.png"],
                                                "sizes": [[64, 64], [96, 64]]})  # fmt: skip
    out = project / "out-node-lost"
    t = time.monotonic()
    batch_run = subprocess.Popen([sys.executable, "-m", "dreamvid", "batch", str(job), "--ray", head.address,
                                  "--cpus-per-video", "2"], env=head.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:  # 2 CPUs a video: one on the head, one on the second node
        lost = kill_node_when_its_video_has_a_checkpoint(head, node, out)
        stdout, stderr = batch_run.communicate(timeout=300)
    finally:
        if batch_run.poll() is None:
            batch_run.kill()
            batch_run.wait()
    print(f"node lost: {time.monotonic() - t:.1f} s")
    assert batch_run.returncode == 0, stderr
    rows = table(stdout)
    assert rows[lost][0] == "done" and re.search(r"\(resumed at frame [2-4], 2 runs\)", rows[lost][1]), stdout
    assert same_video(out / f"{lost}.mp4", references(lost, 2))  # 2 CPUs per task: 2 torch threads


# One process, three attempts to join: the time each takes is printed after its line.
TRY_TO_JOIN = """
import os, sys, time
from dreamvid.batch import cluster, jobs  # imported before timing (the first import is slow)
from dreamvid.cli import main
import ray

for address, token in zip(sys.argv[2::2], sys.argv[3::2]):
    if token != "-":
        os.environ["RAY_AUTH_TOKEN"] = token
    t = time.monotonic()
    code = main(["batch", sys.argv[1], "--ray", address])
    print(f"{code} {time.monotonic() - t:.1f}", flush=True)
    sys.stderr.flush()
"""


def test_joining_a_cluster_says_in_seconds_when_there_is_none_or_it_wants_its_token(project, head):
    job = write_job(project, "no-join.yaml", {"schedule": "s.yaml", "output": "out-no-join"})
    env = {**head.env, "HOME": str(project)}  # no token here
    nobody = f"127.0.0.1:{_free_port()}"
    r = subprocess.run([sys.executable, "-c", TRY_TO_JOIN, job, nobody, "-", head.address, "-", head.address, "wrong"],
                       check=False, capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, r.stderr  # one line each, nothing from Ray
    assert f"--ray {nobody}: no Ray cluster found at " in lines[0] and "Connection refused" in lines[0]
    assert lines[1].startswith(f"dreamvid: error: --ray {head.address} (")  # and the address Ray resolved it to
    assert "): the Ray cluster wants its authentication token and there is none here" in lines[1]
    assert "~/.ray/auth_token" in lines[1] and "RAY_AUTH_TOKEN" in lines[1] and "ray get-auth-token" in lines[1]
    assert "): the Ray cluster refused the token from RAY_AUTH_TOKEN: it is not this cluster's" in lines[2]
    results = [line.split() for line in r.stdout.splitlines() if line.strip()]
    assert [code for code, _ in results] == ["2", "2", "2"], r.stdout
    assert all(float(seconds) < 10 for _, seconds in results), r.stdout  # Ray alone retries for 20 s
    print(f"no cluster, no token, wrong token: exit 2 after {', '.join(s for _, s in results)} s")
    assert not (project / "out-no-join").exists()  # nothing written


def test_an_unreadable_token_file_is_one_line_not_a_crash(project):
    """Ray aborts the process (a C++ crash and its stack) when RAY_AUTH_TOKEN_PATH cannot be read."""
    pytest.importorskip("ray")
    job = write_job(project, "token-file.yaml", {"schedule": "s.yaml", "output": "out-token-file"})
    env = {k: v for k, v in ENV.items() if k != "RAY_AUTH_TOKEN"}
    r = cli(["batch", job, "--ray", "local"], {**env, "RAY_AUTH_TOKEN_PATH": str(project / "no-such-token")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"RAY_AUTH_TOKEN_PATH={project / 'no-such-token'}: cannot read the Ray token" in r.stderr
    assert not (project / "out-token-file").exists()


def test_a_node_that_cannot_see_the_job_folder_says_so(tmp_path):
    from dreamvid.batch.cluster import node_problem

    schedule = tmp_path / "out" / "v.yaml"
    problem = node_problem({"name": "v", "schedule": str(schedule)}, "10.0.0.7")
    assert problem.startswith(f"node 10.0.0.7 cannot see {schedule}; expected the job's folders")
    assert "every node mounts at the same path" in problem
    schedule.parent.mkdir()
    schedule.write_text("size: [64, 64]\n")
    assert node_problem({"name": "v", "schedule": str(schedule)}, "10.0.0.7") == ""
