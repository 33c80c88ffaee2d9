#!/bin/sh
# Installs every Debian 12 package that building, the demo and the tests need.
# Idempotent: apt-get only installs what is missing. Run as root.
set -eu
# dpkg-dev: meson asks dpkg-architecture for the multiarch libdir
# (lib/x86_64-linux-gnu), where GStreamer looks for plugins.
PKGS="
  gcc g++ dpkg-dev pkg-config meson ninja-build git ca-certificates
  libglib2.0-dev libjson-glib-dev libopenblas-dev libsentencepiece-dev sentencepiece
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-x
  python3 python3-numpy python3-pil valgrind
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
"
# Only to fuzz (tests/fuzz, -Dfuzzing=enabled): tools/setup.sh fuzz
if [ "${1:-}" = fuzz ]; then
  PKGS="$PKGS clang libclang-rt-dev"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
fi
