#!/usr/bin/env python3
"""make_demo_model.py - build exl's small demo model (models/demo/) from scratch.

What it does, in order (everything seeded, see --seed):
  1. Reads the King James Bible text made by scripts/extract_kjv.sh (one verse
     a line, an empty line between chapters).
  2. Trains a byte-level BPE tokenizer with the `tokenizers` library:
     vocabulary 4096 including the special tokens <|begin_of_text|> (id 0) and
     <|end_of_text|> (id 1); a Llama-3-style Split pre-tokenizer regex followed
     by ByteLevel(use_regex=False); ByteLevel decoder; a TemplateProcessing
     post-processor that puts <|begin_of_text|> in front of every encoding.
     Writes tokenizer.json, tokenizer_config.json (with a small chat template)
     and generation_config.json.
  3. Trains a small transformers LlamaForCausalLM (hidden 256, 6 layers,
     4 query heads x 64, 2 KV heads, MLP 768, untied head, ~6.8 M parameters)
     on the GPU: every chapter becomes <|begin_of_text|> text <|end_of_text|>,
     the chapters are concatenated, and random windows of 256+1 tokens are
     drawn; bf16 autocast, AdamW, linear warm-up then cosine decay.  Every
     20th chapter (offset 10) is held out as a validation set.
  4. Saves the model in float16 with save_pretrained (safetensors) next to the
     tokenizer files, reloads it with transformers and greedy-generates 40
     tokens (no stop at <|end_of_text|>) for two prompts in FP32 on the CPU
     (eager attention) -> reference.json, the engine's generation reference.
     The same is redone in FP16 on the GPU and the agreement is recorded.
  5. Optionally (--fixture) writes logits of two short Bible sentences
     (BOS + 23 tokens each) computed in FP32 with eager attention on the CPU
     from the saved float16 weights: input_ids I32 [2,24], logits F32
     [2,24,4096] (tests/fixtures/demo_hf_logits.safetensors).
  A training log (loss curve, timings, versions) goes to OUT/train_log.json.

How to run it (on a machine with a CUDA GPU; a CPU works but is very slow):
    scripts/extract_kjv.sh .carry/demo/kjv.txt
    python3 scripts/make_demo_model.py --text .carry/demo/kjv.txt \
        --out out/demo --fixture out/demo_hf_logits.safetensors
Then copy config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json and reference.json to models/demo/ and
the fixture to tests/fixtures/.  docs/demo-model.md records the run that made
the files in the repository.

Needs: Python 3.10+, torch, transformers (written against 5.x), tokenizers,
safetensors.
"""

import argparse
import inspect
import json
import math
import os
import platform
import random
import sys
import time
import traceback

# Needed for deterministic cuBLAS; must be set before CUDA is initialised.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch
import torch.nn.functional as F

import safetensors
import safetensors.torch
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"

# Pre-tokenization pattern of the Llama 3 tokenizer (contractions, letter runs
# with one leading non-letter, numbers of up to 3 digits, punctuation runs,
# newlines, other whitespace).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# A plain-text chat layout shaped like Llama 3's (header, blank line, content,
# end-of-turn token).  The model never saw chat data; this only exercises the
# engine's template code.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<' + message['role'] + '>\\n\\n' + (message['content'] | trim) + eos_token }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<assistant>\\n\\n' }}{%- endif %}"
)

REFERENCE_PROMPTS = ["In the beginning", "And the LORD said unto Moses,"]

FIXTURE_SENTENCES = [
    "And God said, Let there be light: and there was light. And God saw the light, that it was good.",
    "Blessed are the meek: for they shall inherit the earth. Blessed are they which do hunger and thirst.",
]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def seed_everything(seed):
    random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    # warn_only: a few CUDA kernels (e.g. flash attention backward) have no
    # deterministic variant; runs are repeatable on the same GPU/software in
    # practice but bitwise identity across setups is not promised.
    torch.use_deterministic_algorithms(True, warn_only=True)


def read_chapters(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    chapters = [c.strip("\n") + "\n" for c in text.split("\n\n") if c.strip()]
    return chapters


# --------------------------------------------------------------------------- tokenizer

def train_tokenizer(chapters, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(chapters, trainer=trainer, length=len(chapters))
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS} $B:1",
        special_tokens=[(BOS, bos_id)],
    )
    return tok, bos_id, eos_id


def write_tokenizer_files(tok, out, bos_id, eos_id, max_len):
    tok.save(os.path.join(out, "tokenizer.json"))
    added = {}
    for tid, content in ((bos_id, BOS), (eos_id, EOS)):
        added[str(tid)] = {"content": content, "lstrip": False, "normalized": False,
                           "rstrip": False, "single_word": False, "special": True}
    cfg = {
        "added_tokens_decoder": added,
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": BOS,
        "eos_token": EOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id).save_pretrained(out)


