"""Deterministic training / held-out data for vlmdescribe-tiny.

Every sample is a function of (seed, split, index) only, so the data is the same whatever the
number of worker processes. Samples are:
  - rendered scenes (PIL): a background colour and 1-3 shapes, each with size, colour, position;
  - plain frames of one colour;
  - frames of GStreamer's videotestsrc patterns, rendered by gst-launch-1.0 itself, at sizes that
    differ between the splits (ball and snow frames also differ in animation frame);
then augmented (rescaling, blur, noise, JPEG) the way real decoded frames differ from clean ones.

    /usr/bin/python3 models/train/gen_data.py --split eval --n 1200 --out DIR
writes DIR/images/NNNNN.png (full-size, augmented) and DIR/labels.jsonl; --split train writes
DIR/images.npy (already resized to the model input, exactly as the engine resizes),
DIR/captions.txt and DIR/types.npy: per pixel of the model input, which shape type covers it
(0 none, 1 + index in grammar.TYPES), a dense auxiliary target for the vision tower.
"""
import argparse
import colorsys
import io
import json
import multiprocessing
import os
import subprocess

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

import grammar
import image_input

SPLITS = {"train": 0, "eval": 1}
VERSION = 2  # part of the cached data directory names: bump when the rendering changes

# (hue degrees, saturation, value) ranges around each colour's usual sRGB value; hue may wrap.
COLOUR_HSV = {
    "red": ((-10, 8), (0.75, 1.0), (0.55, 1.0)),
    "orange": ((22, 36), (0.8, 1.0), (0.85, 1.0)),
    "yellow": ((50, 62), (0.7, 1.0), (0.85, 1.0)),
    "green": ((95, 145), (0.6, 1.0), (0.45, 1.0)),
    "blue": ((210, 245), (0.65, 1.0), (0.55, 1.0)),
    "purple": ((270, 305), (0.5, 1.0), (0.45, 0.85)),
    "white": ((0, 360), (0.0, 0.06), (0.92, 1.0)),
    "gray": ((0, 360), (0.0, 0.06), (0.4, 0.65)),
    "black": ((0, 360), (0.0, 0.2), (0.0, 0.12)),
}

# Slot centres as fractions of (width, height); shapes get jitter around them.
SLOTS = {"left": (0.16, 0.5), "right": (0.84, 0.5), "top": (0.5, 0.16), "bottom": (0.5, 0.84),
         "center": (0.5, 0.5)}
SIZE_RANGE = {"small": (0.14, 0.20), "large": (0.28, 0.36)}  # of min(width, height)

# videotestsrc patterns -> caption; solid colours are plain frames.
GST_PATTERNS = {
    "smpte": "color bars", "smpte75": "color bars", "smpte100": "color bars",
    "snow": "noise", "checkers-1": "checkerboard", "checkers-2": "checkerboard",
    "checkers-4": "checkerboard", "checkers-8": "checkerboard", "ball": grammar.BALL_CAPTION,
    "gradient": "gradient",
    **{c: grammar.plain_caption(c) for c in ["red", "green", "blue", "white", "black"]},
}
GST_FAMILIES = ["color bars", "noise", "checkerboard", "ball", "gradient", "solid"]
GST_SIZES = {
    "train": [(64, 64), (96, 96), (128, 128), (160, 120), (176, 144), (320, 240), (320, 180),
              (352, 288), (480, 360), (640, 360), (640, 480), (720, 576), (854, 480),
              (1024, 576), (1280, 720), (240, 320)],
    "eval": [(72, 72), (112, 112), (200, 150), (256, 144), (400, 300), (560, 315), (768, 432),
             (800, 600), (1120, 630), (1200, 675), (360, 480)],
}
BALL_FRAMES, SNOW_FRAMES = 48, 6  # rendered per size; train uses even frames, eval odd ones
ASPECTS = [1.0, 4 / 3, 16 / 9, 3 / 2, 5 / 4, 3 / 4, 9 / 16]


