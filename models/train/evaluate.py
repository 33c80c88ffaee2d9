"""Per-attribute accuracy of a captioner on a held-out generated set (scenes and videotestsrc
frames never seen in training: other seeds, other frame sizes, other animation frames).

    /usr/bin/python3 models/train/evaluate.py                      # through the C engine (vlm-run)
    /usr/bin/python3 models/train/evaluate.py --torch              # through paligemma.py instead

The held-out set is generated on first use into --data (default build-train/eval-<version>-<seed>-<n>).
Captions are parsed with the grammar (grammar.parse); scores:
  exact caption        the whole caption right (every attribute, the order, the wording)
  pattern name         videotestsrc pattern frames: the right pattern
  plain frame colour   one-colour frames: the right colour
  background colour    scenes: the right background colour
  shape count          scenes: the right number of shapes
  shape colour+type    scenes: share of true shapes whose colour and type appear in the caption
  + position, + size   ... also at the right position / also with the right size
"""
import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_data  # noqa: E402
import grammar  # noqa: E402
import image_input  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = {"background colour": 0.97, "shape colour+type": 0.95, "exact caption": 0.90}


def run_vlm(vlm_run, model, data, rows, jobs):
    def one(row):
        cmd = [vlm_run, "--model", model, "--image", os.path.join(data, row["image"]),
               "--json", "--max-new-tokens", "48", "--threads", "1"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])["text"]
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, rows))


def run_torch(model_dir, data, rows, batch=64):
    # PyTorch only here: the vlm-run path runs on Debian's python3 packages
    import sentencepiece as spm
    import torch
    import paligemma
    torch.set_num_threads(2)
    model = paligemma.load_checkpoint(model_dir)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    cfg = model.config
    prompt = ([cfg["image_token_index"]] * cfg["text_config"]["num_image_tokens"] + [2] +
              sp.encode(grammar.PROMPT + "\n"))
    size = cfg["vision_config"]["image_size"]
    texts = []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        images = torch.from_numpy(np.stack([
            image_input.preprocess(Image.open(os.path.join(data, r["image"])), size) for r in part]))
        ids, _ = model.generate(images, torch.tensor([prompt] * len(part)), 48,
                                cfg["eos_token_id"])
        for row in ids:
            texts.append(sp.decode([i for i in row if i < sp.get_piece_size()
                                    and not sp.is_control(i)]))
        print(f"  {len(texts)}/{len(rows)}", file=sys.stderr, flush=True)
    return texts


def matched(truth, pred, key):
    """How many true shapes find a predicted shape with the same key (multiset matching)."""
    left = collections.Counter(key(s) for s in pred)
    hits = 0
    for s in truth:
        if left[key(s)] > 0:
            left[key(s)] -= 1
            hits += 1
    return hits


def score(rows, texts):
    tally = collections.defaultdict(lambda: [0, 0])  # name -> [right, total]

    def add(name, right, total=1):
        tally[name][0] += right
        tally[name][1] += total

    for row, text in zip(rows, texts):
        t, p = grammar.parse(row["caption"]), grammar.parse(text)
        add("exact caption", text.strip() == row["caption"])
        add("valid grammar", p["kind"] != "invalid")
        if t["kind"] == "pattern":
            add("pattern name", p.get("pattern") == t["pattern"])
        elif t["kind"] == "plain":
            add("plain frame colour", p.get("colour") == t["colour"])
        else:
            shapes = p.get("shapes", [])
            n = len(t["shapes"])
            add("background colour", p.get("background") == t["background"])
            add("shape count", len(shapes) == n)
            add("shape colour+type", matched(t["shapes"], shapes, lambda s: s[1:3]), n)
            add("shape colour+type+position", matched(t["shapes"], shapes, lambda s: s[1:]), n)
            add("shape size+colour+type+position", matched(t["shapes"], shapes, tuple), n)
            add(f"exact caption, {n}-shape scenes", text.strip() == row["caption"])
    return {k: (r / n, r, n) for k, (r, n) in tally.items()}


def main():
    ap = argparse.ArgumentParser(description="Evaluate a vlmdescribe-tiny style checkpoint.")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "vlmdescribe-tiny"))
    ap.add_argument("--vlm-run", default=os.path.join(ROOT, "build", "src", "vlm-run"))
    ap.add_argument("--torch", action="store_true", help="run paligemma.py instead of vlm-run")
    ap.add_argument("--n", type=int, default=1200, help="held-out set size")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--data", help="held-out set directory (generated if missing)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel vlm-run processes")
    ap.add_argument("--predictions", help="write every caption and prediction to this JSON file")
    args = ap.parse_args()
    data = args.data or os.path.join(ROOT, "build-train",
                                     f"eval-{gen_data.VERSION}-{args.seed}-{args.n}")
    if not os.path.exists(os.path.join(data, "labels.jsonl")):
        gen_data.generate("eval", args.n, data, args.seed)
    with open(os.path.join(data, "labels.jsonl")) as f:
        rows = [json.loads(line) for line in f]

    if args.torch:
        texts = run_torch(args.model, data, rows)
    else:
        texts = run_vlm(args.vlm_run, args.model, data, rows, args.jobs)
    if args.predictions:
        with open(args.predictions, "w") as f:
            json.dump([{**r, "predicted": t} for r, t in zip(rows, texts)], f, indent=1)

    print(f"{len(rows)} held-out images from {data}, model {args.model}, "
          f"via {'paligemma.py (torch)' if args.torch else args.vlm_run}")
    results = score(rows, texts)
    for name, (acc, right, total) in sorted(results.items()):
        target = f"  (target {TARGETS[name]:.0%})" if name in TARGETS else ""
        print(f"  {name:34s} {acc:7.2%}  {right}/{total}{target}")
    wrong = [(r["caption"], t) for r, t in zip(rows, texts) if t.strip() != r["caption"]]
    for truth, text in wrong[:12]:
        print(f"  want: {truth}\n   got: {text}")
    sys.exit(0 if all(results[k][0] >= v for k, v in TARGETS.items()) else 1)


if __name__ == "__main__":
    main()
