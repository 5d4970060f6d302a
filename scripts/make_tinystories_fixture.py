#!/usr/bin/env python3
"""make_tinystories_fixture.py - Hugging Face reference logits for tinystories-656k.

Writes tests/fixtures/tinystories_hf_logits.safetensors, the reference the C++
engine's forward pass is compared against:
    input_ids  I32 [2, 32]   two token rows (BOS id 1 first)
    logits     F32 [2, 32, 2048]
The token rows come from encoding two short TinyStories-like texts (written
for this fixture, in TEXTS below) with the model's own tokenizer.json through
the `tokenizers` library; its post-processor prepends BOS (id 1), which is
checked.  The logits are computed by transformers' LlamaForCausalLM in FP32
on the CPU with attn_implementation="eager" (a CUDA FP32 run, TF32 off, is
made too when a GPU is present and its largest difference is reported).  The
file's metadata holds the texts, the versions and the mean next-token NLL.

The checkpoint stores only lm_head.weight (tie_word_embeddings: true, with the
safetensors metadata entry "model.embed_tokens.weight": "lm_head.weight");
the script reports how transformers resolved the embedding.

Run (anywhere with torch, transformers, tokenizers, safetensors):
    python3 scripts/make_tinystories_fixture.py \
        --model-dir ../shared/testdata/models/tinystories-656k \
        --out tests/fixtures/tinystories_hf_logits.safetensors
"""

import argparse
import json
import math
import os
import platform
import time

import torch

import safetensors
import safetensors.torch
import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

TEXTS = [
    "Once upon a time, there was a little girl named Lily. She had a red ball that she loved very much. "
    "Every day she took the ball to the park and played with her friend Ben under the big tree. "
    "One day the ball rolled into the pond. Lily was sad, but Ben found a long stick and helped her get it back. "
    "Lily smiled and said thank you.",
    "Tom and his dog Max went for a walk by the river. The sun was warm and the birds were singing. "
    "Max saw a small frog on a rock and barked. The frog jumped into the water with a big splash. "
    "Tom laughed and Max shook the water off his fur. Then they went home to eat a yummy snack together.",
]
LENGTH = 32
BOS_ID = 1


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    rows = []
    for t in TEXTS:
        ids = tok.encode(t).ids
        if ids[0] != BOS_ID:
            ids = [BOS_ID] + ids
        assert ids[1] != BOS_ID, "BOS twice"
        assert len(ids) >= LENGTH, f"text too short: {len(ids)} tokens"
        rows.append(ids[:LENGTH])
        log(f"row: {rows[-1]}")
        log(f"     {tok.decode(rows[-1], skip_special_tokens=False)!r}")
    input_ids = torch.tensor(rows, dtype=torch.long)

    model, info = AutoModelForCausalLM.from_pretrained(
        args.model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    model.eval()
    stored = safetensors.torch.load_file(os.path.join(args.model_dir, "model.safetensors"))
    with safetensors.safe_open(os.path.join(args.model_dir, "model.safetensors"), "pt") as f:
        file_meta = f.metadata()
    emb, head = model.model.embed_tokens.weight, model.lm_head.weight
    tie = {
        "config_tie_word_embeddings": getattr(model.config, "tie_word_embeddings", None),
        "file_tensors": len(stored),
        "file_has_embed_tokens": "model.embed_tokens.weight" in stored,
        "file_metadata": file_meta,
        "missing_keys": sorted(info.get("missing_keys", [])),
        "unexpected_keys": sorted(info.get("unexpected_keys", [])),
        "embed_is_lm_head_same_storage": emb.data_ptr() == head.data_ptr(),
        "embed_equals_file_lm_head": bool(torch.equal(emb, stored["lm_head.weight"])),
        "lm_head_equals_file_lm_head": bool(torch.equal(head, stored["lm_head.weight"])),
    }
    log(f"tying: {json.dumps(tie)}")
    if not (tie["embed_equals_file_lm_head"] and tie["lm_head_equals_file_lm_head"]):
        # Transformers did not resolve the tie to the stored matrix: do it by hand
        # so that the fixture describes the checkpoint, and say so.
        log("WARNING: embedding/lm_head differ from the stored lm_head.weight; copying it into both")
        emb.data.copy_(stored["lm_head.weight"])
        head.data.copy_(stored["lm_head.weight"])
        tie["fixed_by_script"] = True

    logits = model(input_ids=input_ids).logits.float().contiguous()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None])
    nll_rows = (-lp).mean(dim=(1, 2)).tolist()
    nll = (-lp).mean().item()
    log(f"logits {list(logits.shape)}; mean next-token NLL {nll:.6f} (ppl {math.exp(nll):.4f}); "
        f"per row {[round(x, 4) for x in nll_rows]}; {lp.numel()} predictions")

    gpu_diff = None
    if torch.cuda.is_available():
        g = model.to("cuda")
        gpu_diff = (g(input_ids=input_ids.cuda()).logits.float().cpu() - logits).abs().max().item()
        log(f"CUDA FP32 (TF32 off) vs CPU FP32: max |logit diff| {gpu_diff:.3g}")
        model = g.to("cpu")

    # Greedy sanity continuation (not stored).
    seq = rows[0][:12]
    for _ in range(20):
        seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
    log(f"greedy sanity: {tok.decode(seq, skip_special_tokens=True)!r}")

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "safetensors": safetensors.__version__}
    meta = {
        "source": "scripts/make_tinystories_fixture.py",
        "model": "testdata/models/tinystories-656k",
        "compute": "transformers LlamaForCausalLM, FP32 on CPU, attn_implementation=eager",
        "texts": json.dumps(TEXTS),
        "mean_next_token_nll": f"{nll:.6f}",
        "perplexity": f"{math.exp(nll):.6f}",
        "nll_per_row": json.dumps(nll_rows),
        "cuda_fp32_max_abs_diff": "" if gpu_diff is None else f"{gpu_diff:.3g}",
        "tying": json.dumps(tie),
        "versions": json.dumps(versions),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    safetensors.torch.save_file({"input_ids": input_ids.to(torch.int32).contiguous(), "logits": logits},
                                args.out, metadata=meta)
    log(f"wrote {args.out} ({os.path.getsize(args.out):,} B); versions {versions}")


if __name__ == "__main__":
    main()
