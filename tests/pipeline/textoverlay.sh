#!/bin/bash
# 300 frames through a tee: one branch into vlmdescribe, whose text_src
# feeds the text pad of a textoverlay on the other branch. Every frame must
# be rendered (no stall, no deadlock), with captions. Then the same with
# textoverlay right behind vlmdescribe with leaky=no (frame-accurate mode).
. "$(dirname "$0")/common.sh"
need_elements videotestsrc tee queue textoverlay fakesink

log="$VLM_TEST_TMPDIR/textoverlay-tee.log"
launch "$log" -v videotestsrc num-buffers=300 \
  ! video/x-raw,framerate=30/1,width=160,height=120 ! tee name=t \
  t. ! queue ! vlmdescribe name=d model="$VLM_TEST_MODEL" ! fakesink \
  t. ! queue ! textoverlay name=o ! fakesink name=out silent=false \
  d.text_src ! o.text_sink || fail "tee pipeline failed, see $log"
frames=$(count 'out: last-message = chain' "$log")
captions=$(count '(element): vlm-caption,' "$log")
echo "tee: $frames frames rendered, $captions captions"
[ "$frames" -eq 300 ] || fail "expected 300 rendered frames, got $frames"
[ "$captions" -ge 1 ] || fail "no caption"

log="$VLM_TEST_TMPDIR/textoverlay-inline.log"
launch "$log" -v videotestsrc num-buffers=90 \
  ! video/x-raw,framerate=30/1,width=160,height=120 \
  ! vlmdescribe name=d leaky=no scene-threshold=0.2 model="$VLM_TEST_MODEL" \
  ! textoverlay name=o ! fakesink name=out silent=false \
  d.text_src ! o.text_sink || fail "inline pipeline failed, see $log"
frames=$(count 'out: last-message = chain' "$log")
captions=$(count '(element): vlm-caption,' "$log")
echo "inline leaky=no: $frames frames rendered, $captions captions"
[ "$frames" -eq 90 ] || fail "expected 90 rendered frames, got $frames"
[ "$captions" -eq 3 ] || fail "expected 3 captions (interval 1 s), got $captions"
