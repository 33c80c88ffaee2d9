#!/usr/bin/python3
"""Runs one of the examples (examples/caption-app, examples/describe.py,
a recipe of examples/recipes.sh, examples/make-screenshot.sh) on the
fixture checkpoint and checks what comes out.

The fixture's random weights write garbage text: these tests check the
structure and the timing of the captions, never their words.

    check_examples.py NAME     (a function below, with dashes: recipe-mux)

Environment (set by tests/examples/meson.build): VLM_TEST_MODEL,
VLM_TEST_TMPDIR, VLM_EXAMPLES_DIR, CAPTION_APP, and GST_PLUGIN_PATH_1_0 with
the vlm plugin.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import xml.sax.saxutils

MODEL = os.environ["VLM_TEST_MODEL"]
EXAMPLES = os.environ["VLM_EXAMPLES_DIR"]
CAPTION_APP = os.environ["CAPTION_APP"]
TMP = os.environ["VLM_TEST_TMPDIR"]
SECOND = 1_000_000_000
# The test clip: 3 s at 30/1. leaky=no and the default interval (1 s)
# describe frames 0, 30 and 60, each caption lasting until the next.
CLIP_FRAMES = 90
CLIP_PTS = [0, SECOND, 2 * SECOND]
FIELDS = {"text", "prompt", "model", "pts", "duration", "frame-number",
          "request-id", "finish-reason", "latency-ms"}


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def run(args, ok=True, **kwargs):
    """Runs args (a list), returns the CompletedProcess; with ok, fails the
    test unless it exits 0."""
    env = dict(os.environ, **kwargs.pop("env", {}))
    done = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env=env, **kwargs)
    if ok and done.returncode != 0:
        fail(f"{shlex.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def gst_launch(description, *flags):
    return run(["gst-launch-1.0", *flags, *shlex.split(description)])


def path(name):
    return os.path.join(TMP, name)


def make_clip():
    clip = path("clip.mkv")
    gst_launch(f"videotestsrc num-buffers={CLIP_FRAMES} pattern=ball "
               "! video/x-raw,width=160,height=120,framerate=30/1 "
               f"! vp8enc deadline=1 ! matroskamux ! filesink location={clip}",
               "-q")
    return clip


def make_image(name, pattern="ball"):
    """A 160x120 PNG or JPEG (by the name's extension)."""
    encoder = "pngenc" if name.lower().endswith(".png") else "jpegenc"
    image = path(name)
    os.makedirs(os.path.dirname(image), exist_ok=True)
    gst_launch(f"videotestsrc num-buffers=1 pattern={pattern} "
               f"! video/x-raw,width=160,height=120 ! {encoder} "
               f"! filesink location={image}", "-q")
    return image


def json_lines(text):
    try:
        return [json.loads(line) for line in text.splitlines()]
    except json.JSONDecodeError as e:
        fail(f"not JSON lines ({e}):\n{text}")


def caption_app(*args, ok=True):
    return run([CAPTION_APP, "--model", MODEL, *args], ok=ok)


def described(clip):
    """What caption-app says about the clip: [(pts, end, text)]."""
    return [(c["pts"], c["pts"] + c["duration"], c["text"])
            for c in json_lines(caption_app(clip).stdout)]


def recipe(*args, ok=True):
    return run(["bash", os.path.join(EXAMPLES, "recipes.sh"), *args], ok=ok,
               env={"VLM_MODEL": MODEL, "CAPTION_APP": CAPTION_APP})


def one_line_error(done, *words):
    """The command failed with exactly one line on stderr naming words."""
    lines = done.stderr.strip().splitlines()
    expect(done.returncode == 1, f"exit status {done.returncode}, not 1")
    expect(len(lines) == 1, f"expected one error line, got:\n{done.stderr}")
    for word in words:
        expect(word in lines[0], f"error does not name {word!r}: {lines[0]}")
    print(f"error: {lines[0]}")


# ---------------------------------------------------------------------------


def caption_app_test_source():
    """--test 90: one JSON object per caption, for frames 0, 30 and 60 at
    their PTS, each with the fields of the vlm-caption message; --interval
    and --prompt reach the element."""
    captions = json_lines(caption_app("--test", str(CLIP_FRAMES)).stdout)
    expect([c["frame-number"] for c in captions] == [0, 30, 60],
           f"frames described: {[c['frame-number'] for c in captions]}")
    expect([c["pts"] for c in captions] == CLIP_PTS, "caption PTS")
    for c in captions:
        expect(FIELDS <= c.keys(), f"missing fields {FIELDS - c.keys()}")
        expect(c["duration"] == SECOND and c["request-id"] == 0,
               f"duration or request-id: {c}")
        expect(isinstance(c["text"], str) and c["prompt"] == "caption en",
               f"text or prompt: {c}")
    captions = json_lines(caption_app("--test", str(CLIP_FRAMES), "--interval",
                                      "2", "--prompt", "describe en").stdout)
    expect([(c["frame-number"], c["prompt"]) for c in captions]
           == [(0, "describe en"), (60, "describe en")],
           f"--interval 2 --prompt: {captions}")
    print("frames 0, 30, 60 described; 0 and 60 with --interval 2")


def caption_app_files():
    """Files one after another, images and a video: a caption per image,
    three for the clip, each tagged with its file; a missing file is one
    line on stderr, exit status 1, and the others are still described."""
    png, jpeg = make_image("a.png"), make_image("b.jpg", "snow")
    clip, missing = make_clip(), path("missing.png")
    done = caption_app(png, missing, jpeg, clip, ok=False)
    one_line_error(done, missing)
    captions = json_lines(done.stdout)
    expect([c["file"] for c in captions] == [png, jpeg, clip, clip, clip],
           f"files: {[c['file'] for c in captions]}")
    expect([c["pts"] for c in captions[2:]] == CLIP_PTS, "clip caption PTS")
    expect(all(c["frame-number"] == 0 for c in captions[:2]),
           "an image is described once, as frame 0")


def caption_app_errors():
    """Errors are one line: a missing camera, a missing model; bad usage
    exits 2."""
    one_line_error(caption_app("--camera", "/dev/vlm-no-such-camera",
                               ok=False), "/dev/vlm-no-such-camera")
    done = run([CAPTION_APP, "--model", path("no-model"), "--test", "5"],
               ok=False)
    one_line_error(done, "Could not load model", path("no-model"))
    done = run([CAPTION_APP], ok=False)
    expect(done.returncode == 2, f"no source: exit {done.returncode}, not 2")


def describe_py():
    """describe.py: every caption arrives both through the caption signal
    and on the bus; the question asked with the describe action is
    answered once, by the caption carrying its request-id and prompt."""
    question = "answer en what is in the picture?"
    done = run([sys.executable, os.path.join(EXAMPLES, "describe.py"),
                "--test", str(CLIP_FRAMES), "--model", MODEL,
                "--question", question])
    records = json_lines(done.stdout)
    asked = records[0]
    expect(asked.get("asked") == question and asked["request-id"] > 0,
           f"first line: {asked}")

    def seen(via):
        return sorted((r["frame-number"], r["request-id"], r["text"])
                      for r in records if r.get("via") == via)

    expect(seen("signal") == seen("bus"),
           f"signal and bus differ:\n{seen('signal')}\n{seen('bus')}")
    answers = [r for r in records if r.get("via") == "bus"
               and r["request-id"] == asked["request-id"]]
    expect(len(answers) == 1 and answers[0]["prompt"] == question,
           f"answers: {answers}")
    sampled = [r["frame-number"] for r in records
               if r.get("via") == "bus" and r["request-id"] == 0]
    expect(sampled == [0, 30, 60], f"sampled frames: {sampled}")
    print(f"{len(seen('bus'))} captions on both paths; request "
          f"{asked['request-id']} answered about frame "
          f"{answers[0]['frame-number']}")


def checksums(output):
    return re.findall(r"^\d+:\d\d:\d\d\.\d+ ([0-9a-f]{40})$", output, re.M)


def recipe_overlay():
    """Live captions burnt in: every frame comes out, the first one (before
    any caption) as it went in, and later ones with text drawn on them."""
    caps = "video/x-raw,format=I420,width=160,height=120,framerate=30/1"
    black = checksums(gst_launch(f"videotestsrc num-buffers=1 pattern=black "
                                 f"! {caps} ! checksumsink", "-q").stdout)[0]
    done = recipe("overlay",
                  f"videotestsrc is-live=true num-buffers=45 pattern=black "
                  f"! {caps}", f"{caps} ! checksumsink")
    frames = checksums(done.stdout)
    expect(len(frames) == 45, f"{len(frames)} frames out of 45")
    expect(frames[0] == black, "the first frame is not the plain picture")
    drawn = sum(frame != black for frame in frames)
    expect(drawn > 0, "no caption was drawn on any frame")
    print(f"45 frames, {drawn} with a caption drawn")


def cues(text, separator):
    """(start ns, end ns, text) of the cues of a WebVTT or SRT file."""
    time = rf"(\d\d):(\d\d):(\d\d){separator}(\d\d\d)"
    found = re.findall(rf"^{time} --> {time}\n(.*?)\n(?:\n|\Z)", text,
                       re.M | re.S)

    def ns(h, m, s, ms):
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * SECOND \
            + int(ms) * 1_000_000

    return [(ns(*c[0:4]), ns(*c[4:8]), c[8]) for c in found]


def recipe_subtitles():
    """WebVTT and SRT from webvttenc/srtenc on text_src: one cue per
    described frame, starting at its PTS and ending where the next caption
    starts, with its text."""
    clip = make_clip()
    expected = described(clip)
    expect([start for start, _, _ in expected] == CLIP_PTS,
           f"described frames: {expected}")
    recipe("subtitles", clip, path("clip"))
    with open(path("clip.vtt"), encoding="utf-8") as f:
        vtt = f.read()
    with open(path("clip.srt"), encoding="utf-8") as f:
        srt = f.read()
    expect(vtt.startswith("WEBVTT"), "no WEBVTT header")
    expect(cues(vtt, r"\.") == expected,
           f"WebVTT cues {cues(vtt, r'.')} != described {expected}")
    expect(cues(srt, ",") == expected,
           f"SRT cues {cues(srt, ',')} != described {expected}")
    print("3 cues in each file at 0-1 s, 1-2 s, 2-3 s, as described")


def matroska_tracks(mkv):
    """The video frame count and the subtitle buffers [(pts, end, text)] of
    a Matroska file, through appsinks."""
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst, GstApp  # noqa: F401 (appsink methods)

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"filesrc location={mkv} ! matroskademux name=d "
        "d.video_0 ! queue ! appsink name=video sync=false "
        "d.subtitle_0 ! queue ! appsink name=text sync=false")
    pipeline.set_state(Gst.State.PLAYING)

    def samples(name):
        sink = pipeline.get_by_name(name)
        while (sample := sink.try_pull_sample(60 * Gst.SECOND)):
            yield sample.get_buffer()

    n_frames = sum(1 for _ in samples("video"))
    subtitles = []
    for buffer in samples("text"):
        ok, info = buffer.map(Gst.MapFlags.READ)
        text = bytes(info.data).decode()
        buffer.unmap(info)
        subtitles.append((buffer.pts, buffer.pts + buffer.duration, text))
    pipeline.set_state(Gst.State.NULL)
    return n_frames, subtitles


