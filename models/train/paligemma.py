"""PaliGemma (SigLIP + linear projector + Gemma 1) in PyTorch, as docs/model-spec.md describes it.

Module names follow the Hugging Face hub checkpoint layout, so state_dict() keys are exactly the
tensor names of google/paligemma-3b-* (`vision_tower.vision_model.*`,
`multi_modal_projector.linear.*`, `language_model.model.*`; the output head is tied to
embed_tokens and not stored).
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import safetensors_io


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


# ---------------------------------------------------------------- SigLIP vision tower

class SiglipAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        att = (q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5
        y = att.softmax(-1) @ v
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class SiglipMLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, inter), nn.Linear(inter, d)

    def forward(self, x):
        return self.fc2(gelu_tanh(self.fc1(x)))


class SiglipLayer(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d, eps = vc["hidden_size"], vc["layer_norm_eps"]
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.self_attn = SiglipAttention(d, vc["num_attention_heads"])
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = SiglipMLP(d, vc["intermediate_size"])

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class SiglipEmbeddings(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d, p = vc["hidden_size"], vc["patch_size"]
        self.patch_embedding = nn.Conv2d(3, d, kernel_size=p, stride=p)
        self.position_embedding = nn.Embedding((vc["image_size"] // p) ** 2, d)

    def forward(self, pixels):
        # Patch index = row * grid + col.
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        return x + self.position_embedding.weight


class SiglipEncoder(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.layers = nn.ModuleList(SiglipLayer(vc) for _ in range(vc["num_hidden_layers"]))


class SiglipVisionModel(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.embeddings = SiglipEmbeddings(vc)
        self.encoder = SiglipEncoder(vc)
        self.post_layernorm = nn.LayerNorm(vc["hidden_size"], eps=vc["layer_norm_eps"])

    def forward(self, pixels):
        x = self.embeddings(pixels)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.post_layernorm(x)


class VisionTower(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.vision_model = SiglipVisionModel(vc)


class Projector(nn.Module):
    def __init__(self, d_vision, d_text):
        super().__init__()
        self.linear = nn.Linear(d_vision, d_text)


# ---------------------------------------------------------------- Gemma decoder

class RMSNorm(nn.Module):
    """Gemma RMSNorm: weights are offsets from 1 (initialised to 0), computed in float32."""

    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class GemmaAttention(nn.Module):
    def __init__(self, tc):
        super().__init__()
        h, self.nh, self.nkv, self.hd = (tc["hidden_size"], tc["num_attention_heads"],
                                         tc["num_key_value_heads"], tc["head_dim"])
        self.q_proj = nn.Linear(h, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.nkv, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv  # query head j uses kv head j // rep
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) * self.hd ** -0.5 + mask
        y = att.float().softmax(-1).to(v.dtype) @ v
        return self.o_proj(y.transpose(1, 2).reshape(b, n, self.nh * self.hd))


class GemmaMLP(nn.Module):
    def __init__(self, tc):
        super().__init__()
        h, f = tc["hidden_size"], tc["intermediate_size"]
        self.gate_proj = nn.Linear(h, f, bias=False)
        self.up_proj = nn.Linear(h, f, bias=False)
        self.down_proj = nn.Linear(f, h, bias=False)

    def forward(self, x):
        return self.down_proj(gelu_tanh(self.gate_proj(x)) * self.up_proj(x))


class GemmaLayer(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.input_layernorm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])
        self.self_attn = GemmaAttention(tc)
        self.post_attention_layernorm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])
        self.mlp = GemmaMLP(tc)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class GemmaModel(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.embed_tokens = nn.Embedding(tc["vocab_size"], tc["hidden_size"])
        self.layers = nn.ModuleList(GemmaLayer(tc) for _ in range(tc["num_hidden_layers"]))
        self.norm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])


class LanguageModel(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.model = GemmaModel(tc)


# ---------------------------------------------------------------- PaliGemma

def prefix_lm_mask(length, n_prefix, dtype):
    """Additive mask: the prefix (image tokens, bos, prompt, "\\n") is bidirectional,
    the suffix is causal and sees the whole prefix."""
    i = torch.arange(length)
    visible = (i[None, :] < n_prefix) | (i[None, :] <= i[:, None])
    return torch.zeros(length, length, dtype=dtype).masked_fill(~visible, float("-inf"))


class PaliGemma(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        vc, tc = config["vision_config"], config["text_config"]
        self.vision_tower = VisionTower(vc)
        self.multi_modal_projector = Projector(vc["hidden_size"], tc["hidden_size"])
        self.language_model = LanguageModel(tc)

    def project(self, vision_out):
        x = self.multi_modal_projector.linear(vision_out)
        return x / math.sqrt(self.config["text_config"]["hidden_size"])

    def forward(self, pixels, input_ids, n_prefix):
        """Logits [B, L, rows] for input_ids [B, L] whose first n_prefix tokens are the prompt."""
        vision_out = self.vision_tower.vision_model(pixels)
        return self.decode(self.project(vision_out), input_ids, n_prefix)

    def decode(self, feats, input_ids, n_prefix):
        """The Gemma decoder with the projected image features scattered into the image tokens."""
        tc, lm = self.config["text_config"], self.language_model.model
        image_id = self.config["image_token_index"]
        is_image = input_ids == image_id
        x = lm.embed_tokens(input_ids.masked_fill(input_ids >= tc["vocab_size"], 0))
        x = x.masked_scatter(is_image[..., None], feats.to(x.dtype))
        x = x * torch.tensor(tc["hidden_size"] ** 0.5, dtype=x.dtype)

        length = input_ids.shape[1]
        hd = tc["head_dim"]
        inv_freq = 1.0 / (tc["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        angles = torch.arange(1, length + 1, dtype=torch.float32)[:, None] * inv_freq  # 1-indexed
        angles = torch.cat((angles, angles), -1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        mask = prefix_lm_mask(length, n_prefix, x.dtype)
        for layer in lm.layers:
            x = layer(x, cos, sin, mask)
        return lm.norm(x) @ lm.embed_tokens.weight.T

    @torch.no_grad()
    def generate(self, pixels, prompt_ids, max_new_tokens, eos_id):
        """Greedy decoding by full recompute (prefix bidirectional, generated tokens causal),
        which equals HF's KV-cached decoding. Returns (ids per row, prefill logits [B, rows])."""
        n_prefix = prompt_ids.shape[1]
        ids, done, prefill = prompt_ids, torch.zeros(len(prompt_ids), dtype=torch.bool), None
        for _ in range(max_new_tokens):
            logits = self(pixels, ids, n_prefix)[:, -1]
            prefill = logits if prefill is None else prefill
            nxt = logits.argmax(-1).masked_fill(done, eos_id)
            ids = torch.cat((ids, nxt[:, None]), 1)
            done |= nxt == eos_id
            if done.all():
                break
        out = []
        for row in ids[:, n_prefix:].tolist():
            out.append(row[:row.index(eos_id) + 1] if eos_id in row else row)
        return out, prefill

    def load_numpy(self, tensors):
        """Load hub-named tensors; a stored lm_head is ignored (tied)."""
        own = self.state_dict()
        missing = set(own) - set(tensors)
        extra = set(tensors) - set(own) - {"language_model.lm_head.weight"}
        if missing or extra:
            raise ValueError(f"missing {sorted(missing)}, unexpected {sorted(extra)}")
        for name, param in own.items():
            if tuple(param.shape) != tensors[name].shape:
                raise ValueError(f"{name}: {tensors[name].shape} != {tuple(param.shape)}")
            param.copy_(torch.from_numpy(np.asarray(tensors[name])))


def with_defaults(config):
    """Apply the HF defaults that real configs leave out (spec §1)."""
    tc, vc = dict(config["text_config"]), dict(config["vision_config"])
    tc.setdefault("head_dim", 256)
    tc.setdefault("rms_norm_eps", 1e-6)
    tc.setdefault("rope_theta", 10000.0)
    vc.setdefault("layer_norm_eps", 1e-6)
    vc.setdefault("image_size", 224)
    vc.setdefault("patch_size", 16)
    return {**config, "text_config": tc, "vision_config": vc}


def load_checkpoint(path):
    """A PaliGemma model (eval mode) from a hub-format checkpoint directory (single file)."""
    with open(os.path.join(path, "config.json")) as f:
        config = with_defaults(json.load(f))
    model = PaliGemma(config).eval()
    model.load_numpy(safetensors_io.load(os.path.join(path, "model.safetensors")))
    return model
