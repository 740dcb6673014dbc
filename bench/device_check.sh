#!/usr/bin/env bash
# The GPU measurements of one lent device run (issue 34; docs/performance.md, "GPU").
#
#   bash bench/device_check.sh --prepare    on a development machine with the registries: builds
#                                           bench/carry/ (git-ignored): wheels for the device's
#                                           Python 3.12 / manylinux x86_64 of what it lacks
#                                           (pydantic and its deps; imageio-ffmpeg 0.6.0, whose
#                                           static ffmpeg 7.0.2 has libx264), a manifest, the size
#   bash bench/device_check.sh              on the device (run tool, carry ["bench/carry"]):
#                                           installs the carry set offline into a scratch folder,
#                                           checks dreamvid imports and ffmpeg encodes, then runs
#                                           bench/device_measure.py, which writes JSON into $OUT
#                                           as each measurement ends (8 minutes at most)
#   bash bench/device_check.sh --rehearse   the same steps on this machine's CPU at tiny sizes,
#                                           with $REHEARSE_PYTHON (default /work/venv312/bin/python:
#                                           Python 3.12, torch 2.11 and only what the device has)
#
# Any step that fails stops the script with a line saying which (set -e, no output piped away),
# except the measurements: each writes its own JSON, failed or not, and the script exits non-zero
# if one failed.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=bench/carry
LIMIT_MIB=60
PINS=("pydantic>=2.6,<3" "imageio-ffmpeg==0.6.0")  # what the device lacks (/work/.library/device/KINDS.md)

fail() { echo "device_check: $*" >&2; exit 1; }

prepare() {
  rm -rf "$CARRY" && mkdir -p "$CARRY/wheels"
  python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$CARRY/wheels" "${PINS[@]}" \
    || fail "pip download failed"
  (cd "$CARRY/wheels" && for f in *.whl; do echo "$(stat -c %s "$f") $(sha256sum "$f" | cut -c1-16) $f"; done) \
    > "$CARRY/MANIFEST.txt"
  printf '%s\n' "${PINS[@]}" > "$CARRY/requirements.txt"
  local bytes
  bytes=$(du -sb "$CARRY" | cut -f1)
  echo "total $bytes bytes ($((bytes / 1048576)) MiB; limit $LIMIT_MIB MiB)" >> "$CARRY/MANIFEST.txt"
  cat "$CARRY/MANIFEST.txt"
  [ "$bytes" -le $((LIMIT_MIB * 1048576)) ] || fail "the carry set is over $LIMIT_MIB MiB"
}

install() {  # $1: python; installs the carry set offline into $SITE, nothing from anywhere else
  [ -f "$CARRY/requirements.txt" ] || fail "no $CARRY: run bash bench/device_check.sh --prepare first (and carry it)"
  rm -rf "$SITE" && mkdir -p "$SITE"
  "$1" -m pip install --quiet --no-index --find-links "$CARRY/wheels" --target "$SITE" -r "$CARRY/requirements.txt" \
    || fail "offline install of the carry set failed"
  export PYTHONPATH="$PWD:$SITE"
  "$1" - <<'EOF' || fail "dreamvid does not import, ffmpeg cannot encode libx264 or a tiny render failed"
import subprocess, sys, tempfile, time, torch, pydantic
import dreamvid
from dreamvid.engine.model import load_model
from dreamvid.media.ffmpeg import ffmpeg_exe
from dreamvid.media.read import probe_video
exe = ffmpeg_exe()
encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=True).stdout
assert " libx264 " in encoders, "no libx264 in " + exe
print(f"device_check: python {sys.version.split()[0]}, torch {torch.__version__}, pydantic {pydantic.VERSION}, "
      f"cuda {torch.cuda.is_available()}, ffmpeg {exe}")
t = time.perf_counter()  # a tiny render, eager: schedule, dream, colour, encode, join
net = load_model(random_init=True, device="cuda" if torch.cuda.is_available() else "cpu")
out = dreamvid.render({"input": "noise", "size": [96, 64], "fps": 12, "compile": False, "checkpoint_every": 2,
                       "segments": [{"frames": 3, "layers": {"mixed3": 1.0}, "iterations": 1, "octaves": 1}]},
                      tempfile.mkdtemp() + "/tiny.mp4", model=net, progress=False)
print(f"device_check: a tiny render: {probe_video(out)} in {time.perf_counter() - t:.1f} s")
EOF
}

measure() {  # $1: python, then device_measure's arguments
  local py=$1 rc=0
  shift
  timeout -k 10 "$BUDGET" "$py" bench/device_measure.py --out "$OUT" "$@" || rc=$?
  [ "$rc" -eq 124 ] && echo "device_check: the measurements ran past ${BUDGET} s; what ended is in $OUT" >&2
  echo "device_check: results in $OUT:"
  ls -l "$OUT"
  [ -f "$OUT/summary.json" ] && cat "$OUT/summary.json"
  return "$rc"
}

case "${1:-}" in
  --prepare)
    prepare ;;
  --rehearse)
    PY=${REHEARSE_PYTHON:-/work/venv312/bin/python}
    [ -x "$PY" ] || fail "$PY not found: make a Python 3.12 venv with torch==2.11.* torchvision==0.26.* and the device's packages"
    SITE=$(mktemp -d)/site OUT=${OUT:-$(mktemp -d)/out} BUDGET=${BUDGET:-1500}
    mkdir -p "$OUT"
    install "$PY"
    measure "$PY" --rehearse ;;
  "")
    SITE=/tmp/dreamvid-site OUT=${OUT:-/tmp/device-out} BUDGET=${BUDGET:-420}
    mkdir -p "$OUT"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || fail "nvidia-smi failed"
    cat "$OUT/gpu.csv"
    install python3
    measure python3 ;;
  *)
    fail "usage: bash bench/device_check.sh [--prepare | --rehearse]" ;;
esac