def unmarkup(text):
    """Plain text of Pango markup's escapes (control characters too, which
    html.unescape would drop)."""
    text = re.sub(r"&#x([0-9a-fA-F]+);", lambda m: chr(int(m[1], 16)), text)
    text = re.sub(r"&#([0-9]+);", lambda m: chr(int(m[1])), text)
    return xml.sax.saxutils.unescape(text, {"&quot;": '"', "&apos;": "'"})


def recipe_mux():
    """The captions muxed as a Matroska subtitle track: the video is all
    there, and each subtitle has the time span and the text of a described
    frame (matroskademux gives it as Pango markup)."""
    clip, out = make_clip(), path("captioned.mkv")
    expected = described(clip)
    recipe("mux", clip, out)
    n_frames, subtitles = matroska_tracks(out)
    subtitles = [(start, end, unmarkup(text))
                 for start, end, text in subtitles]
    expect(n_frames == CLIP_FRAMES, f"{n_frames} video frames")
    expect(subtitles == expected,
           f"subtitles {subtitles} != described {expected}")
    print(f"{n_frames} video frames, subtitles at "
          f"{[(start, end) for start, end, _ in subtitles]}")


def recipe_photos():
    """A folder of JPEG and PNG photos (any names, other files ignored):
    one JSON object per photo."""
    photos = [make_image(f"photos/{name}") for name in
              ("beach.JPG", "cat.png", "dog.jpeg")]
    with open(path("photos/notes.txt"), "w") as f:
        f.write("not a photo\n")
    captions = json_lines(recipe("photos", path("photos")).stdout)
    expect(sorted(c["file"] for c in captions) == photos,
           f"files: {[c['file'] for c in captions]}")
    expect(all(c["frame-number"] == 0 and FIELDS <= c.keys()
               for c in captions), "one complete caption per photo")