# --------------------------------------------------------------------------- model

def make_config(args, bos_id, eos_id):
    # transformers 5 keeps rope_theta inside rope_parameters; 4.x takes it directly.
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:
        rope = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
    else:
        rope = {"rope_theta": 10000.0}
    return LlamaConfig(
        **rope,
        vocab_size=args.vocab,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        hidden_act="silu",
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        attention_bias=False,
        mlp_bias=False,
        initializer_range=0.02,
        tie_word_embeddings=False,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        use_cache=True,
    )


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    floor = args.lr * args.min_lr_frac
    return floor + 0.5 * (args.lr - floor) * (1.0 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def eval_loss(model, windows, batch):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.shape[0], batch):
        w = windows[i:i + batch]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=w.is_cuda):
            logits = model(input_ids=w[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += w[:, 1:].numel()
    model.train()
    return total / count


def train(args, train_ids, val_ids, config, dev, history):
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(dev)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters, attention '{getattr(model.config, '_attn_implementation', '?')}'")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=(dev.type == "cuda"))

    data = torch.tensor(train_ids, dtype=torch.long, device=dev)
    nval = (len(val_ids) - 1) // args.seq
    val = torch.tensor(val_ids[:nval * args.seq + 1], dtype=torch.long, device=dev)
    val_windows = torch.stack([val[i * args.seq:(i + 1) * args.seq + 1] for i in range(nval)])
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    offsets = torch.arange(args.seq + 1, device=dev)

    t0 = time.time()
    running, running_n = 0.0, 0
    stopped_early = False
    step = 0
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        starts = torch.randint(0, data.numel() - args.seq - 1, (args.batch,), generator=gen, device=dev)
        w = data[starts[:, None] + offsets]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=(dev.type == "cuda")):
            logits = model(input_ids=w[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += loss.detach()
        running_n += 1
        last = step == args.steps - 1
        if (step + 1) % args.log_every == 0 or last:
            tl = (running / running_n).item()
            running, running_n = 0.0, 0
            el = time.time() - t0
            entry = {"step": step + 1, "lr": lr_at(step, args), "train_loss": round(tl, 4), "elapsed_s": round(el, 1)}
            if (step + 1) % args.eval_every == 0 or last:
                entry["val_loss"] = round(eval_loss(model, val_windows, 64), 4)
            history.append(entry)
            tok_s = (step + 1) * args.batch * args.seq / el
            log(f"step {step + 1:5d} lr {entry['lr']:.2e} train {tl:.4f}"
                + (f" val {entry['val_loss']:.4f}" if "val_loss" in entry else "")
                + f"  {el:6.1f}s  {tok_s / 1e6:.2f} Mtok/s")
            if el > args.max_train_seconds and not last:
                log(f"stopping early: {el:.0f}s > --max-train-seconds {args.max_train_seconds}")
                stopped_early = True
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return model, n_params, time.time() - t0, step + 1, stopped_early


# --------------------------------------------------------------------------- checks / references

@torch.no_grad()
def greedy(model, ids, n):
    """Greedy decoding by full recomputation (no KV cache), never stopping at EOS."""
    dev = next(model.parameters()).device
    seq = list(ids)
    margins = []
    for _ in range(n):
        logits = model(input_ids=torch.tensor([seq], device=dev)).logits[0, -1].float()
        top = torch.topk(logits, 2)
        margins.append((top.values[0] - top.values[1]).item())
        seq.append(int(top.indices[0]))
    return seq[len(ids):], margins


def load_fp32_cpu(path):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def make_reference(out, tok, eos_id, n_new, dev):
    m32 = load_fp32_cpu(out)
    m16 = None
    if dev.type == "cuda":
        m16 = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float16, attn_implementation="eager").to(dev).eval()
    cases = []
    for prompt in REFERENCE_PROMPTS:
        ids = tok.encode(prompt).ids
        gen, margins = greedy(m32, ids, n_new)
        case = {
            "prompt": prompt,
            "input_ids": ids,
            "generated_ids": gen,
            "text": tok.decode(gen, skip_special_tokens=False),
            "full_text": tok.decode(ids + gen, skip_special_tokens=True),
            "min_top1_top2_logit_margin": round(min(margins), 5),
            "top1_top2_logit_margins": [round(x, 4) for x in margins],
            "hits_eos": eos_id in gen,
        }
        if m16 is not None:
            gen16, _ = greedy(m16, ids, n_new)
            agree = next((i for i, (a, b) in enumerate(zip(gen, gen16)) if a != b), len(gen))
            case["fp16_cuda_eager_agreeing_tokens"] = agree
        cases.append(case)
        log(f"reference {prompt!r}: {case['full_text']!r}")
    ref = {
        "description": "Greedy decoding references for models/demo, made by scripts/make_demo_model.py.",
        "method": ("transformers LlamaForCausalLM loaded from model.safetensors (float16 weights upcast to float32), "
                   "FP32 compute on CPU, attn_implementation=eager; each step recomputes the whole sequence and takes "
                   "the argmax of the last position; exactly max_new_tokens tokens, no stop at eos."),
        "max_new_tokens": n_new,
        "bos_prepended": True,
        "stop_at_eos": False,
        "versions": versions(),
        "cases": cases,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=2)
        f.write("\n")
    return ref


def check_tokenizer(out, tok, bos_id):
    hf = AutoTokenizer.from_pretrained(out)
    info = {"class": type(hf).__name__}
    for s in ["In the beginning God created the heaven and the earth.", "Jesus wept.\n\nAmen 123 it's"]:
        a, b = tok.encode(s).ids, hf(s)["input_ids"]
        assert a == b, f"tokenizers {a} != transformers {b}"
        assert a[0] == bos_id and a[1] != bos_id
        assert tok.decode(a, skip_special_tokens=True) == s, "round trip failed"
    chat = hf.apply_chat_template([{"role": "user", "content": "Who made the earth?"}],
                                  tokenize=False, add_generation_prompt=True)
    info["chat_example"] = chat
    log(f"tokenizer check ok ({info['class']}); chat template renders {chat!r}")
    return info


@torch.no_grad()
def make_fixture(path, out, tok, length):
    m = load_fp32_cpu(out)
    rows = []
    for s in FIXTURE_SENTENCES:
        ids = tok.encode(s).ids
        assert len(ids) >= length, f"sentence too short: {len(ids)} tokens"
        rows.append(ids[:length])
    ids = torch.tensor(rows, dtype=torch.long)
    logits = m(input_ids=ids).logits.float()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])
    nll = (-lp).mean().item()
    meta = {
        "source": "scripts/make_demo_model.py",
        "model": "models/demo",
        "compute": "transformers LlamaForCausalLM, FP32 on CPU, eager attention, float16 weights upcast",
        "sentences": json.dumps(FIXTURE_SENTENCES),
        "mean_next_token_nll": f"{nll:.6f}",
        "versions": json.dumps(versions()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    safetensors.torch.save_file({"input_ids": ids.to(torch.int32).contiguous(), "logits": logits.contiguous()},
                                path, metadata=meta)
    log(f"fixture {path}: input_ids {list(ids.shape)}, logits {list(logits.shape)}, mean NLL {nll:.4f} "
        f"(ppl {math.exp(nll):.2f})")
    return {"path": path, "rows": rows, "mean_next_token_nll": nll}


def versions():
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__}


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default=".carry/demo/kjv.txt", help="output of scripts/extract_kjv.sh")
    ap.add_argument("--out", required=True, help="output folder (the models/demo files)")
    ap.add_argument("--fixture", help="also write the logits fixture here (.safetensors)")
    ap.add_argument("--fixture-len", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--max-train-seconds", type=float, default=230.0,
                    help="safety stop for the training loop (the run is then not the planned schedule)")
    ap.add_argument("--new-tokens", type=int, default=40)
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    seed_everything(args.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    summary = {"args": vars(args), "versions": versions(),
               "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor(),
               "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    log(f"device {summary['device']}, versions {summary['versions']}")
    t_all = time.time()

    chapters = read_chapters(args.text)
    log(f"text: {len(chapters)} chapters, {sum(len(c) for c in chapters):,} characters")

    t = time.time()
    tok, bos_id, eos_id = train_tokenizer(chapters, args.vocab)
    assert tok.get_vocab_size() == args.vocab, tok.get_vocab_size()
    assert (bos_id, eos_id) == (0, 1), (bos_id, eos_id)
    summary["tokenizer_train_s"] = round(time.time() - t, 2)
    write_tokenizer_files(tok, args.out, bos_id, eos_id, 1024)
    log(f"tokenizer: vocab {tok.get_vocab_size()}, bos {bos_id}, eos {eos_id}, {summary['tokenizer_train_s']}s")

    enc = tok.encode_batch(chapters, add_special_tokens=False)
    train_ids, val_ids = [], []
    for i, e in enumerate(enc):
        dst = val_ids if i % 20 == 10 else train_ids
        dst.extend([bos_id] + e.ids + [eos_id])
    summary["train_tokens"], summary["val_tokens"] = len(train_ids), len(val_ids)
    summary["chars_per_token"] = round(sum(len(c) for c in chapters) / sum(len(e.ids) for e in enc), 3)
    log(f"tokens: train {len(train_ids):,}, val {len(val_ids):,}, {summary['chars_per_token']} chars/token; "
        f"planned {args.steps * args.batch * args.seq / len(train_ids):.1f} epochs")

    config = make_config(args, bos_id, eos_id)
    history = []
    model, n_params, train_s, steps_done, early = train(args, train_ids, val_ids, config, dev, history)
    summary.update({"parameters": n_params, "train_s": round(train_s, 1), "steps_done": steps_done,
                    "stopped_early": early, "history": history,
                    "final_train_loss": history[-1]["train_loss"], "final_val_loss": history[-1].get("val_loss")})
    log(f"training done: {steps_done} steps in {train_s:.1f}s, final train {summary['final_train_loss']}, "
        f"val {summary['final_val_loss']}")

    # Save float16 weights; check the fp16 model's validation loss too.
    model = model.to(torch.float16).eval()
    model.config.use_cache = True
    try:
        model.save_pretrained(args.out, safe_serialization=True)
    except TypeError:
        model.save_pretrained(args.out)
    cfg_path = os.path.join(args.out, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    patched = []
    if cfg.get("dtype") != "float16" and cfg.get("torch_dtype") != "float16":
        cfg["dtype"] = "float16"
        patched.append("dtype")
    if "rope_theta" not in cfg:  # transformers 5 keeps it inside rope_parameters; older readers want it on top
        cfg["rope_theta"] = 10000.0
        patched.append("rope_theta")
    if patched:
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    log(f"saved to {args.out} (config patched: {patched or 'nothing'}): "
        + ", ".join(f"{n} {os.path.getsize(os.path.join(args.out, n)):,} B" for n in sorted(os.listdir(args.out))))
    with safetensors.safe_open(os.path.join(args.out, "model.safetensors"), "pt") as f:
        names = list(f.keys())
        dtypes = {str(f.get_slice(n).get_dtype()) for n in names}
    summary["safetensors"] = {"tensors": len(names), "dtypes": sorted(dtypes),
                              "bytes": os.path.getsize(os.path.join(args.out, "model.safetensors"))}
    log(f"model.safetensors: {len(names)} tensors, dtypes {sorted(dtypes)}, lm_head present: {'lm_head.weight' in names}")

    stages = [
        ("tokenizer_check", lambda: check_tokenizer(args.out, tok, bos_id)),
        ("reload_check", lambda: reload_check(args.out, model, train_ids)),
        ("reference", lambda: make_reference(args.out, tok, eos_id, args.new_tokens, dev)["cases"]),
    ]
    if args.fixture:
        stages.append(("fixture", lambda: make_fixture(args.fixture, args.out, tok, args.fixture_len)))
    for name, fn in stages:
        try:
            summary[name] = fn()
        except Exception:
            traceback.print_exc()
            summary[name] = "FAILED: " + traceback.format_exc(limit=2)
            log(f"stage {name} FAILED")
    summary["total_s"] = round(time.time() - t_all, 1)
    with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "train_log.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    log(f"all done in {summary['total_s']}s")


@torch.no_grad()
def reload_check(out, trained16, train_ids):
    """The file must hold exactly the trained float16 weights, and transformers must load them unchanged."""
    want = {k: v.detach().cpu() for k, v in trained16.state_dict().items()}
    stored = safetensors.torch.load_file(os.path.join(out, "model.safetensors"))
    assert set(stored) == set(want), (sorted(set(stored) ^ set(want)))
    assert all(torch.equal(stored[k], want[k]) for k in want), "file differs from trained weights"
    m = load_fp32_cpu(out)
    got = m.state_dict()
    assert all(torch.equal(got[k], stored[k].float()) for k in stored), "reloaded weights differ from file"
    ids = torch.tensor([train_ids[:256]])
    lp = torch.log_softmax(m(input_ids=ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None])
    nll = (-lp).mean().item()
    tied = m.model.embed_tokens.weight.data_ptr() == m.lm_head.weight.data_ptr()
    log(f"reload check ok: {len(stored)} tensors identical; FP32 NLL on first 256 train tokens {nll:.4f}; "
        f"embeddings tied: {tied}")
    return {"tensors": len(stored), "nll_first_256_train_tokens": nll, "tied": tied}


if __name__ == "__main__":
    sys.exit(main())
