#!/bin/bash
# The recipes of docs/recipes.md, runnable:
#
#   recipes.sh overlay [SOURCE [SINK]]   live captions burnt into the picture
#   recipes.sh subtitles VIDEO OUT       OUT.vtt and OUT.srt for a video file
#   recipes.sh mux VIDEO OUT.mkv         the video with a subtitle track
#   recipes.sh photos DIR                JSON lines for DIR's JPEG/PNG photos
#   recipes.sh sequence PATTERN          numbered images (multifilesrc)
#   recipes.sh still IMAGE               one caption for one image
#
# SOURCE and SINK are gst-launch fragments (default: v4l2src and
# autovideosink). VLM_MODEL=DIR|ORG/NAME picks another model than the
# element's default. `photos` runs examples/caption-app (CAPTION_APP, else
# build/examples/caption-app). The vlm plugin must be installed or on
# GST_PLUGIN_PATH (e.g. build/gst).
set -euo pipefail

model=()
if [ -n "${VLM_MODEL:-}" ]; then
  model=(model="$VLM_MODEL")
fi

usage () {
  sed -n '1d; /^#/!q; s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

# Live: the video never waits for the model (leaky=downstream, the
# default); each caption is drawn from when it is ready, for one interval.
overlay () {
  local source=${1:-v4l2src} sink=${2:-autovideosink}
  # shellcheck disable=SC2086 # SOURCE and SINK are pipeline fragments
  gst-launch-1.0 $source ! videoconvert \
    ! vlmdescribe name=d "${model[@]}" \
    ! textoverlay name=o shaded-background=true ! videoconvert ! $sink \
    d.text_src ! o.text_sink
}

# A file: leaky=no describes each sampled frame before it leaves, so every
# cue starts on the frame it describes and lasts until the next one.
subtitles () {
  local video=$1 out=$2
  gst-launch-1.0 filesrc location="$video" ! decodebin ! videoconvert \
    ! vlmdescribe name=d leaky=no "${model[@]}" ! fakesink \
    d.text_src ! tee name=t \
    t. ! queue ! webvttenc ! filesink location="$out.vtt" \
    t. ! queue ! srtenc ! filesink location="$out.srt"
}

# The same captions as a subtitle track of a Matroska file (the video is
# re-encoded as VP8: vlmdescribe works on raw video). The queues let the
# muxer wait for one stream while the other is fed.
mux () {
  local video=$1 out=$2
  gst-launch-1.0 filesrc location="$video" ! decodebin ! videoconvert \
    ! vlmdescribe name=d leaky=no "${model[@]}" \
    ! queue ! videoconvert ! vp8enc deadline=1 ! matroskamux name=m \
    ! filesink location="$out" \
    d.text_src ! queue ! m.subtitle_%u
}

# Any names, JPEG and PNG mixed: caption-app describes the files one after
# another with one loaded model and prints a JSON object per photo.
photos () {
  local dir=$1 files=()
  local app=${CAPTION_APP:-$(dirname "$0")/../build/examples/caption-app}
  mapfile -d '' -t files < <(find "$dir" -maxdepth 1 -type f \( -iname '*.jpg' \
    -o -iname '*.jpeg' -o -iname '*.png' \) -print0 | sort -z)
  if [ ${#files[@]} -eq 0 ]; then
    echo "recipes.sh: no JPEG or PNG photo in $dir" >&2
    exit 1
  fi
  "$app" ${VLM_MODEL:+--model "$VLM_MODEL"} "${files[@]}"
}

# Numbered images of one format (shot-00000.jpg, shot-00001.jpg...): every
# image is a frame, interval=0 describes each; prints the vlm-caption
# messages.
sequence () {
  local pattern=$1
  gst-launch-1.0 -m multifilesrc location="$pattern" ! decodebin \
    ! videoconvert ! vlmdescribe interval=0 leaky=no "${model[@]}" \
    ! fakesink | grep 'vlm-caption,'
}

# A still image (framerate 0/1) is described once; text_src carries the
# caption itself, printed as it is. The queue lets the two sinks preroll.
still () {
  local image=$1
  gst-launch-1.0 -q filesrc location="$image" ! decodebin ! videoconvert \
    ! vlmdescribe name=d "${model[@]}" ! fakesink \
    d.text_src ! queue ! fdsink
  echo
}

[ $# -ge 1 ] || usage
recipe=$1
shift
case "$recipe:$#" in
  overlay:[012]) overlay "$@" ;;
  subtitles:2 | mux:2) "$recipe" "$@" ;;
  photos:1 | sequence:1 | still:1) "$recipe" "$@" ;;
  *) usage ;;
esac
