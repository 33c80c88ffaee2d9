"""Retrain vlmdescribe-tiny from nothing and write its Hugging Face PaliGemma checkpoint.

    /usr/bin/python3 models/train/train.py --out models/vlmdescribe-tiny

Steps (all seeded, so a rerun gives the same data and tokenizer; torch training on CPU is
reproducible up to floating-point summation order): generate the training set (gen_data.py),
train the sentencepiece tokenizer with spm_train, train the model, export the checkpoint.
Intermediate files go to --work (default build-train/, ignored by git). README.md in --out,
the model card, is not touched.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

# One BLAS thread: torch's own threads already split the work, and OpenBLAS's extra pool on top
# oversubscribes the 2 cores (measured: several times slower when the machine is busy).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
import gen_data  # noqa: E402
import grammar  # noqa: E402
import image_input  # noqa: E402
import paligemma  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB_SIZE = 448  # smallest round size at which every grammar word is one piece


def train_tokenizer(work, captions):
    """Gemma conventions, as the fixture tokenizer: BPE, pad 0 / eos 1 / bos 2 / unk 3, <mask> and
    "\\n" as own pieces, byte fallback, identity normalisation, no dummy prefix, digits split."""
    import sentencepiece as spm
    lines = grammar.tokenizer_corpus() + captions[:20000]
    with open(os.path.join(work, "tokenizer-corpus.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # Relative paths: spm_train stores them in the model, which then does not depend on --work.
    subprocess.run([
        "spm_train", "--input=tokenizer-corpus.txt", "--model_prefix=tokenizer", "--model_type=bpe",
        f"--vocab_size={VOCAB_SIZE}", "--character_coverage=1.0", "--num_threads=1",
        "--shuffle_input_sentence=false", "--split_digits=true",
        "--allow_whitespace_only_pieces=true", "--user_defined_symbols=<mask>,\n",
        "--hard_vocab_limit=false", "--byte_fallback=true", "--pad_id=0", "--eos_id=1",
        "--bos_id=2", "--unk_id=3", "--pad_piece=<pad>", "--eos_piece=<eos>",
        "--bos_piece=<bos>", "--unk_piece=<unk>", "--normalization_rule_name=identity",
        "--add_dummy_prefix=false", "--remove_extra_whitespaces=false"],
        cwd=work, check=True, capture_output=True)
    model_file = os.path.join(work, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=model_file)
    # Every caption word must be one piece: shorter targets, and a clean vocabulary.
    split = [line for line in lines if len(sp.encode(line)) != len(line.replace(",", " ,").split())]
    assert not split and sp.encode("\n") == [5], split[:3]
    return model_file, sp


def init_weights(model):
    for name, p in model.named_parameters():
        if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name:
            continue  # LayerNorm keeps 1/0, Gemma RMSNorm keeps 0 (= scale 1)
        if p.dim() == 1:
            torch.nn.init.zeros_(p)
        else:
            torch.nn.init.normal_(p, std=0.02)


AUX_GRID = 4  # the auxiliary target is a 4x4 grid of cells under every image token


class Batches:
    """Token tensors for the fixed prompt + caption targets; images normalised per batch;
    per image token, the shape type (1 + index, 0 for none) at the centre of each cell of an
    AUX_GRID x AUX_GRID grid over its patch."""

    def __init__(self, sp, config, images, captions, types):
        self.images, self.types = images, types
        self.patch = config["vision_config"]["patch_size"]
        n_image = config["text_config"]["num_image_tokens"]
        self.prefix = ([config["image_token_index"]] * n_image + [2] +
                       sp.encode(grammar.PROMPT + "\n"))
        self.targets = [sp.encode(c) + [1] for c in captions]

    def __call__(self, idx):
        idx = np.sort(idx)  # sequential reads from the memory-mapped image file
        pixels = torch.from_numpy(np.stack([image_input.normalize(self.images[i]) for i in idx]))
        width = max(len(self.targets[i]) for i in idx)
        suffix = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            suffix[row, :len(self.targets[i])] = torch.tensor(self.targets[i])
        prefix = torch.tensor(self.prefix).expand(len(idx), -1)
        return pixels, torch.cat((prefix, suffix), 1), suffix, self.patch_types(idx)

    def patch_types(self, idx):
        c = self.patch // AUX_GRID
        t = torch.from_numpy(np.stack([self.types[i] for i in idx])).long()
        cells = t[:, c // 2::c, c // 2::c]  # [b, s / c, s / c]
        b, g = cells.shape[0], cells.shape[1] // AUX_GRID
        return cells.reshape(b, g, AUX_GRID, g, AUX_GRID).permute(0, 1, 3, 2, 4).reshape(
            b, g * g, AUX_GRID * AUX_GRID)


def losses(model, aux_head, pixels, ids, suffix, patch_types):
    """Cross-entropy of the caption + eos tokens (pads ignored) given the prompt prefix, the
    auxiliary shape-type loss over every cell under every image token, and the share of captions whose every token is the
    argmax (teacher-forced)."""
    n_prefix = ids.shape[1] - suffix.shape[1]
    vision = model.vision_tower.vision_model(pixels)
    logits = model.decode(model.project(vision), ids[:, :-1], n_prefix)[:, n_prefix - 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), suffix.reshape(-1),
                           ignore_index=0)
    aux = F.cross_entropy(aux_head(vision).reshape(-1, 1 + len(grammar.TYPES)),
                          patch_types.reshape(-1))
    right = (logits.argmax(-1) == suffix) | (suffix == 0)
    return loss, aux, right.all(1).float().mean().item()


def train(model, batches, n_train, n_monitor, args):
    # Captions alone teach a from-scratch ViT colours and places quickly but shape types very
    # slowly; a throwaway linear head (not exported) that draws the shape-type map inside every
    # image token's patch makes each token carry the outline (a circle's missing corners).
    aux_head = torch.nn.Linear(model.config["vision_config"]["hidden_size"],
                               AUX_GRID * AUX_GRID * (1 + len(grammar.TYPES)))
    params = list(model.named_parameters()) + list(aux_head.named_parameters())
    decay = [p for n, p in params if p.dim() > 1]
    rest = [p for n, p in params if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    steps_per_epoch = n_train // args.batch
    total = steps_per_epoch * args.epochs
    warmup = min(300, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))))
    rng = np.random.default_rng(args.seed)
    monitor = batches(np.arange(n_train, n_train + n_monitor))
    start, step = time.time(), 0
    for epoch in range(args.epochs):
        order = rng.permutation(n_train)
        for b in range(steps_per_epoch):
            loss, aux, _ = losses(model, aux_head,
                                  *batches(order[b * args.batch:(b + 1) * args.batch]))
            opt.zero_grad(set_to_none=True)
            (loss + args.aux_weight * aux).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % args.log_every == 0 or step == total:
                with torch.no_grad():
                    m_loss, m_aux, m_acc = losses(model, aux_head, *monitor)
                el = time.time() - start
                print(f"step {step}/{total} epoch {epoch} loss {loss.item():.4f} "
                      f"aux {aux.item():.4f} held-out loss {m_loss.item():.4f} "
                      f"aux {m_aux.item():.4f} "
                      f"all-tokens-right {m_acc:.3f} "
                      f"lr {sched.get_last_lr()[0]:.2e} {el / 60:.1f} min "
                      f"(eta {el / step * (total - step) / 60:.1f} min)", flush=True)


def main():
    ap = argparse.ArgumentParser(description="Retrain vlmdescribe-tiny and export it.")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "vlmdescribe-tiny"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build-train"))
    ap.add_argument("--n-train", type=int, default=76800)
    ap.add_argument("--n-monitor", type=int, default=256, help="held-out samples for the log")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (2 gave no speed-up at these matrix sizes)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=192, help="vision and text hidden size")
    ap.add_argument("--layers", type=int, default=4, help="vision and text layers")
    ap.add_argument("--aux-weight", type=float, default=1.0,
                    help="weight of the auxiliary per-patch shape-type loss")
    ap.add_argument("--dtype", choices=["F32", "BF16"], default="F32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()

    size = args.image_size
    n_all = args.n_train + args.n_monitor
    data = os.path.join(args.work, f"train-{gen_data.VERSION}-{args.seed}-{n_all}-{size}")
    if not os.path.exists(os.path.join(data, "captions.txt")):
        gen_data.generate("train", n_all, data, args.seed, size)
    images = np.load(os.path.join(data, "images.npy"), mmap_mode="r")
    types = np.load(os.path.join(data, "types.npy"), mmap_mode="r")
    with open(os.path.join(data, "captions.txt")) as f:
        captions = f.read().splitlines()
    print(f"data: {n_all} samples in {data} ({(time.time() - t0) / 60:.1f} min)", flush=True)

    tokenizer_model, sp = train_tokenizer(args.work, captions[:args.n_train])
    config = export.make_config(sp.get_piece_size(), size, args.patch, args.hidden, args.layers,
                                args.hidden, args.layers, args.hidden // 48, 48)
    model = paligemma.PaliGemma(paligemma.with_defaults(config))
    init_weights(model)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{sp.get_piece_size()} pieces", flush=True)

    train(model, Batches(sp, config, images, captions, types), args.n_train, args.n_monitor, args)
    tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    export.write_checkpoint(args.out, config, tensors, tokenizer_model, args.dtype)
    with open(os.path.join(args.work, "train-args.json"), "w") as f:
        json.dump(vars(args), f, indent=2)
    print(f"wrote {args.out} in {(time.time() - t0) / 60:.1f} min total", flush=True)


if __name__ == "__main__":
    main()
