#!/usr/bin/env bash
# Issue 6's GPU measurements in one device run (see docs/performance.md, "GPU").
#
# On the dev machine, prepare what the device lacks (both are git-ignored):
#   xz -T2 -6 -c "$(python3 -c 'import imageio_ffmpeg as f; print(f.get_ffmpeg_exe())')" > bench/ffmpeg.xz
#   pip download --only-binary=:all: -d bench/wheels pydantic pyyaml tqdm
# then run this through the device tool with carry ["bench/ffmpeg.xz", "bench/wheels"]:
#   bash bench/device_check.sh          (writes JSON files into $OUT)
set -u
export PYTHONPATH=$PWD
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
if [ -d bench/wheels ]; then
  python3 -m pip install -q --no-index --find-links bench/wheels pydantic pyyaml tqdm 2>&1 | tail -2
fi
if [ -f bench/ffmpeg.xz ]; then
  xz -dc bench/ffmpeg.xz > /tmp/ffmpeg && chmod +x /tmp/ffmpeg && export IMAGEIO_FFMPEG_EXE=/tmp/ffmpeg
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
python3 -c 'import torch; print("torch", torch.__version__)' | tee "$OUT/torch.txt"

# 1. memory: 1080p with 4 octaves under 8 GiB; 4K through tiling
timeout 150 python3 bench/gpu_memory.py --out "$OUT/memory.json" | tail -40

# 2. speed: dreamvid vs the plain baseline at 1080p, 10 iterations, mixed3, 1 octave
for mode in no-compile compile; do
  timeout 150 python3 -m dreamvid bench --device cuda --size 1920x1080 --frames 10 --random-weights \
    --"$mode" --preset veryfast --json > "$OUT/bench-$mode.json"
  tail -c 600 "$OUT/bench-$mode.json"; echo
done
