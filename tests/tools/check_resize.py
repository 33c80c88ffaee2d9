#!/usr/bin/python3
"""Pillow parity of the engine's preprocessing beyond the fixture images:
random pictures of many sizes (tiny, huge, tall, wide, odd) are resized by
Pillow (Debian's, horizontal pass first like Pillow <= 12.1) and by vlm-run
(--dump-pixels); the normalized pixels must be identical.
Usage: check_resize.py VLM_RUN MODEL_DIR"""
import json, os, subprocess, sys, tempfile
import numpy as np
from PIL import Image


def expected_pixels(img, size, pp):
    r = np.asarray(img.resize((size, size), resample=Image.BICUBIC), dtype=np.uint8)
    x = (r.astype(np.float64) * pp["rescale_factor"]).astype(np.float32)
    mean = np.array(pp["image_mean"], dtype=np.float32)
    std = np.array(pp["image_std"], dtype=np.float32)
    return ((x - mean) / std).transpose(2, 0, 1)


def main(run, model):
    pp = json.load(open(os.path.join(model, "preprocessor_config.json")))
    size = pp["size"]["height"]
    rng = np.random.default_rng(7)
    sizes = [(1, 1), (2, 3), (64, 64), (63, 65), (97, 53), (53, 97), (320, 240),
             (1280, 720), (1920, 1080), (3000, 7), (7, 3000), (129, 4), (4, 129),
             (33, 250), (250, 33), (1000, 999), (65, 64), (64, 1), (1, 64)]
    sizes += [tuple(int(v) for v in rng.integers(1, 600, 2)) for _ in range(12)]
    bad = 0
    with tempfile.TemporaryDirectory() as t:
        for w, h in sizes:
            # Smooth structure plus noise, so that rounding paths get exercised.
            yy, xx = np.mgrid[0:h, 0:w]
            base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                             ((xx + yy) * 7) % 256], axis=-1)
            px = np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)
            img = Image.fromarray(px, "RGB")
            path = os.path.join(t, "in.png")
            img.save(path)
            out = os.path.join(t, "px.f32")
            p = subprocess.run([run, "--model", model, "--image", path, "--max-new-tokens", "1",
                                "--dump-pixels", out], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{w}x{h}: vlm-run failed: {p.stderr.strip()}")
                bad += 1
                continue
            mine = np.fromfile(out, dtype="<f4").reshape(3, size, size)
            diff = np.abs(mine - expected_pixels(img, size, pp)).max()
            if diff != 0:
                print(f"{w}x{h}: max abs pixel diff {diff:g}")
                bad += 1
    print(f"{len(sizes) - bad} passed, {bad} failed")
    return bad == 0


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1], sys.argv[2]) else 1)