def sample_colour(rng, name):
    (h0, h1), (s0, s1), (v0, v1) = COLOUR_HSV[name]
    h = (rng.uniform(h0, h1) % 360) / 360
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def sample_frame_size(rng):
    aspect = ASPECTS[rng.integers(len(ASPECTS))]
    short = int(np.exp(rng.uniform(np.log(64), np.log(720))))
    long_ = min(1280, int(round(short * max(aspect, 1 / aspect))))
    return (long_, short) if aspect >= 1 else (short, long_)


def place_shapes(rng, w, h, specs):
    """Boxes (x0, y0, x1, y1) for [(size, position)], inside the frame and not touching."""
    m = min(w, h)
    for _ in range(100):
        boxes = []
        for size, pos in specs:
            d = rng.uniform(*SIZE_RANGE[size]) * m
            cx = SLOTS[pos][0] * w + rng.uniform(-0.04, 0.04) * w
            cy = SLOTS[pos][1] * h + rng.uniform(-0.04, 0.04) * h
            cx = min(max(cx, d / 2 + 1), w - d / 2 - 1)
            cy = min(max(cy, d / 2 + 1), h - d / 2 - 1)
            boxes.append((cx - d / 2, cy - d / 2, cx + d / 2, cy + d / 2))
        gap = 0.02 * m
        if all(a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1]
               for i, a in enumerate(boxes) for b in boxes[i + 1:]):
            return boxes
    return None


def draw_shape(draw, kind, box, rgb):
    x0, y0, x1, y1 = box
    d = x1 - x0
    if kind == "circle":
        draw.ellipse(box, fill=rgb)
    elif kind == "square":  # the whole box: corners and area both tell it from a circle
        draw.rectangle(box, fill=rgb)
    else:
        top = y0 + 0.07 * d
        draw.polygon([(x0, y1 - 0.06 * d), (x1, y1 - 0.06 * d), ((x0 + x1) / 2, top)], fill=rgb)


def render_scene(rng):
    w, h = sample_frame_size(rng)
    while True:
        bg = grammar.COLOURS[rng.integers(9)]
        n = 1 + rng.choice(3, p=[0.3, 0.35, 0.35])
        positions = [grammar.POSITIONS[i] for i in rng.choice(5, n, replace=False)]
        shapes = []
        for pos in positions:
            colour = grammar.COLOURS[rng.choice([i for i in range(9) if grammar.COLOURS[i] != bg])]
            shapes.append((grammar.SIZES[rng.integers(2)], colour, grammar.TYPES[rng.integers(3)],
                           pos))
        # A lone white circle on black is what videotestsrc's ball looks like: leave that to it.
        if n == 1 and shapes[0][1:3] == ("white", "circle") and bg == "black":
            continue
        boxes = place_shapes(rng, w, h, [(s[0], s[3]) for s in shapes])
        if boxes:
            break
    image = Image.new("RGB", (w, h), sample_colour(rng, bg))
    types = Image.new("L", (w, h), 0)
    draw, draw_types = ImageDraw.Draw(image), ImageDraw.Draw(types)
    for (size, colour, kind, pos), box in zip(shapes, boxes):
        draw_shape(draw, kind, box, sample_colour(rng, colour))
        draw_shape(draw_types, kind, box, 1 + grammar.TYPES.index(kind))
    return image, grammar.scene_caption(bg, shapes), types


def render_plain(rng):
    colour = grammar.COLOURS[rng.integers(9)]
    image = Image.new("RGB", sample_frame_size(rng), sample_colour(rng, colour))
    return image, grammar.plain_caption(colour), None


def gst_render(cache, split):
    """Render the split's videotestsrc frames into cache/ (once).
    Returns {family: [(png path, caption)]}."""
    frames = {f: [] for f in GST_FAMILIES}
    keep = 0 if split == "train" else 1
    for w, h in GST_SIZES[split]:
        for pattern, caption in GST_PATTERNS.items():
            count = {"ball": BALL_FRAMES, "snow": SNOW_FRAMES}.get(pattern, 1)
            stem = os.path.join(cache, f"{pattern}-{w}x{h}")
            paths = [f"{stem}-{i:02d}.png" for i in range(count)]
            if not all(os.path.exists(p) for p in paths):
                subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", f"pattern={pattern}",
                                f"num-buffers={count}", "!", f"video/x-raw,width={w},height={h}",
                                "!", "pngenc", "compression-level=1", "!", "multifilesink",
                                f"location={stem}-%02d.png"], check=True)
            if count > 1:
                paths = paths[keep::2]
            family = caption if caption in GST_FAMILIES else (
                "ball" if pattern == "ball" else "solid")
            frames[family] += [(p, caption) for p in paths]
    return frames


