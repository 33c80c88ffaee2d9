#!/bin/bash
# Installs what is missing, builds, and describes an image with a checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build
./build/src/vlm-run --model tests/data/paligemma-tiny/pg-f32 \
  --image tests/data/paligemma-tiny/images/img320x240.png --json --verbose
