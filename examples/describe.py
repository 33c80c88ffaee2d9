#!/usr/bin/python3
"""describe.py - vlmdescribe from Python, through GObject introspection.

Plays a file, a camera or a test pattern through vlmdescribe and prints
each caption twice, as JSON lines: once from the `caption` signal (called
on the streaming thread as soon as the caption is stamped) and once from
the vlm-caption message on the bus (in the main loop). It also asks one
question about the next frame with the `describe` action signal; the
answer is the caption whose request-id is the one `describe` returned.

  describe.py clip.mp4
  describe.py --camera /dev/video0 --question "answer en what is on the table?"
  describe.py --test 90 --model tests/data/paligemma-tiny/pg-f32

Needs python3-gi, gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-base-1.0
(Debian), and the vlm plugin (installed, or GST_PLUGIN_PATH=build/gst).
"""

import argparse
import json
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def caption_dict(structure):
    """The fields of a vlm-caption structure; unset clock times are None."""
    fields = {}
    for i in range(structure.n_fields()):
        name = structure.nth_field_name(i)
        value = structure.get_value(name)
        fields[name] = None if value == Gst.CLOCK_TIME_NONE else value
    return fields


# one line at a time: the caption signal prints from the streaming thread
print_lock = threading.Lock()


def emit(record):
    with print_lock:
        print(json.dumps(record, ensure_ascii=False), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", help="video file or image")
    parser.add_argument("--camera", metavar="DEVICE", help="V4L2 camera")
    parser.add_argument("--test", type=int, metavar="N",
                        help="N frames of a test pattern")
    parser.add_argument("--model", help="checkpoint directory or repo id")
    # PaliGemma's prompt for questions; vlmdescribe-tiny only captions
    parser.add_argument("--question",
                        default="answer en what is in the picture?",
                        help="asked about the next frame (default: "
                        "%(default)s)")
    args = parser.parse_args()
    if sum(x is not None for x in (args.file, args.camera, args.test)) != 1:
        parser.error("give a FILE, --camera DEVICE or --test N")

    Gst.init(None)
    if args.file:
        source = "filesrc name=src ! decodebin"
    elif args.camera:
        source = "v4l2src name=src"
    else:
        source = "videotestsrc name=src"
    # offline inputs: every sampled frame is described (leaky=no)
    leaky = "downstream" if args.camera else "no"
    try:
        pipeline = Gst.parse_launch(
            f"{source} ! videoconvert ! vlmdescribe name=describe "
            f"leaky={leaky} ! fakesink")
    except GLib.Error as e:
        sys.exit(f"describe.py: {e.message} (is the vlm plugin on "
                 "GST_PLUGIN_PATH?)")
    src = pipeline.get_by_name("src")
    if args.file:
        src.set_property("location", args.file)
    elif args.camera:
        src.set_property("device", args.camera)
    else:
        src.set_property("num-buffers", args.test)
    describe = pipeline.get_by_name("describe")
    if args.model:
        describe.set_property("model", args.model)

    # the streaming thread: keep it short, copy what you keep
    def on_caption(element, caption):
        emit({"via": "signal", **caption_dict(caption)})

    describe.connect("caption", on_caption)

    loop = GLib.MainLoop()
    status = 0

    def on_message(bus, message):
        nonlocal status
        if message.type == Gst.MessageType.ELEMENT \
                and message.has_name("vlm-caption"):
            emit({"via": "bus", **caption_dict(message.get_structure())})
        elif message.type == Gst.MessageType.ERROR:
            error, _ = message.parse_error()
            print(f"describe.py: {error.message}", file=sys.stderr)
            status = 1
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    # Ctrl-C ends the stream; the captions being computed still come out
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT,
                         lambda: pipeline.send_event(Gst.Event.new_eos())
                         or GLib.SOURCE_CONTINUE)

    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        message = bus.pop_filtered(Gst.MessageType.ERROR)
        error = message.parse_error()[0].message if message else "cannot play"
        print(f"describe.py: {error}", file=sys.stderr)
        pipeline.set_state(Gst.State.NULL)
        return 1

    request_id = describe.emit("describe", args.question)
    emit({"asked": args.question, "request-id": request_id})

    loop.run()
    bus.remove_signal_watch()
    pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    sys.exit(main())
