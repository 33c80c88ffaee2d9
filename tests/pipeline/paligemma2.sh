#!/bin/bash
# The element runs a PaliGemma 2 checkpoint (Gemma 2 decoder) with no
# change of its own: 60 frames at 30/1 with a 1 s interval give 2 captions.
. "$(dirname "$0")/common.sh"
need_elements videotestsrc fakesink

model="$(cd "$(dirname "$0")/../data/paligemma2-tiny/pg2-f32" && pwd)"
log="$VLM_TEST_TMPDIR/paligemma2.log"
launch "$log" videotestsrc num-buffers=60 ! video/x-raw,framerate=30/1 \
  ! vlmdescribe model="$model" leaky=no ! fakesink \
  || fail "pipeline failed, see $log"
captions=$(count '(element): vlm-caption,' "$log")
[ "$captions" -eq 2 ] || fail "expected 2 captions, got $captions"
grep -q "vlm-caption,.*pg2-f32" "$log" || fail "captions do not name the PaliGemma 2 model"
grep -q "tokens-image=(uint)16" "$log" || fail "no 16 image tokens in the caption"
echo "2 captions from $model"
