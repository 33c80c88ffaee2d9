#!/bin/bash
# GST_DEBUG=vlmdescribe:N,vlmengine:N tells the story of a run. INFO (4):
# the model loaded (engine) and used (element), the threads, and a summary
# at the end of the stream, nothing per frame. DEBUG (5): each sampled
# frame and why, each request described, the engine's timings, each
# caption with its latency, each drop. LOG (6): scene differences and where
# captions are placed on text_src.
. "$(dirname "$0")/common.sh"
need_elements videotestsrc fakesink

src="videotestsrc num-buffers=60 ! video/x-raw,width=160,height=120,framerate=30/1"
export GST_DEBUG_NO_COLOR=1

# expect LOG PATTERN...: each pattern matches a line of LOG.
expect () {
  local log=$1
  shift
  for pattern in "$@"; do
    grep -q -- "$pattern" "$log" || fail "no '$pattern' in $log"
  done
}

log="$VLM_TEST_TMPDIR/debug-info.log"
# shellcheck disable=SC2086 # $src is a pipeline fragment
GST_DEBUG=vlmdescribe:4,vlmengine:4 launch "$log" $src \
  ! vlmdescribe model="$VLM_TEST_MODEL" threads=1 leaky=no ! fakesink \
  || fail "pipeline failed, see $log"
expect "$log" "INFO .*vlmengine .* loaded paligemma-64 (paligemma, F32" \
  "INFO .*vlmdescribe .* using paligemma-64 (paligemma, F32, default prompt 'caption en') from $VLM_TEST_MODEL" \
  "INFO .*vlmdescribe .* describing on 1 thread(s)" \
  "INFO .*vlmdescribe .* end of stream: vlm-stats, frames-seen=(guint64)60, frames-sampled=(guint64)2, captions=(guint64)2, dropped=(guint64)0"
[ "$(count ' DEBUG \| LOG ' "$log")" -eq 0 ] || fail "per-frame lines at INFO"

log="$VLM_TEST_TMPDIR/debug-log.log"
# shellcheck disable=SC2086
GST_DEBUG=vlmdescribe:6,vlmengine:6 launch "$log" $src \
  ! vlmdescribe model="$VLM_TEST_MODEL" leaky=no scene-threshold=0.9 \
  ! fakesink || fail "pipeline failed, see $log"
expect "$log" "DEBUG .* frame 0 at 0:00:00.000000000 sampled: first frame" \
  "DEBUG .* frame 30 at 0:00:01.000000000 sampled: interval" \
  "DEBUG .* describing frame 30 (request 0, prompt 'caption en')" \
  "DEBUG .*vlmengine .* described 160x120 image: 16 image + 4 prompt tokens, 32 generated (length); preprocess .* ms, vision .* ms, prefill .* ms, decode .* ms" \
  "DEBUG .* caption for frame 30 at 0:00:01.000000000, out at 0:00:01.000000000 (latency .* ms, 32 tokens, length): " \
  "LOG .* frame 59: scene diff 0\.[0-9]* (threshold 0.900)" \
  "LOG .* caption placed at 0:00:01.000000000 for 0:00:01.000000000"
[ "$(count "DEBUG .* caption for frame" "$log")" -eq 2 ] \
  || fail "expected 2 caption lines in $log"

# A busy worker: every frame sampled, long captions, the video never waits.
log="$VLM_TEST_TMPDIR/debug-drops.log"
# shellcheck disable=SC2086
GST_DEBUG=vlmdescribe:5 launch "$log" $src \
  ! vlmdescribe model="$VLM_TEST_MODEL" interval=0 max-new-tokens=512 \
  drain-timeout=0 ! fakesink || fail "pipeline failed, see $log"
expect "$log" "DEBUG .* worker busy: dropped 1 sampled frame(s) (leaky=downstream, max-pending=1)"
echo "INFO: $(count ' INFO ' "$VLM_TEST_TMPDIR/debug-info.log") lines;" \
  "LOG: $(count 'vlmdescribe\|vlmengine' "$VLM_TEST_TMPDIR/debug-log.log") lines;" \
  "$(count 'worker busy' "$log") drop lines with a busy worker"
