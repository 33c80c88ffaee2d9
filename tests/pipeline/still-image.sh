#!/bin/bash
# A still image (PNG, framerate 0/1) gets exactly one caption, posted
# before EOS.
. "$(dirname "$0")/common.sh"
need_elements videotestsrc pngenc pngdec filesrc decodebin videoconvert fakesink

photo="$VLM_TEST_TMPDIR/photo.png"
gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=ball ! pngenc \
  ! filesink location="$photo" || fail "could not make $photo"

log="$VLM_TEST_TMPDIR/still-image.log"
launch "$log" filesrc location="$photo" ! decodebin ! videoconvert \
  ! vlmdescribe model="$VLM_TEST_MODEL" ! fakesink \
  || fail "pipeline failed, see $log"
captions=$(count '(element): vlm-caption,' "$log")
[ "$captions" -eq 1 ] || fail "expected 1 caption, got $captions"
caption_line=$(grep -n '(element): vlm-caption,' "$log" | cut -d: -f1)
eos_line=$(grep -n 'Got EOS from element' "$log" | cut -d: -f1)
[ -n "$eos_line" ] || fail "no EOS"
[ "$caption_line" -lt "$eos_line" ] || fail "caption after EOS"
echo "one caption (log line $caption_line) before EOS (line $eos_line)"