def augment(rng, image):
    w, h = image.size
    if rng.random() < 0.3:  # another scaler in between, as in real pipelines
        f = rng.uniform(0.5, 1.5)
        size = (max(32, int(w * f)), max(32, int(h * f)))
        image = image.resize(size, [Image.NEAREST, Image.BILINEAR, Image.BICUBIC][rng.integers(3)])
    if rng.random() < 0.25:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.3:
        # Kept weak so that a plain frame never looks like videotestsrc's snow.
        a = np.asarray(image, dtype=np.float32)
        a = a + rng.normal(0, rng.uniform(1, 4), a.shape)
        image = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=int(rng.integers(25, 96)))
        image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return image


class SampleMaker:
    """Picklable sample factory for the worker pool."""

    def __init__(self, seed, split, gst_frames):
        self.seed, self.split, self.gst = seed, split, gst_frames

    def __call__(self, index):
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        kind = rng.random()
        if kind < 0.68:
            image, caption, types = render_scene(rng)
        elif kind < 0.80:
            image, caption, types = render_plain(rng)
        else:
            family = self.gst[GST_FAMILIES[rng.integers(len(GST_FAMILIES))]]
            path, caption = family[rng.integers(len(family))]
            image, types = Image.open(path).convert("RGB"), None
        return augment(rng, image), caption, types


class TrainSample(SampleMaker):
    def __init__(self, seed, gst_frames, size):
        super().__init__(seed, "train", gst_frames)
        self.size = size

    def __call__(self, index):
        image, caption, types = super().__call__(index)
        pixels = np.asarray(image_input.resize(image, self.size))
        if types is None:
            return pixels, caption, np.zeros((self.size, self.size), np.uint8)
        # Augmentation keeps the geometry, so the map stays aligned with the model input.
        return pixels, caption, np.asarray(types.resize((self.size, self.size), Image.NEAREST))


class EvalSample(SampleMaker):
    def __init__(self, seed, gst_frames, out):
        super().__init__(seed, "eval", gst_frames)
        self.out = out

    def __call__(self, index):
        image, caption, _ = super().__call__(index)
        name = f"images/{index:05d}.png"
        image.save(os.path.join(self.out, name), compress_level=1)
        return {"image": name, "caption": caption, "width": image.width, "height": image.height}


def generate(split, n, out, seed, size=None, workers=2):
    os.makedirs(os.path.join(out, "gst-frames"), exist_ok=True)
    gst = gst_render(os.path.join(out, "gst-frames"), split)
    with multiprocessing.Pool(workers) as pool:
        if split == "train":
            images = np.lib.format.open_memmap(os.path.join(out, "images.npy"), "w+", np.uint8,
                                               (n, size, size, 3))
            types = np.lib.format.open_memmap(os.path.join(out, "types.npy"), "w+", np.uint8,
                                              (n, size, size))
            captions = []
            for i, (pixels, caption, type_map) in enumerate(
                    pool.imap(TrainSample(seed, gst, size), range(n), chunksize=64)):
                images[i], types[i] = pixels, type_map
                captions.append(caption)
            images.flush()
            types.flush()
            with open(os.path.join(out, "captions.txt"), "w") as f:
                f.write("\n".join(captions) + "\n")
        else:
            os.makedirs(os.path.join(out, "images"), exist_ok=True)
            rows = pool.map(EvalSample(seed, gst, out), range(n), chunksize=16)
            with open(os.path.join(out, "labels.jsonl"), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=SPLITS, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--size", type=int, default=112, help="model input size (train split)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    generate(a.split, a.n, a.out, a.seed, a.size, a.workers)


if __name__ == "__main__":
    main()
