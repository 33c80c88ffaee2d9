#!/bin/bash
# `meson install --destdir` puts everything where it belongs, and it works
# from there: the plugin (found by GStreamer through its system path, its
# default model pointing at the installed one), libvlm for other programs
# (a program builds with vlm.h and vlm.pc alone and loads a checkpoint),
# vlm-run, and the default model once models/vlmdescribe-tiny exists.
# Also checks that --prefix=/usr puts the plugin in GStreamer's own plugin
# directory, so that no GST_PLUGIN_PATH is needed after installing there.
set -euo pipefail
: "${VLM_TEST_MODEL:?}" "${VLM_BUILD_ROOT:?}" "${VLM_SOURCE_ROOT:?}"
: "${VLM_PREFIX:?}" "${VLM_LIBDIR:?}" "${VLM_DATADIR:?}" "${VLM_TEST_TMPDIR:?}"

fail () {
  echo "FAIL: $*" >&2
  exit 1
}

dest=$VLM_TEST_TMPDIR/dest
rm -rf "$dest"
mkdir -p "$dest"
meson install -C "$VLM_BUILD_ROOT" --no-rebuild --quiet --destdir "$dest" \
  > "$VLM_TEST_TMPDIR/install.log" 2>&1 \
  || fail "meson install failed, see $VLM_TEST_TMPDIR/install.log"

root=$dest$VLM_PREFIX
libdir=$root/$VLM_LIBDIR
plugindir=$libdir/gstreamer-1.0
model=$VLM_PREFIX/$VLM_DATADIR/vlmdescribe/models/vlmdescribe-tiny
for f in "$plugindir/libgstvlm.so" "$libdir/libvlm.so.0" "$libdir/libvlm.a" \
  "$root/include/vlm/vlm.h" "$libdir/pkgconfig/vlm.pc" "$root/bin/vlm-run"; do
  [ -f "$f" ] || fail "not installed: ${f#"$dest"}"
done
if [ -d "$VLM_SOURCE_ROOT/models/vlmdescribe-tiny" ]; then
  [ -f "$dest$model/config.json" ] || fail "default model not installed in $model"
  echo "default model installed in $model"
fi

# GStreamer finds the installed plugin in a system plugin directory; its
# default model is the installed one (or the source tree's, when present).
inspect=$(GST_PLUGIN_SYSTEM_PATH_1_0=$plugindir GST_PLUGIN_PATH_1_0='' \
  GST_REGISTRY=$VLM_TEST_TMPDIR/registry.bin gst-inspect-1.0 vlmdescribe) \
  || fail "gst-inspect-1.0 does not find the installed vlmdescribe"
grep -q "Filename *$plugindir/libgstvlm.so" <<< "$inspect" \
  || fail "vlmdescribe not loaded from $plugindir"
grep -Eq "Default: \"($model|$VLM_SOURCE_ROOT/models/vlmdescribe-tiny)\"" \
  <<< "$inspect" || fail "default model is not $model"

# With --prefix=/usr, libdir/gstreamer-1.0 is GStreamer's own directory.
gst_prefix=$(pkg-config --variable=prefix gstreamer-1.0)
gst_plugins=$(pkg-config --variable=pluginsdir gstreamer-1.0)
[ "${gst_plugins#"$gst_prefix"/}" = "$VLM_LIBDIR/gstreamer-1.0" ] \
  || fail "plugins go to $VLM_LIBDIR/gstreamer-1.0, GStreamer's are in $gst_plugins"
echo "plugin: $VLM_PREFIX/$VLM_LIBDIR/gstreamer-1.0 (GStreamer looks in" \
  "$gst_plugins: with --prefix=$gst_prefix no GST_PLUGIN_PATH is needed)"

# A program built with the installed header and pkg-config file alone.
mkdir -p "$VLM_TEST_TMPDIR/pkgconfig"
sed "s|^prefix=|prefix=$dest|" "$libdir/pkgconfig/vlm.pc" \
  > "$VLM_TEST_TMPDIR/pkgconfig/vlm.pc"
read -ra flags <<< "$(PKG_CONFIG_PATH=$VLM_TEST_TMPDIR/pkgconfig \
  pkg-config --cflags --libs vlm)"
# shellcheck disable=SC2086 # VLM_SANITIZE: flags of a sanitizer build
cc ${VLM_SANITIZE:-} -o "$VLM_TEST_TMPDIR/use_libvlm" \
  "$(dirname "$0")/use_libvlm.c" "${flags[@]}" \
  || fail "cannot build against the installed libvlm"
family=$(LD_LIBRARY_PATH=$libdir "$VLM_TEST_TMPDIR/use_libvlm" "$VLM_TEST_MODEL") \
  || fail "the program built against libvlm cannot load $VLM_TEST_MODEL"
echo "a program built with vlm.pc loads the fixture: family $family"
