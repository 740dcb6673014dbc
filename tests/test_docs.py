import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert blocks[0].startswith("bash install.sh && dreamvid render schedules/demo.yaml")
    test_cmd = blocks[1].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_demo_schedule_validates():
    from dreamvid.schedule.schedule import load_schedule

    s = load_schedule(ROOT / "schedules" / "demo.yaml")
    assert s.total_frames == 90 and s.size == (256, 144)
