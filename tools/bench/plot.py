#!/usr/bin/python3
"""Plot decode tokens/s per weight format against the memory-bandwidth bound,
from the JSON line vlm-bench prints last.
Usage: plot.py BENCH_OUTPUT.txt OUT.png   (Debian: python3-matplotlib)"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(src, out):
    run = json.loads(open(src).read().strip().splitlines()[-1])
    names, got, bound, ratios = [], [], [], []
    for f in run["formats"]:
        # the bound of the read rate measured next to this format's runs
        bw = f["read_bandwidth_gb_s"]["median"] * 1e9
        names.append(f"{f['format']}\n({f['dtype']}, {f['decode_bytes_per_token'] / 1e9:.2f} GB/token)")
        got.append(f["decode_tok_s"]["median"])
        bound.append(bw / f["decode_bytes_per_token"])
        ratios.append(f["decode_bandwidth_ratio"]["median"])  # as vlm-bench's table
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([i - 0.2 for i in x], bound, width=0.4, label="bandwidth bound", color="#cccccc")
    ax.bar([i + 0.2 for i in x], got, width=0.4, label="vlmdescribe decode", color="#3b6ea8")
    for i in x:
        ax.text(i + 0.2, got[i], f"{got[i]:.1f}\n{ratios[i]:.0%}", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("tokens / s")
    reads = [f["read_bandwidth_gb_s"]["median"] for f in run["formats"]]
    ax.set_title(f"PaliGemma-3B decode, {run['cpu']}, {run['kernels']} kernels, "
                 f"{int(run['threads'])} threads, read {min(reads):.0f}-{max(reads):.0f} GB/s "
                 "next to the runs", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
