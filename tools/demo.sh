#!/bin/bash
# Installs what is missing, builds, and captions GStreamer's test patterns
# with the element and its default model (models/vlmdescribe-tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build
export GST_PLUGIN_PATH="$PWD/build/gst"
for pattern in smpte red ball checkers-8 snow gradient; do
  printf 'videotestsrc pattern=%-10s -> ' "$pattern"
  gst-launch-1.0 -m videotestsrc pattern="$pattern" num-buffers=30 \
      ! video/x-raw,width=320,height=240,framerate=30/1 \
      ! vlmdescribe interval=1000000000 leaky=no ! fakesink 2>&1 \
    | grep -o 'vlm-caption, .*' | grep -o 'text=(string)[^,]*' \
    | sed 's/^text=(string)//; s/\\//g; s/"//g'
done
