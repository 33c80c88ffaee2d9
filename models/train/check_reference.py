"""Prove that paligemma.py computes what the C engine must compute: run it on the shared reference
fixtures (../shared/fixtures/paligemma-tiny, made by an HF-checked reference) and compare.

For every case: our preprocessing of the case's image must reproduce its pixel_values exactly, our
prefill logits on the case's pixel_values/input_ids must match within 1e-3 relative (the engine's
bar) and our greedy ids must equal the expected ones. Exits non-zero on any failure.

    /usr/bin/python3 models/train/check_reference.py [FIXTURE_ROOT]
"""
import glob
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image_input  # noqa: E402
import paligemma  # noqa: E402
import safetensors_io  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "paligemma-tiny")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_ROOT
    torch.set_num_threads(2)
    models, failures = {}, 0
    cases = sorted(glob.glob(os.path.join(root, "cases", "*", "expected.json")))
    for case in cases:
        with open(case) as f:
            exp = json.load(f)
        ref = safetensors_io.load(os.path.join(os.path.dirname(case), "expected.safetensors"))
        if exp["model"] not in models:
            models[exp["model"]] = paligemma.load_checkpoint(os.path.join(root, exp["model"]))
        model = models[exp["model"]]
        size = model.config["vision_config"]["image_size"]

        pixels = image_input.preprocess(Image.open(os.path.join(root, exp["image"])), size)
        pix_diff = float(np.abs(pixels - ref["pixel_values"]).max())

        ids = torch.tensor(ref["input_ids"])[None]
        gen, prefill = model.generate(torch.from_numpy(ref["pixel_values"])[None], ids,
                                      len(exp["generated_ids"]),
                                      model.config["eos_token_id"])
        want = ref["prefill_logits"]
        rel = float(np.abs(prefill[0].numpy() - want).max() / np.abs(want).max())
        ok = pix_diff <= 1e-6 and rel <= 1e-3 and gen[0] == exp["generated_ids"]
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(os.path.dirname(case))}: "
              f"pixel_values max diff {pix_diff:.1e}, prefill logits rel {rel:.1e}, "
              f"greedy ids {'equal' if gen[0] == exp['generated_ids'] else 'DIFFER'}")
    print(f"{len(cases) - failures} passed, {failures} failed")
    sys.exit(1 if failures or not cases else 0)


if __name__ == "__main__":
    main()