def recipe_sequence():
    """Numbered images through multifilesrc: each one described."""
    for i, pattern in enumerate(("ball", "snow", "smpte")):
        make_image(f"sequence/{i:05d}.png", pattern)
    lines = recipe("sequence", path("sequence/%05d.png")).stdout.splitlines()
    frames = [int(re.search(r"frame-number=\(guint64\)(\d+)", line).group(1))
              for line in lines]
    expect(frames == [0, 1, 2], f"frames described: {frames}")


def recipe_still():
    """A still image is described once: the recipe prints the caption's
    text, the same caption caption-app gives for the image."""
    image = make_image("still.png")
    text = recipe("still", image).stdout
    expected = json_lines(caption_app(image).stdout)
    expect(len(expected) == 1, "caption-app: not one caption")
    expect(text == expected[0]["text"] + "\n",
           f"{text!r} != {expected[0]['text']!r}")


def screenshot():
    """make-screenshot.sh writes a 480x270 PNG."""
    out = path("shot.png")
    run(["bash", os.path.join(EXAMPLES, "make-screenshot.sh"), out],
        env={"VLM_MODEL": MODEL})
    with open(out, "rb") as f:
        header = f.read(24)
    expect(header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    size = (int.from_bytes(header[16:20], "big"),
            int.from_bytes(header[20:24], "big"))
    expect(size == (480, 270), f"size {size}")


if __name__ == "__main__":
    TMP = os.path.join(TMP, sys.argv[1])
    os.makedirs(TMP, exist_ok=True)
    globals()[sys.argv[1].replace("-", "_")]()
