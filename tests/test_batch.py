"""dreamvid batch: variants of a schedule rendered in parallel, locally or as Ray tasks.

The videos must be those of each variant rendered alone, a worker killed part-way must be
retried and resume to the same video, a bad variant fails alone, and a rerun renders nothing.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

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
    """{video: (status, whole line)} from the final table."""
    rows = [line.split() for line in stdout.splitlines()[1:] if line.strip()]
    return {r[0]: (r[1], line) for r, line in zip(rows, stdout.splitlines()[1:])}


class KillFirstRender(threading.Thread):
    """Watches ``folder`` for the first checkpoint of any video and SIGKILLs the process that
    renders it (its pid is in the work folder's lock), as a lost node or OOM killer would."""

    def __init__(self, folder):
        super().__init__(daemon=True)
        self.folder, self.killed, self.done = folder, None, threading.Event()
        self.start()

    def run(self):
        deadline = time.monotonic() + 300
        while not self.done.is_set() and time.monotonic() < deadline:
            for ckpt in self.folder.glob("*.parts/ckpt-*.pt"):
                try:
                    pid = int((ckpt.parent / "lock").read_text().split()[0])
                    os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError, IndexError):
                    continue
                self.killed = ckpt.parent.name.removesuffix(".mp4.parts")
                return
            time.sleep(0.002)

    def stop(self):
        self.done.set()
        self.join()
        return self.killed


def test_local_batch_gives_the_solo_videos_retries_a_killed_worker_and_reruns_nothing(project, references):
    job = write_job(project, "local.yaml", {"schedule": "s.yaml", "output": "out-local",
                                            "inputs": ["a.png", "b.png", "bad.png"],
                                            "sizes": [[64, 64], [96, 64]]})  # fmt: skip
    killer = KillFirstRender(project / "out-local")
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
    killer = KillFirstRender(project / "out-ray")
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
    doc = re.search(r"says so in one line on stderr\s+\(`([^`]+)`\), still prints the table on stdout",
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
