#!/usr/bin/python3
"""vlm-run on bad and odd input: every bad input exits 1 with one line on
stderr that says what is wrong; odd but valid pictures caption (exit 0).
Usage: check_cli.py VLM_RUN MODEL_DIR"""
import json, os, subprocess, sys, tempfile
import numpy as np
from PIL import Image


def run(vlm_run, *args):
    return subprocess.run([vlm_run, *args], capture_output=True, text=True, timeout=300)


def main(vlm_run, model):
    failed = passed = 0
    with tempfile.TemporaryDirectory() as t:
        def write(name, data):
            p = os.path.join(t, name)
            open(p, "wb").write(data)
            return p

        good = os.path.join(t, "good.png")
        Image.fromarray(np.zeros((40, 60, 3), np.uint8) + 128, "RGB").save(good)
        png = open(good, "rb").read()
        Image.fromarray(np.zeros((40, 60, 3), np.uint8) + 90, "RGB").save(os.path.join(t, "g.jpg"))
        jpg = open(os.path.join(t, "g.jpg"), "rb").read()
        bad = [
            ("missing image", ["--model", model, "--image", os.path.join(t, "nope.png")], "no such file"),
            ("directory as image", ["--model", model, "--image", t], "no such file"),
            ("text file", ["--model", model, "--image", write("notes.png", b"hello, I am text\n" * 50)],
             "not a decodable image"),
            ("random bytes", ["--model", model, "--image",
                              write("noise.jpg", np.random.default_rng(1).bytes(5000))],
             "not a decodable image"),
            ("truncated png", ["--model", model, "--image", write("cut.png", png[:len(png) // 2])],
             "not a decodable image"),
            ("truncated jpeg", ["--model", model, "--image", write("cut.jpg", jpg[:40])],
             "not a decodable image"),
            ("png header only", ["--model", model, "--image", write("hdr.png", png[:8])],
             "not a decodable image"),
            ("empty file", ["--model", model, "--image", write("empty.png", b"")], "not a decodable image"),
            ("missing model", ["--model", os.path.join(t, "nomodel"), "--image", good], "no such directory"),
            ("model is a file", ["--model", good, "--image", good], "not a directory"),
            ("no arguments", [], "--model DIR and --image FILE are required"),
            ("bad option value", ["--model", model, "--image", good, "--top-p", "2"], "--top-p in (0, 1]"),
        ]
        for what, args, expect in bad:
            p = run(vlm_run, *args)
            lines = p.stderr.strip().splitlines()
            if p.returncode != 1 or len(lines) != 1 or expect not in lines[0]:
                print(f"FAIL {what}: exit {p.returncode}, stderr {p.stderr.strip()!r}, want {expect!r}")
                failed += 1
            else:
                print(f"ok {what}: {lines[0]}")
                passed += 1

        odd = [(1, 1), (8000, 6000), (6000, 2), (2, 6000), (4000, 1)]
        for w, h in odd:
            path = os.path.join(t, f"odd{w}x{h}.png")
            Image.new("RGB", (w, h), (200, 30, 30)).save(path)
            p = run(vlm_run, "--model", model, "--image", path, "--max-new-tokens", "4", "--json")
            try:
                ok = p.returncode == 0 and len(json.loads(p.stdout)["tokens"]) == 4
            except ValueError:
                ok = False
            print(f"{'ok' if ok else 'FAIL'} odd image {w}x{h}: exit {p.returncode} {p.stderr.strip()[:200]}")
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return failed == 0


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1], sys.argv[2]) else 1)
