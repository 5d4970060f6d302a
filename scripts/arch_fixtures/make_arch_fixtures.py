#!/usr/bin/env python3
"""make_arch_fixtures.py - tiny random-weight checkpoints + Hugging Face reference logits, one per architecture.

For every fixture NAME this writes, under --out DIR:
    DIR/NAME/config.json           the config the way the real checkpoints spell it
    DIR/NAME/model.safetensors     bf16 weights (save_pretrained's output, or renamed keys for remote-code archs)
    DIR/NAME/refs.safetensors      input_ids I32 [2, 48], logits F32 [2, 48, 256]
    DIR/NAME/generation_config.json  (when save_pretrained wrote one)
and DIR/manifest.json (one entry per fixture: architecture, what it exercises, reference method, status, notes,
tensor names and shapes) and DIR/errors.log (full tracebacks).

Method (see README.md beside this file): build the config with the transformers 5 config class, instantiate the
model in fp32, overwrite EVERY parameter with seeded random values (norm weights around 1, or around 0 for the
Gemma-style (1 + w) norms, biases and routers non-zero), cast to bf16, save_pretrained, reload in fp32 with
attn_implementation="eager" (checking that every key loaded), and run one forward over random token ids in fp32.
Architectures that transformers only runs as remote code (InternLM2, Index, Yi, Orion, MiniCPM when absent) are
computed with an equivalent LlamaForCausalLM (plus the arch's extra ops) and exported with the real key names.

Run (needs torch, transformers 5.x, safetensors):
    python3 scripts/arch_fixtures/make_arch_fixtures.py --out DIR [--only a,b] [--device cpu|cuda] [--list]
Exit status 0 when every selected fixture succeeded, 1 otherwise.
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

# ----------------------------------------------------------------------------------------------- sizes
VOCAB = 256  # vocab_size of every fixture
HIDDEN = 128  # hidden size (InternLM2 uses 256, see fx_internlm2)
INTER = 128  # dense MLP intermediate size
MOE_INTER = 64  # per-expert intermediate size
N_EXPERTS, TOP_K = 4, 2
SEQ, BATCH = 48, 2  # T = 48 is longer than every sliding window / original context used below
MAXPOS = 256
SWA = 16  # sliding window
KEEP = {"config.json", "model.safetensors", "refs.safetensors", "generation_config.json"}


# ----------------------------------------------------------------------------------------------- helpers
def seed_of(name, salt=0):
    """Stable per-fixture seed (adding fixtures does not change the others)."""
    return (zlib.crc32(name.encode()) + 7919 * salt) % (2**31 - 1)


def tcls(name):
    cls = getattr(transformers, name, None)
    if cls is None:
        raise RuntimeError(f"transformers {transformers.__version__} has no {name}")
    return cls


def rope(kind="default", theta=10000.0, **kw):
    return {"rope_type": kind, "rope_theta": theta, **kw}


def kfmt(n):
    return f"{n / 1000:.0f}k" if n < 10**6 else f"{n / 10**6:.2f}M"


class Ctx:
    """Per-fixture state: name, seed, output dir, scratch dir, notes and checks."""

    def __init__(self, name, out, work_root, device):
        self.name, self.device = name, device
        self.seed = seed_of(name)
        self.dir = os.path.join(out, name)
        self.work = tempfile.mkdtemp(prefix=name + "_", dir=work_root)
        self.notes = []
        self.extra = {}  # results for other fixtures produced by the same function (gemma3_mm_old)

    def note(self, msg):
        self.notes.append(msg)

    def check(self, cond, msg):
        if not cond:
            raise AssertionError(msg)
        self.notes.append("check ok: " + msg)


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def clean_dir(path):
    """Delete whatever save_pretrained wrote besides the files a fixture keeps."""
    for f in os.listdir(path):
        if f not in KEEP:
            p = os.path.join(path, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def num_experts_of(cfg):
    for k in ("num_local_experts", "num_experts"):
        v = getattr(cfg, k, None)
        if isinstance(v, int):
            return v
    ffn = getattr(cfg, "ffn_config", None)
    return getattr(ffn, "moe_num_experts", None)


def is_tied(cfg):
    return bool(getattr(cfg, "tie_word_embeddings", False))


def make_ids(name, hi=VOCAB):
    g = torch.Generator().manual_seed(seed_of(name, 1))
    return torch.randint(0, hi, (BATCH, SEQ), generator=g)


# ----------------------------------------------------------------------------------------------- random weights
ROUTER_RE = re.compile(r"(^|\.)(gate|router)(\.layer)?\.weight$")


def norm_is_offset(mod, weight):
    """True when the norm computes x_hat * (1 + w) (Gemma style): with every param zeroed it still passes x through."""
    saved = [(p, p.detach().clone()) for p in mod.parameters(recurse=False)]
    try:
        with torch.no_grad():
            for p, _ in saved:
                p.zero_()
            x = torch.randn((1, 3) + tuple(weight.shape), generator=torch.Generator().manual_seed(0))
            out = mod(x)
            out = out[0] if isinstance(out, tuple) else out
            return bool(out.abs().max().item() > 1e-6)
    finally:
        with torch.no_grad():
            for p, v in saved:
                p.copy_(v)


def randomize(model, seed, n_experts, emb_std, overrides=()):
    """Overwrite every parameter with seeded random values; return {param name: 'kind(mean,std)'}.

    Defaults: embeddings N(0, emb_std); plain norm weights 1 + N(0, .1); (1 + w) norm weights N(0, .1); biases
    N(0, .05); routers N(0, .15); other matrices N(0, 1/sqrt(fan_in)).  `overrides` is a list of
    (regex, mean, std) matched against the parameter name, first match wins.
    """
    g = torch.Generator().manual_seed(seed)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    seen, plan = set(), {}
    with torch.no_grad():
        for mname, mod in model.named_modules():
            direct = dict(mod.named_parameters(recurse=False))
            if not direct:
                continue
            cname = type(mod).__name__
            offset = None
            if "Norm" in cname and "weight" in direct and not isinstance(mod, nn.Embedding):
                try:
                    offset = norm_is_offset(mod, direct["weight"])
                except Exception:  # a norm whose forward needs more than x: treat as a plain norm
                    offset = False
            for pname, p in direct.items():
                if id(p) in seen:  # tied weight already drawn through its first owner
                    continue
                seen.add(id(p))
                full = f"{mname}.{pname}" if mname else pname
                if isinstance(mod, nn.Embedding):
                    kind, mean, std = "embed", 0.0, emb_std
                elif offset is not None and pname == "weight":
                    kind, mean, std = ("norm1p", 0.0, 0.1) if offset else ("norm", 1.0, 0.1)
                elif pname == "bias" or pname.endswith("_bias"):
                    kind, mean, std = "bias", 0.0, 0.05
                elif p.dim() == 2 and n_experts and p.shape[0] == n_experts and ROUTER_RE.search(full):
                    kind, mean, std = "router", 0.0, 0.15
                elif "shared_expert_gate" in full:
                    kind, mean, std = "sgate", 0.0, 0.15
                elif p.dim() >= 2:
                    if cname == "Conv1D":  # GPT-2 style, weight is [in, out]
                        fan_in = p.shape[0]
                    elif isinstance(mod, nn.Conv2d):
                        fan_in = p[0].numel()
                    else:
                        fan_in = p.shape[-1]
                    kind, mean, std = "matrix", 0.0, 1.0 / math.sqrt(fan_in)
                else:
                    kind, mean, std = "other1d", 0.0, 0.05
                for rx, m, s in overrides:
                    if re.search(rx, full):
                        kind, mean, std = kind + "*", m, s
                        break
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std + mean)
                plan[full] = f"{kind}({mean:g},{std:.3g})"
    stale = [n for n, p in model.named_parameters() if torch.equal(p.detach(), before[id(p)])]
    if stale:
        raise AssertionError(f"parameters left at their init value: {stale[:8]}")
    missing = [n for n, p in model.named_parameters() if id(p) not in seen]
    if missing:
        raise AssertionError(f"parameters not randomized: {missing[:8]}")
    return plan


# ----------------------------------------------------------------------------------------------- save / reload / run
def load_info_problems(info, tied):
    if info is None:
        return []
    get = info.get if isinstance(info, dict) else (lambda k, d=None: getattr(info, k, d))
    bad = []
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs", "conversion_errors"):
        vals = list(get(key, None) or [])
        if key == "missing_keys" and tied:
            vals = [v for v in vals if not str(v).endswith("lm_head.weight")]
        if vals:
            bad.append(f"{key}={vals[:6]}")
    return bad


def roundtrip(ctx, cfg, cls_name, save_dir, *, overrides=(), emb_std=None, load_cls=None, post_randomize=None):
    """Build cls_name(cfg) in fp32, randomize, save bf16 with save_pretrained, reload fp32 eager; return the reload."""
    torch.manual_seed(ctx.seed)
    model = tcls(cls_name)(cfg).float().eval()
    if emb_std is None:
        emb_std = 0.25 if is_tied(cfg) else 0.5
    plan = randomize(model, ctx.seed, num_experts_of(cfg), emb_std, overrides)
    if post_randomize is not None:
        with torch.no_grad():
            post_randomize(model, torch.Generator().manual_seed(seed_of(ctx.name, 2)))
    ctx.plan = plan
    ctx.params = sum(p.numel() for p in model.parameters())
    want = {n: p.detach().to(torch.bfloat16) for n, p in model.named_parameters()}
    model.to(torch.bfloat16)
    model.save_pretrained(save_dir)
    del model
    loader = tcls(load_cls) if load_cls else AutoModelForCausalLM
    loaded, info = loader.from_pretrained(
        save_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    bad = load_info_problems(info, is_tied(cfg))
    if bad:
        raise AssertionError("reload: " + "; ".join(bad))
    got = dict(loaded.named_parameters())
    if set(got) != set(want):
        raise AssertionError(f"reload param names differ: only saved {sorted(set(want) - set(got))[:5]}, "
                             f"only loaded {sorted(set(got) - set(want))[:5]}")
    diff = [n for n, p in got.items() if not torch.equal(p.detach(), want[n].float())]
    if diff:
        raise AssertionError(f"reloaded values differ from the saved bf16 values: {diff[:6]}")
    ctx.note(f"reload ok: {len(got)} params equal to the bf16 values saved, no missing/unexpected keys")
    return loaded.eval()


def forward(ctx, model, ids, hidden_only=False):
    dev = torch.device(ctx.device)
    model.to(dev)
    with torch.no_grad():
        if hidden_only:
            out = model.model(input_ids=ids.to(dev), use_cache=False).last_hidden_state
        else:
            out = model(input_ids=ids.to(dev), use_cache=False).logits
    model.to("cpu")
    return out.detach().float().cpu()


def write_refs(ctx, fixdir, ids, logits, method):
    if tuple(logits.shape) != (BATCH, SEQ, VOCAB):
        raise AssertionError(f"logits shape {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise AssertionError("non-finite logits")
    meta = {"fixture": os.path.basename(fixdir), "method": method, "transformers": transformers.__version__,
            "torch": torch.__version__, "device": ctx.device}
    save_file({"input_ids": ids.to(torch.int32).contiguous(), "logits": logits.float().contiguous()},
              os.path.join(fixdir, "refs.safetensors"), metadata=meta)


def summarize(ctx, fixdir, logits, method):
    tensors = load_file(os.path.join(fixdir, "model.safetensors"))
    sizes = {f: os.path.getsize(os.path.join(fixdir, f)) for f in sorted(os.listdir(fixdir))}
    return {
        "method": method,
        "params": sum(t.numel() for t in tensors.values()),
        "files": sizes,
        "logits_std": round(float(logits.std(dim=-1).mean()), 4),
        "notes": list(ctx.notes),
        "tensors": {k: [str(t.dtype).replace("torch.", ""), list(t.shape)] for k, t in sorted(tensors.items())},
        "randomization": getattr(ctx, "plan", {}),
    }


def native(ctx, cfg, cls_name, arch=None, *, overrides=(), emb_std=None, probe=None, after=None):
    """The standard path: save_pretrained into the fixture dir, reload, forward, write refs."""
    fresh_dir(ctx.dir)
    model = roundtrip(ctx, cfg, cls_name, ctx.dir, overrides=overrides, emb_std=emb_std)
    ctx.check(type(model).__name__ == (arch or cls_name), f"reloaded class is {type(model).__name__}")
    ids = make_ids(ctx.name)
    with (probe(ctx, model) if probe else contextlib.nullcontext()):
        logits = forward(ctx, model, ids)
    if after is not None:
        after(ctx, model)
    clean_dir(ctx.dir)
    method = f"transformers {cls_name} (fp32 eager, {ctx.device}) reloaded from the bf16 save_pretrained output"
    write_refs(ctx, ctx.dir, ids, logits, method)
    return summarize(ctx, ctx.dir, logits, method)


# ----------------------------------------------------------------------------------------------- probes and checks
@contextlib.contextmanager
def tanh_probe(ctx, model, attn_cap, final_cap):
    """Count how often the soft-capped values exceed cap/2 (torch.tanh sees x/cap, so |x/cap| > 0.5)."""
    orig, stats = torch.tanh, {"attn": [], "final": []}

    def probe(x, *a, **k):
        if x.dim() == 4 and x.shape[-1] == x.shape[-2] == SEQ:
            causal = torch.ones(SEQ, SEQ, dtype=torch.bool, device=x.device).tril()
            stats["attn"].append(float((x.abs() > 0.5)[..., causal].float().mean()))
        elif x.dim() == 3 and x.shape[-1] == VOCAB:
            stats["final"].append(float((x.abs() > 0.5).float().mean()))
        return orig(x, *a, **k)

    torch.tanh = probe
    try:
        yield
    finally:
        torch.tanh = orig
    a = sum(stats["attn"]) / max(1, len(stats["attn"]))
    f = sum(stats["final"]) / max(1, len(stats["final"]))
    ctx.note(f"softcap: |score| > {attn_cap / 2:g} in {100 * a:.1f}% of causal attention scores "
             f"({len(stats['attn'])} layers), |logit| > {final_cap / 2:g} in {100 * f:.1f}% of logits")
    ctx.check(len(stats["attn"]) > 0 and a > 0.05 and f > 0.05, "both softcaps bite (>5% beyond cap/2)")


def rope_note(model, head_dim, theta, partial=1.0):
    """Describe the rotary frequencies transformers actually used (after the forward: dynamic/longrope update)."""
    for name, mod in model.named_modules():
        inv = getattr(mod, "inv_freq", None)
        if name.endswith("rotary_emb") and torch.is_tensor(inv):
            d = int(head_dim * partial)
            base = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
            ratio = inv.float().cpu()[: base.numel()] / base
            implied = float(inv.float()[1] ** (-d / 2)) if inv.numel() > 1 else float("nan")
            return (f"rope: attention_scaling={getattr(mod, 'attention_scaling', None)}, inv_freq/default ratio "
                    f"first={float(ratio[0]):.4g} last={float(ratio[-1]):.4g} min={float(ratio.min()):.4g}, "
                    f"theta implied by inv_freq[1]={implied:.6g}")
    return "rope: no rotary_emb module with inv_freq found"


def llama_rope_after(theta):
    def after(ctx, model):
        ctx.note(rope_note(model, model.config.head_dim, theta))
    return after


# ----------------------------------------------------------------------------------------------- native fixtures
def llama_cfg(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=MAXPOS,
                rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                rope_parameters=rope())
    base.update(kw)
    return tcls("LlamaConfig")(**base)


def fx_llama(ctx):
    return native(ctx, llama_cfg(), "LlamaForCausalLM")


def fx_llama_bias(ctx):
    def after(ctx, m):
        a, p = m.model.layers[0].self_attn, m.model.layers[0].mlp
        ctx.check(all(x.bias is not None for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, p.gate_proj,
                                                   p.up_proj, p.down_proj)), "q/k/v/o and gate/up/down have biases")
    return native(ctx, llama_cfg(attention_bias=True, mlp_bias=True), "LlamaForCausalLM", after=after)


def fx_llama3_rope(ctx):
    r = rope("llama3", 500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
             original_max_position_embeddings=32)
    return native(ctx, llama_cfg(rope_parameters=r), "LlamaForCausalLM", after=llama_rope_after(500000.0))


def fx_llama_hd(hd):
    def fn(ctx):
        def after(ctx, m):
            ctx.check(m.model.layers[0].self_attn.q_proj.out_features == 4 * hd, f"q_proj has 4 heads x {hd}")
        return native(ctx, llama_cfg(head_dim=hd), "LlamaForCausalLM", after=after)
    return fn


def fx_llama_yarn(ctx):
    r = rope("yarn", 10000.0, factor=4.0, original_max_position_embeddings=32)
    return native(ctx, llama_cfg(rope_parameters=r), "LlamaForCausalLM", after=llama_rope_after(10000.0))


def fx_llama_dynamic(ctx):
    cfg = llama_cfg(rope_parameters=rope("dynamic", 10000.0, factor=2.0), max_position_embeddings=32)
    expected = 10000.0 * (2.0 * SEQ / 32 - 1.0) ** (64 / 62)
    ctx.note(f"dynamic NTK: expected base for seq_len={SEQ} > max_position_embeddings=32 is "
             f"10000*((2*{SEQ}/32)-1)^(64/62)={expected:.6g}, used for all positions of the forward")
    return native(ctx, cfg, "LlamaForCausalLM", after=llama_rope_after(10000.0))


def fx_llama_linear(ctx):
    cfg = llama_cfg(rope_parameters=rope("linear", 10000.0, factor=2.0))
    return native(ctx, cfg, "LlamaForCausalLM", after=llama_rope_after(10000.0))


def fx_mistral(ctx):
    cfg = tcls("MistralConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                                max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, sliding_window=SWA,
                                tie_word_embeddings=False, rope_parameters=rope(theta=1e6), bos_token_id=1,
                                eos_token_id=2)

    def after(ctx, m):
        ctx.check(m.config.sliding_window == SWA, f"sliding_window={SWA}")
    return native(ctx, cfg, "MistralForCausalLM", after=after)


def fx_mixtral(ctx):
    cfg = tcls("MixtralConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=MOE_INTER,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                                max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, sliding_window=None,
                                num_local_experts=N_EXPERTS, num_experts_per_tok=TOP_K, router_jitter_noise=0.0,
                                tie_word_embeddings=False, rope_parameters=rope(theta=1e6), bos_token_id=1,
                                eos_token_id=2)
    return native(ctx, cfg, "MixtralForCausalLM", after=moe_keys_note)


def moe_keys_note(ctx, m):
    keys = list(load_file(os.path.join(ctx.dir, "model.safetensors")).keys())
    fused = [k for k in keys if re.search(r"experts\.(gate_up_proj|down_proj|w1|w2|w3)$", k)]
    per = [k for k in keys if re.search(r"experts\.\d+\.", k)]
    ctx.note(f"saved expert layout: {len(per)} per-expert tensors, {len(fused)} fused expert tensors")


def fx_qwen2(ctx):
    cfg = tcls("Qwen2Config")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAXPOS,
                              rms_norm_eps=1e-6, tie_word_embeddings=False, rope_parameters=rope(theta=1e6),
                              bos_token_id=1, eos_token_id=2)

    def after(ctx, m):
        a = m.model.layers[0].self_attn
        ctx.check(a.q_proj.bias is not None and a.o_proj.bias is None, "q/k/v biases, no o_proj bias")
    return native(ctx, cfg, "Qwen2ForCausalLM", after=after)


def fx_qwen3(ctx):
    cfg = tcls("Qwen3Config")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                              max_position_embeddings=MAXPOS, rms_norm_eps=1e-6, tie_word_embeddings=False,
                              rope_parameters=rope(theta=1e6), bos_token_id=1, eos_token_id=2)

    def after(ctx, m):
        ctx.check(hasattr(m.model.layers[0].self_attn, "q_norm"), "per-head q_norm/k_norm present")
    return native(ctx, cfg, "Qwen3ForCausalLM", after=after)


def fx_qwen3_moe(ctx):
    cfg = tcls("Qwen3MoeConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
                                 moe_intermediate_size=MOE_INTER, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, head_dim=64, max_position_embeddings=MAXPOS,
                                 rms_norm_eps=1e-6, num_experts=N_EXPERTS, num_experts_per_tok=TOP_K,
                                 norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[1],
                                 tie_word_embeddings=False, rope_parameters=rope(theta=1e6), bos_token_id=1,
                                 eos_token_id=2)

    def after(ctx, m):
        t0, t1 = type(m.model.layers[0].mlp).__name__, type(m.model.layers[1].mlp).__name__
        ctx.check(t0 != t1, f"layer 0 mlp is {t0}, layer 1 (mlp_only_layers) is {t1}")
        ctx.check(m.model.layers[0].self_attn.q_proj.out_features == 4 * 64, "head_dim 64 honoured")
        moe_keys_note(ctx, m)
    return native(ctx, cfg, "Qwen3MoeForCausalLM", after=after)


def fx_qwen2_moe(ctx):
    cfg = tcls("Qwen2MoeConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
                                 moe_intermediate_size=MOE_INTER, shared_expert_intermediate_size=MOE_INTER,
                                 num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                 max_position_embeddings=MAXPOS, rms_norm_eps=1e-6, num_experts=N_EXPERTS,
                                 num_experts_per_tok=TOP_K, norm_topk_prob=False, decoder_sparse_step=1,
                                 tie_word_embeddings=False, rope_parameters=rope(theta=1e6), bos_token_id=1,
                                 eos_token_id=2)

    def after(ctx, m):
        ctx.check(hasattr(m.model.layers[0].mlp, "shared_expert_gate"), "shared expert + sigmoid gate present")
        moe_keys_note(ctx, m)
    return native(ctx, cfg, "Qwen2MoeForCausalLM", after=after)


def fx_gemma(ctx):
    cfg = tcls("GemmaConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                              max_position_embeddings=MAXPOS, rms_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
                              tie_word_embeddings=True, rope_parameters=rope(), pad_token_id=0, bos_token_id=2,
                              eos_token_id=1)
    return native(ctx, cfg, "GemmaForCausalLM")


def fx_gemma2(ctx):
    cfg = tcls("Gemma2Config")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                               max_position_embeddings=MAXPOS, rms_norm_eps=1e-6,
                               hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=48,
                               sliding_window=SWA, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                               tie_word_embeddings=True, rope_parameters=rope(), pad_token_id=0, bos_token_id=2,
                               eos_token_id=1)
    # Large q/k weights and a large final norm / embedding so both tanh soft-caps saturate for a good share of
    # values; the post-norms are scaled up so the layers still matter next to the (large) embedding.
    overrides = [(r"self_attn\.[qk]_proj\.weight$", 0.0, 0.45), (r"embed_tokens\.weight$", 0.0, 0.8),
                 (r"post_(attention|feedforward)_layernorm\.weight$", 2.0, 0.1), (r"^model\.norm\.weight$", 1.5, 0.1)]

    def after(ctx, m):
        ctx.check(list(m.config.layer_types) == ["sliding_attention", "full_attention"], "layer_types S,F")
    return native(ctx, cfg, "Gemma2ForCausalLM", overrides=overrides,
                  probe=lambda c, m: tanh_probe(c, m, 50.0, 30.0), after=after)


GEMMA3_LAYERS = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"]


def gemma3_text_kwargs():
    return dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=MAXPOS,
                rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=48,
                sliding_window=SWA, layer_types=list(GEMMA3_LAYERS), sliding_window_pattern=3,
                final_logit_softcapping=None, attn_logit_softcapping=None, tie_word_embeddings=True,
                rope_parameters={"full_attention": rope("linear", 1e6, factor=2.0),
                                 "sliding_attention": rope("default", 10000.0)},
                pad_token_id=0, bos_token_id=2, eos_token_id=1)


def gemma3_check(ctx, text_cfg):
    ctx.check(list(text_cfg.layer_types) == GEMMA3_LAYERS, "layer_types S,S,F,S (local and global layers)")
    rp = text_cfg.rope_parameters
    ctx.check(rp["full_attention"]["rope_type"] == "linear" and rp["full_attention"]["rope_theta"] == 1e6
              and rp["sliding_attention"]["rope_theta"] == 10000.0,
              "global rope linear x2 theta 1e6, local rope theta 1e4")


def fx_gemma3(ctx):
    cfg = tcls("Gemma3TextConfig")(**gemma3_text_kwargs())
    return native(ctx, cfg, "Gemma3ForCausalLM", after=lambda c, m: gemma3_check(c, m.config))


def gemma3_new_key(k):
    for old, new in (("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                     ("vision_tower.", "model.vision_tower."),
                     ("multi_modal_projector.", "model.multi_modal_projector.")):
        if k.startswith(old):
            return new + k[len(old):]
    return k


def gemma3_old_key(k):
    for new, old in (("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head."),
                     ("model.vision_tower.", "vision_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")):
        if k.startswith(new):
            return old + k[len(new):]
    raise KeyError(f"unexpected Gemma3 key {k}")


def fx_gemma3_mm(ctx):
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_channels=3,
                  image_size=28, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
                  vision_use_head=False)
    cfg = tcls("Gemma3Config")(text_config=gemma3_text_kwargs(), vision_config=vision, mm_tokens_per_image=4,
                               boi_token_index=VOCAB - 3, eoi_token_index=VOCAB - 2, image_token_index=VOCAB - 1,
                               tie_word_embeddings=True)
    cls = "Gemma3ForConditionalGeneration"
    model = roundtrip(ctx, cfg, cls, ctx.work, load_cls=cls)
    gemma3_check(ctx, model.config.text_config)
    ids = make_ids(ctx.name, hi=VOCAB - 3)  # no image / boi / eoi tokens: text path only
    logits = forward(ctx, model, ids)
    del model
    saved = load_file(os.path.join(ctx.work, "model.safetensors"))
    spelling = "old (language_model.model.*)" if any(k.startswith("language_model.") for k in saved) else "new"
    ctx.note(f"save_pretrained itself wrote the {spelling} key spelling; both spellings are written explicitly")
    variants = {ctx.name: {gemma3_new_key(k): v for k, v in saved.items()}}
    variants[ctx.name + "_old"] = {gemma3_old_key(k): v for k, v in variants[ctx.name].items()}
    results = {}
    base_notes = list(ctx.notes)
    for name, tensors in variants.items():
        d = os.path.join(os.path.dirname(ctx.dir), name)
        fresh_dir(d)
        for f in ("config.json", "generation_config.json"):
            if os.path.exists(os.path.join(ctx.work, f)):
                shutil.copy(os.path.join(ctx.work, f), d)
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(d, "model.safetensors"),
                  metadata={"format": "pt"})
        again, info = tcls(cls).from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                output_loading_info=True)
        bad = load_info_problems(info, True)
        if bad:
            raise AssertionError(f"{name}: reload: " + "; ".join(bad))
        l2 = forward(ctx, again.eval(), ids)
        del again
        ctx.notes = list(base_notes)
        ctx.check(torch.equal(l2, logits), f"{name}: reloading this spelling gives bit-identical logits")
        method = (f"transformers {cls} text path (no image tokens, fp32 eager, {ctx.device}); keys in the "
                  f"{'old language_model.model.*' if name.endswith('_old') else 'new model.language_model.*'} "
                  f"spelling, reloaded and re-checked")
        write_refs(ctx, d, ids, logits, method)
        results[name] = summarize(ctx, d, logits, method)
    ctx.extra[ctx.name + "_old"] = results[ctx.name + "_old"]
    return results[ctx.name]


def fx_starcoder2(ctx):
    cfg = tcls("Starcoder2Config")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
                                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                   max_position_embeddings=MAXPOS, norm_epsilon=1e-5, sliding_window=SWA,
                                   use_bias=True, hidden_act="gelu_pytorch_tanh", tie_word_embeddings=True,
                                   rope_parameters=rope(theta=100000.0), residual_dropout=0.0, embedding_dropout=0.0,
                                   bos_token_id=1, eos_token_id=2)

    def after(ctx, m):
        ctx.check(m.model.layers[0].self_attn.o_proj.bias is not None and m.model.layers[0].mlp.c_fc.bias is not None,
                  "biases on q/k/v/o and c_fc/c_proj")
    return native(ctx, cfg, "Starcoder2ForCausalLM", after=after)


def cohere_cfg(qk_norm):
    return tcls("CohereConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAXPOS,
                                layer_norm_eps=1e-5, logit_scale=0.25, use_qk_norm=qk_norm,
                                tie_word_embeddings=True, rope_parameters=rope(), pad_token_id=0, bos_token_id=1,
                                eos_token_id=2)


def fx_cohere(ctx):
    return native(ctx, cohere_cfg(False), "CohereForCausalLM", overrides=[(r"embed_tokens\.weight$", 0.0, 0.5)])


def fx_cohere_qknorm(ctx):
    def after(ctx, m):
        qn = m.model.layers[0].self_attn.q_norm
        ctx.check(tuple(qn.weight.shape) == (2, 64), f"q_norm weight is [num_heads, head_dim] = {tuple(qn.weight.shape)}")
    return native(ctx, cohere_cfg(True), "CohereForCausalLM", overrides=[(r"embed_tokens\.weight$", 0.0, 0.5)],
                  after=after)


def fx_cohere2(ctx):
    cfg = tcls("Cohere2Config")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=3,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAXPOS,
                                layer_norm_eps=1e-5, logit_scale=0.25, sliding_window=SWA, sliding_window_pattern=3,
                                tie_word_embeddings=True, rope_parameters=rope(theta=50000.0), pad_token_id=0,
                                bos_token_id=1, eos_token_id=2)

    def after(ctx, m):
        lt = list(m.config.layer_types)
        ctx.check(lt == ["sliding_attention", "sliding_attention", "full_attention"], f"layer_types {lt}")
    return native(ctx, cfg, "Cohere2ForCausalLM", overrides=[(r"embed_tokens\.weight$", 0.0, 0.5)], after=after)


def phi3_cfg(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAXPOS,
                original_max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, tie_word_embeddings=False,
                rope_parameters=rope(), bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(kw)
    return tcls("Phi3Config")(**base)


def fx_phi3(ctx):
    return native(ctx, phi3_cfg(), "Phi3ForCausalLM")


def fx_phi3_longrope(ctx):
    n = 64 // 2  # head_dim * partial_rotary_factor / 2
    short = [round(1.0 + 0.2 * i / (n - 1), 4) for i in range(n)]
    long = [round(1.0 + 7.0 * (i / (n - 1)) ** 2, 4) for i in range(n)]
    cfg = phi3_cfg(original_max_position_embeddings=32,
                   rope_parameters=rope("longrope", 10000.0, short_factor=short, long_factor=long))

    def after(ctx, m):
        rot = m.model.rotary_emb
        inv = rot.inv_freq.float().cpu()
        base = 1.0 / (10000.0 ** (torch.arange(0, 64, 2, dtype=torch.float32) / 64))
        used_long = torch.allclose(inv, base / torch.tensor(long), rtol=1e-5)
        used_short = torch.allclose(inv, base / torch.tensor(short), rtol=1e-5)
        expect = math.sqrt(1 + math.log(MAXPOS / 32) / math.log(32))
        ctx.note(f"longrope: after the forward inv_freq matches long_factor={used_long}, short_factor={used_short}; "
                 f"seq_len = max(position_ids)+1 = {SEQ} > original_max_position_embeddings=32 selects long; "
                 f"attention_scaling={getattr(rot, 'attention_scaling', None)} "
                 f"(sqrt(1+ln(256/32)/ln(32))={expect:.6f}, multiplies cos and sin)")
        ctx.check(used_long, "long factors used for T=48")
    return native(ctx, cfg, "Phi3ForCausalLM", after=after)


def fx_gpt_bigcode(ctx):
    cfg = tcls("GPTBigCodeConfig")(vocab_size=VOCAB, n_positions=MAXPOS, n_embd=HIDDEN, n_layer=2, n_head=2,
                                   n_inner=INTER, activation_function="gelu_pytorch_tanh", multi_query=True,
                                   resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                                   bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    return native(ctx, cfg, "GPTBigCodeForCausalLM")


def fx_gpt2(ctx):
    cfg = tcls("GPT2Config")(vocab_size=VOCAB, n_positions=MAXPOS, n_embd=HIDDEN, n_layer=2, n_head=2, n_inner=INTER,
                             activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                             layer_norm_epsilon=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    return native(ctx, cfg, "GPT2LMHeadModel")


GRANITE_MULT = dict(embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.05,
                    logits_scaling=8.0)


def fx_granite(ctx):
    cfg = tcls("GraniteConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAXPOS,
                                rms_norm_eps=1e-5, tie_word_embeddings=True, rope_parameters=rope(),
                                bos_token_id=1, eos_token_id=2, **GRANITE_MULT)
    return native(ctx, cfg, "GraniteForCausalLM", emb_std=0.5)


def fx_granitemoe(ctx):
    cfg = tcls("GraniteMoeConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=MOE_INTER,
                                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                   max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, num_local_experts=N_EXPERTS,
                                   num_experts_per_tok=TOP_K, tie_word_embeddings=True, rope_parameters=rope(),
                                   bos_token_id=1, eos_token_id=2, **GRANITE_MULT)
    return native(ctx, cfg, "GraniteMoeForCausalLM", emb_std=0.5, after=moe_keys_note)


def fx_glm4(ctx):
    # eos_token_id is left at its default on purpose: some 5.x Glm4Config.__post_init__ only finish when it is None.
    cfg = tcls("Glm4Config")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=MAXPOS,
                             rms_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
                             rope_parameters=rope(partial_rotary_factor=0.5), partial_rotary_factor=0.5,
                             pad_token_id=0)

    def after(ctx, m):
        rp = m.config.rope_parameters
        ctx.check(rp.get("partial_rotary_factor") == 0.5, f"partial_rotary_factor 0.5 in rope_parameters {rp}")
        ctx.check(hasattr(m.model.layers[0].mlp, "gate_up_proj"), "fused gate_up_proj")
    return native(ctx, cfg, "Glm4ForCausalLM", after=after)


def fx_phimoe(ctx):
    cfg = tcls("PhimoeConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=MOE_INTER,
                               num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                               max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, num_local_experts=N_EXPERTS,
                               num_experts_per_tok=TOP_K, router_jitter_noise=0.01, input_jitter_noise=0.0,
                               attention_bias=True, lm_head_bias=True, tie_word_embeddings=False,
                               rope_parameters=rope(theta=1e6), bos_token_id=1, eos_token_id=2)

    def after(ctx, m):
        ctx.check(isinstance(m.model.layers[0].input_layernorm, nn.LayerNorm)
                  and m.model.layers[0].input_layernorm.bias is not None, "LayerNorm with bias")
        ctx.check(m.lm_head.bias is not None, "lm_head bias")
        moe_keys_note(ctx, m)
    return native(ctx, cfg, "PhimoeForCausalLM", after=after)


# ----------------------------------------------------------------------------------------------- DBRX
def dbrx_ffn_manual(x, router_w, w1, v1, w2, n_exp, inter, top_k, p_norm):
    """DBRX MoE FFN as the original checkpoints define it: w1/v1/w2 are [E*I, D]; gate = x w1_e^T, out = h w2_e."""
    d = x.shape[-1]
    probs = torch.softmax(x @ router_w.T, dim=-1)
    top_w, top_i = torch.topk(probs, top_k, dim=-1)
    top_w = top_w / top_w.norm(p=p_norm, dim=-1, keepdim=True)
    W1, V1, W2 = (t.reshape(n_exp, inter, d) for t in (w1, v1, w2))
    out = torch.zeros_like(x)
    for e in range(n_exp):
        h = (F.silu(x @ W1[e].T) * (x @ V1[e].T)) @ W2[e]
        out += (top_w * (top_i == e)).sum(-1, keepdim=True) * h
    return out


def fx_dbrx(ctx):
    E, K, I, D = N_EXPERTS, TOP_K, 64, HIDDEN  # I != D so a transposed expert layout cannot go unnoticed
    attn = {"clip_qkv": 8.0, "kv_n_heads": 1, "rope_theta": 10000.0, "attn_pdrop": 0.0}
    ffn = {"ffn_hidden_size": I, "moe_num_experts": E, "moe_top_k": K, "moe_normalize_expert_weights": 1.0,
           "ffn_act_fn": {"name": "silu"}, "moe_jitter_eps": 0.01, "moe_loss_weight": 0.05}
    common = dict(d_model=D, n_heads=2, n_layers=2, max_seq_len=MAXPOS, vocab_size=VOCAB, resid_pdrop=0.0,
                  emb_pdrop=0.0, tie_word_embeddings=False, rope_parameters=rope(), bos_token_id=1, eos_token_id=2)
    Cfg = tcls("DbrxConfig")
    cfg = Cfg(attn_config=dict(attn), ffn_config=dict(ffn), **common)
    probe_model = tcls("DbrxForCausalLM")(cfg)
    shapes = {n: tuple(p.shape) for n, p in probe_model.named_parameters()}
    del probe_model
    rw, w1 = shapes["transformer.blocks.0.ffn.router.layer.weight"], shapes["transformer.blocks.0.ffn.experts.mlp.w1"]
    if rw == (E, D) and w1 == (E * I, D):
        layout = "checkpoint"
    else:
        # Some transformers 5.x DBRX builds read ffn_config.ffn_hidden_size as the model width and
        # ffn_config.hidden_size as the expert width, and multiply x @ w1_e (w1_e = [D, I]).  Build that variant
        # (the way transformers' own tests do) and transpose each expert block back to the checkpoint layout.
        layout = "swapped"
        ctx.note(f"transformers' DBRX builds router {rw} and w1 {w1} from a real-style ffn_config (expected "
                 f"{(E, D)} and {(E * I, D)}): computed with ffn_config ffn_hidden_size={D}, hidden_size={I}, "
                 f"expert blocks transposed to the checkpoint layout [E*I, D] on export")
        cfg = Cfg(attn_config=dict(attn), ffn_config={**ffn, "ffn_hidden_size": D, "hidden_size": I}, **common)
    fresh_dir(ctx.dir)
    save_dir = ctx.dir if layout == "checkpoint" else ctx.work
    model = roundtrip(ctx, cfg, "DbrxForCausalLM", save_dir, overrides=[(r"Wqkv\.weight$", 0.0, 0.5)])
    ids = make_ids(ctx.name)
    clip, frac, hooks = 8.0, [], []
    for n, mod in model.named_modules():
        if n.endswith("Wqkv"):
            hooks.append(mod.register_forward_hook(lambda m, i, o: frac.append(float((o.abs() > clip).float().mean()))))
    logits = forward(ctx, model, ids)
    for h in hooks:
        h.remove()
    ctx.note(f"clip_qkv={clip:g} clamps {100 * sum(frac) / len(frac):.1f}% of the fused qkv outputs")
    ctx.check(sum(frac) / len(frac) > 0.02, "clip_qkv bites")

    def to_ckpt(t):  # [E*D, I] (swapped build) -> [E*I, D] (checkpoint)
        return t if layout == "checkpoint" else t.reshape(E, D, I).transpose(1, 2).reshape(E * I, D).contiguous()

    # Independent check of the MoE FFN semantics on layer 0, using the checkpoint-layout tensors.
    prm = dict(model.named_parameters())
    pre = "transformer.blocks.0.ffn."
    x = torch.randn(1, 7, D, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = model.transformer.blocks[0].ffn(x)
        got = (got[0] if isinstance(got, tuple) else got).reshape(7, D)
        ref = dbrx_ffn_manual(x.reshape(7, D), prm[pre + "router.layer.weight"],
                              *(to_ckpt(prm[pre + "experts.mlp." + w].detach()) for w in ("w1", "v1", "w2")),
                              E, I, K, 1.0)
    err = float((got - ref).abs().max())
    ctx.check(err < 1e-4 * max(1.0, float(ref.abs().max())), f"MoE FFN matches the checkpoint-layout formula "
                                                               f"(max err {err:.2e})")
    if layout == "swapped":
        saved = load_file(os.path.join(ctx.work, "model.safetensors"))
        out = {k: (to_ckpt(v) if re.search(r"experts\.mlp\.(w1|v1|w2)$", k) else v) for k, v in saved.items()}
        save_file(out, os.path.join(ctx.dir, "model.safetensors"), metadata={"format": "pt"})
        if os.path.exists(os.path.join(ctx.work, "generation_config.json")):
            shutil.copy(os.path.join(ctx.work, "generation_config.json"), ctx.dir)
        real = {"architectures": ["DbrxForCausalLM"], "model_type": "dbrx", "d_model": D, "n_heads": 2,
                "n_layers": 2, "max_seq_len": MAXPOS, "vocab_size": VOCAB, "resid_pdrop": 0.0, "emb_pdrop": 0.0,
                "attn_config": attn, "ffn_config": ffn, "initializer_range": 0.02, "output_router_logits": False,
                "router_aux_loss_coef": 0.05, "tie_word_embeddings": False, "use_cache": True,
                "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}
        with open(os.path.join(ctx.dir, "config.json"), "w") as f:
            json.dump(real, f, indent=2, sort_keys=True)
    clean_dir(ctx.dir)
    method = (f"transformers DbrxForCausalLM (fp32 eager, {ctx.device}) reloaded from bf16; "
              + ("saved as written by save_pretrained" if layout == "checkpoint" else
                 "expert tensors transposed to the original checkpoint layout and config.json written in the "
                 "original DBRX form (see notes)"))
    write_refs(ctx, ctx.dir, ids, logits, method)
    return summarize(ctx, ctx.dir, logits, method)


# ----------------------------------------------------------------------------------------------- remote-code archs
def llama_equivalent(ctx, *, heads, kv, hidden=HIDDEN, inter=INTER, tie=False, theta=10000.0, eps=1e-5,
                     emb_std=None, post_randomize=None):
    """Random LlamaForCausalLM, saved bf16 and reloaded fp32 (so its values are exactly the exported bf16 ones)."""
    cfg = llama_cfg(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads, num_key_value_heads=kv,
                    head_dim=hidden // heads, tie_word_embeddings=tie, rms_norm_eps=eps, rope_parameters=rope(theta=theta))
    return roundtrip(ctx, cfg, "LlamaForCausalLM", ctx.work, emb_std=emb_std, post_randomize=post_randomize)


def llama_cfg_keys(model):
    c = model.config
    return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads, "hidden_act": "silu",
            "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
            "rope_theta": c.rope_parameters["rope_theta"], "rope_scaling": None,
            "tie_word_embeddings": bool(c.tie_word_embeddings), "bos_token_id": 1, "eos_token_id": 2,
            "initializer_range": 0.02, "use_cache": True, "torch_dtype": "bfloat16"}


def export_remote(ctx, config, tensors, ids, logits, method):
    fresh_dir(ctx.dir)
    with open(os.path.join(ctx.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    save_file({k: v.detach().to(torch.bfloat16).contiguous() for k, v in tensors.items()},
              os.path.join(ctx.dir, "model.safetensors"), metadata={"format": "pt"})
    write_refs(ctx, ctx.dir, ids, logits, method)
    return summarize(ctx, ctx.dir, logits, method)


def params_of(model):
    return {n: p.detach() for n, p in model.named_parameters()}  # tied weights appear once (embed name)


def rename(tensors, pairs):
    out = {}
    for k, v in tensors.items():
        for a, b in pairs:
            k = k.replace(a, b)
        out[k] = v
    return out


REMOTE = "remote-code arch computed with an equivalent transformers LlamaForCausalLM (fp32 eager, {dev}) from the " \
         "bf16-rounded weights, {extra}; exported with the real checkpoint key names"


def fx_yi(ctx):
    m = llama_equivalent(ctx, heads=2, kv=1, theta=5000000.0)
    ids = make_ids(ctx.name)
    logits = forward(ctx, m, ids)
    cfg = {"architectures": ["YiForCausalLM"], "model_type": "Yi", "pad_token_id": 0, **llama_cfg_keys(m),
           "auto_map": {"AutoConfig": "configuration_yi.YiConfig", "AutoModel": "modeling_yi.YiModel",
                        "AutoModelForCausalLM": "modeling_yi.YiForCausalLM"}}
    t = rename(params_of(m), [(".input_layernorm.", ".ln1."), (".post_attention_layernorm.", ".ln2.")])
    return export_remote(ctx, cfg, t, ids, logits, REMOTE.format(dev=ctx.device, extra="identical math to Llama"))


def fx_index(ctx):
    def spread_rows(model, g):  # uneven lm_head row norms, so a missing row normalisation cannot go unnoticed
        w = model.lm_head.weight
        w.mul_(torch.exp(torch.randn(w.shape[0], 1, generator=g) * 0.5) * 3.0)

    m = llama_equivalent(ctx, heads=2, kv=2, post_randomize=spread_rows)
    ids = make_ids(ctx.name)
    h = forward(ctx, m, ids, hidden_only=True)
    w = m.lm_head.weight.detach().float()
    logits = h @ F.normalize(w, dim=-1).T
    norms = w.norm(dim=-1)
    ctx.note(f"norm_head: lm_head rows stored unnormalised (L2 norms {float(norms.min()):.2f}..{float(norms.max()):.2f}),"
             f" logits = h @ normalize(W, dim=-1)^T")
    cfg = {"architectures": ["IndexForCausalLM"], "model_type": "index", "norm_head": True, "pretraining_tp": 1,
           "attention_bias": False, "pad_token_id": 0, **llama_cfg_keys(m),
           "auto_map": {"AutoConfig": "configuration_index.IndexConfig",
                        "AutoModelForCausalLM": "modeling_index.IndexForCausalLM"}}
    return export_remote(ctx, cfg, params_of(m), ids, logits,
                         REMOTE.format(dev=ctx.device, extra="logits from the final hidden states times the "
                                                             "row-L2-normalised lm_head (norm_head)"))


def fx_orion(ctx):
    m = llama_equivalent(ctx, heads=2, kv=2)
    g = torch.Generator().manual_seed(seed_of(ctx.name, 3))
    eps, hid = 1e-5, m.config.hidden_size
    extra = {}

    def layernorm(prefix):
        ln = nn.LayerNorm(hid, eps=eps)
        with torch.no_grad():  # random weight and bias, rounded through bf16 like every exported tensor
            ln.weight.copy_((1.0 + 0.1 * torch.randn(hid, generator=g)).to(torch.bfloat16).float())
            ln.bias.copy_((0.05 * torch.randn(hid, generator=g)).to(torch.bfloat16).float())
        extra[prefix + ".weight"], extra[prefix + ".bias"] = ln.weight.detach(), ln.bias.detach()
        return ln

    for i, layer in enumerate(m.model.layers):
        layer.input_layernorm = layernorm(f"model.layers.{i}.input_layernorm")
        layer.post_attention_layernorm = layernorm(f"model.layers.{i}.post_attention_layernorm")
    m.model.norm = layernorm("model.norm")
    ids = make_ids(ctx.name)
    logits = forward(ctx, m, ids)
    t = {k: v for k, v in params_of(m).items() if "layernorm" not in k and not k.startswith("model.norm.")}
    t.update(extra)
    cfg = {"architectures": ["OrionForCausalLM"], "model_type": "orion", "pretraining_tp": 1, "pad_token_id": 0,
           "max_sequence_length": MAXPOS, **llama_cfg_keys(m),
           "auto_map": {"AutoConfig": "configuration_orion.OrionConfig",
                        "AutoModelForCausalLM": "modeling_orion.OrionForCausalLM"}}
    return export_remote(ctx, cfg, t, ids, logits,
                         REMOTE.format(dev=ctx.device, extra="its RMSNorms replaced by nn.LayerNorm(eps=rms_norm_eps) "
                                                             "with random weight and bias"))


def fx_internlm2(ctx):
    nh, nkv, hid = 4, 2, 256  # 2 KV groups so the grouped wqkv packing is really exercised; head_dim = 64
    m = llama_equivalent(ctx, heads=nh, kv=nkv, hidden=hid, theta=1000000.0)
    ids = make_ids(ctx.name)
    logits = forward(ctx, m, ids)
    d, grp = hid // nh, nh // nkv
    p = params_of(m)
    t = {"model.tok_embeddings.weight": p["model.embed_tokens.weight"], "model.norm.weight": p["model.norm.weight"],
         "output.weight": p["lm_head.weight"]}
    for i in range(m.config.num_hidden_layers):
        a, o = f"model.layers.{i}.self_attn.", f"model.layers.{i}."
        q = p[a + "q_proj.weight"].reshape(nkv, grp * d, hid)
        k = p[a + "k_proj.weight"].reshape(nkv, d, hid)
        v = p[a + "v_proj.weight"].reshape(nkv, d, hid)
        # for each KV head: its `grp` query heads, then its key head, then its value head
        t[o + "attention.wqkv.weight"] = torch.cat([q, k, v], dim=1).reshape((nh + 2 * nkv) * d, hid)
        t[o + "attention.wo.weight"] = p[a + "o_proj.weight"]
        t[o + "feed_forward.w1.weight"] = p[o + "mlp.gate_proj.weight"]
        t[o + "feed_forward.w3.weight"] = p[o + "mlp.up_proj.weight"]
        t[o + "feed_forward.w2.weight"] = p[o + "mlp.down_proj.weight"]
        t[o + "attention_norm.weight"] = p[o + "input_layernorm.weight"]
        t[o + "ffn_norm.weight"] = p[o + "post_attention_layernorm.weight"]
    # check: InternLM2's own split of wqkv (view as [.., nkv, grp + 2, d]) gives back q/k/v of layer 0
    x = torch.randn(3, hid, generator=torch.Generator().manual_seed(5))
    qkv = (x @ t["model.layers.0.attention.wqkv.weight"].T).reshape(3, nkv, grp + 2, d)
    at = m.model.layers[0].self_attn
    with torch.no_grad():
        ok = (torch.allclose(qkv[:, :, :grp].reshape(3, -1), at.q_proj(x), atol=1e-5)
              and torch.allclose(qkv[:, :, -2].reshape(3, -1), at.k_proj(x), atol=1e-5)
              and torch.allclose(qkv[:, :, -1].reshape(3, -1), at.v_proj(x), atol=1e-5))
    ctx.check(ok, "wqkv split the InternLM2 way (per KV head: q heads, k, v) reproduces q/k/v")
    cfg = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "bias": False,
           "attn_implementation": "eager", "pad_token_id": 2, **llama_cfg_keys(m),
           "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config",
                        "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                        "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"}}
    return export_remote(ctx, cfg, t, ids, logits,
                         REMOTE.format(dev=ctx.device, extra="q/k/v fused into wqkv grouped per KV head"))


MINICPM = dict(scale_emb=12, scale_depth=1.4, dim_model_base=32)


def fx_minicpm(ctx):
    if hasattr(transformers, "MiniCPMForCausalLM"):  # native in this transformers
        cfg = tcls("MiniCPMConfig")(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER,
                                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                    max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                    rope_parameters=rope(), bos_token_id=1, eos_token_id=2, **MINICPM)
        ctx.note("MiniCPMForCausalLM is native in this transformers: standard path")
        return native(ctx, cfg, "MiniCPMForCausalLM", emb_std=0.5)
    m = llama_equivalent(ctx, heads=2, kv=2, tie=True, emb_std=0.5)
    L, hid = m.config.num_hidden_layers, m.config.hidden_size
    s_res, s_emb, s_out = MINICPM["scale_depth"] / math.sqrt(L), MINICPM["scale_emb"], hid / MINICPM["dim_model_base"]
    hooks = [m.model.embed_tokens.register_forward_hook(lambda mod, i, o: o * s_emb)]
    for layer in m.model.layers:  # residual branches: residual + branch * scale_depth / sqrt(L)
        hooks.append(layer.self_attn.o_proj.register_forward_hook(lambda mod, i, o: o * s_res))
        hooks.append(layer.mlp.down_proj.register_forward_hook(lambda mod, i, o: o * s_res))
    hooks.append(m.lm_head.register_forward_pre_hook(lambda mod, args: (args[0] / s_out,) + tuple(args[1:])))
    ids = make_ids(ctx.name)
    logits = forward(ctx, m, ids)
    for h in hooks:
        h.remove()
    cfg = {"architectures": ["MiniCPMForCausalLM"], "model_type": "minicpm", **llama_cfg_keys(m), **MINICPM,
           "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMConfig",
                        "AutoModel": "modeling_minicpm.MiniCPMModel",
                        "AutoModelForCausalLM": "modeling_minicpm.MiniCPMForCausalLM"}}
    cfg["initializer_range"] = 0.1
    return export_remote(ctx, cfg, params_of(m), ids, logits,
                         REMOTE.format(dev=ctx.device, extra=f"embeddings x scale_emb, residual branches x "
                                                             f"scale_depth/sqrt(L)={s_res:.6g}, final hidden / "
                                                             f"(hidden/dim_model_base)={s_out:g} (forward hooks)"))


# ----------------------------------------------------------------------------------------------- registry
FIXTURES = [  # name, HF architecture string, what it exercises, builder
    ("llama", "LlamaForCausalLM", "plain Llama: GQA 4q/2kv, head_dim 64, RMSNorm, SwiGLU, untied", fx_llama),
    ("llama_bias", "LlamaForCausalLM", "attention_bias (q/k/v/o) and mlp_bias (gate/up/down)", fx_llama_bias),
    ("llama3_rope", "LlamaForCausalLM", "rope llama3 (factor 8, low 1, high 4, original ctx 32, theta 5e5), T=48",
     fx_llama3_rope),
    ("llama_hd96", "LlamaForCausalLM", "explicit head_dim 96 (4 heads x 96 != hidden 128)", fx_llama_hd(96)),
    ("llama_hd48", "LlamaForCausalLM", "explicit head_dim 48 (CPU-only size)", fx_llama_hd(48)),
    ("llama_yarn", "LlamaForCausalLM", "rope yarn factor 4, original ctx 32 (attention factor 0.1 ln 4 + 1)",
     fx_llama_yarn),
    ("llama_dynamic", "LlamaForCausalLM", "rope dynamic NTK factor 2, max_position_embeddings 32 < T=48",
     fx_llama_dynamic),
    ("llama_linear", "LlamaForCausalLM", "rope linear factor 2", fx_llama_linear),
    ("mistral", "MistralForCausalLM", "sliding window 16 < T", fx_mistral),
    ("mixtral", "MixtralForCausalLM", "MoE 4 experts top-2 (softmax, renormalised top-k), no sliding window",
     fx_mixtral),
    ("qwen2", "Qwen2ForCausalLM", "q/k/v biases, no o bias", fx_qwen2),
    ("qwen3", "Qwen3ForCausalLM", "per-head RMS q_norm/k_norm", fx_qwen3),
    ("qwen3_moe", "Qwen3MoeForCausalLM", "MoE norm_topk_prob=True, layer 1 dense via mlp_only_layers", fx_qwen3_moe),
    ("qwen2_moe", "Qwen2MoeForCausalLM", "MoE norm_topk_prob=False + shared expert with sigmoid gate, qkv bias",
     fx_qwen2_moe),
    ("gemma", "GemmaForCausalLM", "gelu_pytorch_tanh, embeddings x sqrt(H), (1+w) RMSNorm, tied", fx_gemma),
    ("gemma2", "Gemma2ForCausalLM", "4 norms/layer, alternating SWA 16, attn softcap 50, final softcap 30, "
                                    "query_pre_attn_scalar 48", fx_gemma2),
    ("gemma3", "Gemma3ForCausalLM", "(1+w) q/k norms, local rope 1e4 vs global 1e6 linear x2, SWA 16, layers S,S,F,S, "
                                    "query_pre_attn_scalar 48", fx_gemma3),
    ("gemma3_mm", "Gemma3ForConditionalGeneration", "multimodal checkpoint, text path only, new key spelling "
                                                    "(model.language_model.*)", fx_gemma3_mm),
    ("gemma3_mm_old", "Gemma3ForConditionalGeneration", "same weights and refs as gemma3_mm, old key spelling "
                                                        "(language_model.model.*, vision_tower.*, multi_modal_projector.*)",
     None),
    ("starcoder2", "Starcoder2ForCausalLM", "LayerNorm+bias, GELU c_fc/c_proj with bias, q/k/v/o bias, SWA 16, tied",
     fx_starcoder2),
    ("cohere", "CohereForCausalLM", "parallel attn+MLP, LayerNorm no bias, interleaved (GPT-J) rope, logit_scale "
                                    "0.25, tied", fx_cohere),
    ("cohere_qknorm", "CohereForCausalLM", "cohere + use_qk_norm (per-head LayerNorm, weight [heads, head_dim])",
     fx_cohere_qknorm),
    ("cohere2", "Cohere2ForCausalLM", "layers S,S,F: SWA 16 + rope on local layers, global layers without rope",
     fx_cohere2),
    ("dbrx", "DbrxForCausalLM", "fused Wqkv, clip_qkv 8, LayerNorm no bias, MoE w1/v1/w2 [E*I, D], p=1 renorm",
     fx_dbrx),
    ("phi3", "Phi3ForCausalLM", "fused qkv_proj and gate_up_proj", fx_phi3),
    ("phi3_longrope", "Phi3ForCausalLM", "longrope short/long factors, original ctx 32, max pos 256, T=48 -> long",
     fx_phi3_longrope),
    ("gpt_bigcode", "GPTBigCodeForCausalLM", "multi-query, learned positions, LayerNorm+bias, fused c_attn (Linear), "
                                             "gelu_pytorch_tanh", fx_gpt_bigcode),
    ("gpt2", "GPT2LMHeadModel", "Conv1D [in, out] weights, fused c_attn, learned positions, gelu_new", fx_gpt2),
    ("minicpm", "MiniCPMForCausalLM", "Llama + scale_emb 12, residual x scale_depth/sqrt(L) (1.4), logits / "
                                      "(H/dim_model_base 32), tied", fx_minicpm),
    ("internlm2", "InternLM2ForCausalLM", "remote: tok_embeddings, fused grouped wqkv (2 KV groups), wo, w1/w3/w2, "
                                          "attention_norm/ffn_norm, output", fx_internlm2),
    ("index", "IndexForCausalLM", "remote: Llama layout, norm_head (lm_head rows L2-normalised)", fx_index),
    ("granite", "GraniteForCausalLM", "embedding 12, residual 0.22, attention 0.05 multipliers, logits / 8, tied",
     fx_granite),
    ("granitemoe", "GraniteMoeForCausalLM", "fused experts input_linear/output_linear, router, top-k then softmax, "
                                            "granite multipliers", fx_granitemoe),
    ("glm4", "Glm4ForCausalLM", "4 norms/layer, fused gate_up_proj, partial rotary 0.5 interleaved, q/k/v bias",
     fx_glm4),
    ("phimoe", "PhimoeForCausalLM", "sparsemixer top-2 routing, LayerNorm+bias, q/k/v/o bias, lm_head bias", fx_phimoe),
    ("yi", "YiForCausalLM", "remote: Llama with ln1/ln2 layer-norm names", fx_yi),
    ("orion", "OrionForCausalLM", "remote: Llama with nn.LayerNorm (weight+bias) for both layer norms and the final "
                                  "norm", fx_orion),
]


# ----------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output directory")
    ap.add_argument("--only", default="", help="comma-separated fixture names")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--list", action="store_true", help="list the fixtures and exit")
    args = ap.parse_args()
    names = [f[0] for f in FIXTURES]
    if args.list:
        for name, arch, what, _ in FIXTURES:
            print(f"{name:15s} {arch:32s} {what}")
        return 0
    if not args.out:
        ap.error("--out is required")
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in names]
    if unknown:
        ap.error(f"unknown fixture(s) {unknown}; --list shows them")
    selected = [f for f in FIXTURES if not only or f[0] in only]

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    torch.set_grad_enabled(False)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    work_root = tempfile.mkdtemp(prefix="_work_", dir=out)
    man_path = os.path.join(out, "manifest.json")
    manifest = {}
    if os.path.exists(man_path):  # --only updates the entries it rebuilds
        with open(man_path) as f:
            manifest = {e["name"]: e for e in json.load(f).get("fixtures", [])}
    errlog = open(os.path.join(out, "errors.log"), "w")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, device {args.device}, "
          f"{len(selected)} fixture(s) -> {out}", flush=True)

    done, failed = {}, []
    for name, arch, what, fn in selected:
        t0 = time.time()
        entry = {"name": name, "architecture": arch, "exercises": what}
        if fn is None:  # produced by another fixture's builder (gemma3_mm_old <- gemma3_mm)
            producer = name[: -len("_old")]
            if producer not in done:
                done[producer] = run_one(producer, out, work_root, args.device, errlog)
            res = done[producer][1].get(name) or {"error": done[producer][0].get("error", "not produced")}
        else:
            if name not in done:
                done[name] = run_one(name, out, work_root, args.device, errlog)
            res = done[name][0]
        if "error" in res:
            entry.update(status="FAILED: " + res["error"], method=None)
            failed.append(name)
        else:
            entry.update(status="OK", **res)
        manifest[name] = entry
        with open(man_path, "w") as f:
            json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "seq": SEQ,
                       "batch": BATCH, "vocab": VOCAB, "fixtures": [manifest[n] for n in names if n in manifest]},
                      f, indent=1)
        print(line_for(entry, time.time() - t0), flush=True)

    shutil.rmtree(work_root, ignore_errors=True)
    errlog.close()
    total = sum(sum(e.get("files", {}).values()) for e in manifest.values() if e.get("status") == "OK")
    print(f"{len(selected) - len(failed)}/{len(selected)} OK; fixtures in manifest total {total / 2**20:.1f} MiB"
          + (f"; FAILED: {', '.join(failed)} (tracebacks in errors.log)" if failed else ""), flush=True)
    return 1 if failed else 0


def run_one(name, out, work_root, device, errlog):
    """Run one builder; returns (own result or {'error'}, {other fixture name: result})."""
    fn = dict((f[0], f[3]) for f in FIXTURES)[name]
    ctx = Ctx(name, out, work_root, device)
    try:
        res = fn(ctx)
        return res, dict(ctx.extra)
    except Exception as e:  # one fixture's failure must not stop the others
        msg = f"{type(e).__name__}: {e}".replace("\n", " ")[:600]
        errlog.write(f"===== {name}\n{traceback.format_exc()}\n")
        errlog.flush()
        for n in [name] + [f[0] for f in FIXTURES if f[3] is None and f[0].startswith(name + "_")]:
            shutil.rmtree(os.path.join(out, n), ignore_errors=True)  # no half-written or stale fixture
        return {"error": msg}, {}
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)


def line_for(e, secs):
    if e["status"] != "OK":
        return f"FAIL {e['name']:14s} {e['architecture']:30s} {e['status'][8:][:300]}"
    files = e["files"]
    checks = [n for n in e["notes"] if not n.startswith("reload ok")]
    tail = " | ".join(checks)
    return (f"OK   {e['name']:14s} {e['architecture']:30s} {kfmt(e['params']):>6s} params  model "
            f"{files.get('model.safetensors', 0) / 1024:.0f}K refs {files.get('refs.safetensors', 0) / 1024:.0f}K  "
            f"std {e['logits_std']:.3f}  {secs:.1f}s" + (f"  [{tail[:260]}]" if tail else ""))


if __name__ == "__main__":
    sys.exit(main())
