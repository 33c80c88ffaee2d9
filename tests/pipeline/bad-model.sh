#!/bin/bash
# A model that does not exist fails the pipeline with an error that names
# the path, instead of running without captions: one line saying what is
# wrong and what to do.
. "$(dirname "$0")/common.sh"
need_elements videotestsrc fakesink

log="$VLM_TEST_TMPDIR/bad-model.log"
if launch "$log" videotestsrc num-buffers=5 \
  ! vlmdescribe model=/nonexistent/checkpoint ! fakesink; then
  fail "pipeline with a missing model succeeded"
fi
grep -q "Could not load model '/nonexistent/checkpoint'" "$log" \
  || fail "no error naming the model, see $log"
grep -q "^ERROR: .*: Could not load model '/nonexistent/checkpoint': .*no such directory (the model property takes a checkpoint directory or a Hugging Face repo id in the local cache)$" "$log" \
  || fail "the error line does not say what is wrong and what to do, see $log"
echo "error: $(grep -m1 'Could not load model' "$log")"
