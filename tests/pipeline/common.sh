# Sourced by the pipeline tests: checks the environment meson gives them
# (GST_PLUGIN_PATH_1_0 with our plugin, VLM_TEST_MODEL) and the system
# elements they use, and helpers to run gst-launch-1.0.
set -eu

: "${VLM_TEST_MODEL:?set by meson}"
: "${VLM_TEST_TMPDIR:?set by meson}"
mkdir -p "$VLM_TEST_TMPDIR"

need_elements () {
  for e in vlmdescribe "$@"; do
    if ! gst-inspect-1.0 "$e" > /dev/null 2>&1; then
      echo "missing GStreamer element '$e' (see tools/setup.sh)" >&2
      exit 1
    fi
  done
}

# launch LOG ARGS...: gst-launch-1.0 -m with a time limit, output in LOG.
launch () {
  local log="$1"
  shift
  timeout 120 gst-launch-1.0 -m "$@" > "$log" 2>&1
}

# count PATTERN LOG: lines of LOG matching PATTERN.
count () {
  grep -c -- "$1" "$2" || true
}

fail () {
  echo "FAIL: $*" >&2
  exit 1
}
