#!/bin/bash
# With a live source and sync=true, vlmdescribe must not slow the video
# down, even with the worker always busy (every frame sampled, long
# captions: most requests are dropped). Runs the same live pipeline with
# and without the element and prints how long each played (gst-launch's
# "Execution ended after", from PLAYING to EOS; drain-timeout=0 so that the
# last caption does not hold EOS back). The only assertion is a generous
# ratio (< 1.5): the live source alone sets the pace (3 s), and an element
# that blocked the video on the model would take several times longer.
. "$(dirname "$0")/common.sh"
need_elements videotestsrc fakesink

src="videotestsrc is-live=true num-buffers=90 ! video/x-raw,framerate=30/1,width=320,height=240"

# played_ms LOG: the "Execution ended after H:MM:SS.NNNNNNNNN" time in ms.
played_ms () {
  sed -n 's/^Execution ended after \([0-9]*\):\([0-9]*\):\([0-9.]*\)$/\1 \2 \3/p' "$1" \
    | awk '{ printf "%d", ($1 * 3600 + $2 * 60 + $3) * 1000 }'
}

without_log="$VLM_TEST_TMPDIR/live-without.log"
with_log="$VLM_TEST_TMPDIR/live-with.log"
launch "$without_log" $src ! fakesink sync=true \
  || fail "pipeline without the element failed"
launch "$with_log" $src ! vlmdescribe model="$VLM_TEST_MODEL" interval=0 \
  max-new-tokens=512 drain-timeout=0 ! fakesink sync=true \
  || fail "pipeline with the element failed"

without=$(played_ms "$without_log")
with=$(played_ms "$with_log")
[ -n "$without" ] && [ -n "$with" ] || fail "no execution time in the logs"
captions=$(count '(element): vlm-caption,' "$with_log")
drops=$(count 'vlmdescribe0" (qos)' "$with_log")
echo "live 90 frames at 30/1 played in ${without} ms without the element," \
  "${with} ms with it (ratio $(awk "BEGIN { printf \"%.3f\", $with / $without }"));" \
  "$captions captions, $drops drop announcements"
[ "$captions" -ge 1 ] || fail "no caption"
awk "BEGIN { exit !($with < 1.5 * $without) }" \
  || fail "video slowed down by the element"
