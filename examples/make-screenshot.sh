#!/bin/bash
# Makes docs/caption-overlay.png: the last frame of the overlay recipe
# (examples/recipes.sh overlay) on a test pattern, with its caption.
#
#   make-screenshot.sh [OUT.png]     (default: docs/caption-overlay.png)
#
# VLM_MODEL as for recipes.sh (default: the element's default model).
set -euo pipefail
here=$(dirname "$0")
out=${1:-$here/../docs/caption-overlay.png}
frames=$(mktemp -d)
trap 'rm -rf "$frames"' EXIT

# A live source paces the video: by the last frame, the caption of the
# first one is on screen.
bash "$here/recipes.sh" overlay \
  "videotestsrc is-live=true num-buffers=30 pattern=ball ! video/x-raw,width=480,height=270,framerate=30/1" \
  "pngenc ! multifilesink location=$frames/%02d.png" > /dev/null
cp "$frames/29.png" "$out"
