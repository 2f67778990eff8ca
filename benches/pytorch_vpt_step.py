#!/usr/bin/env python3
"""The training step `vpt bench --filter "train step"` times, in PyTorch: the peer to compare with
on the same machine. VPT-deep on timm's ViT-B/16 at 224×224 with the same synthetic weights and
prompt layout as the fixtures (fixtures/vit_common.py), cross-entropy, backward to the prompts and
the head, and an SGD update.

    .venv/bin/python benches/pytorch_vpt_step.py [--batch 8] [--prompts 50] [--reps 3]
                                                 [--threads N] [--device cpu|cuda]
                                                 [--unread-rows skip|compute]

Versions are pinned by fixtures/requirements.txt (`pip install -r fixtures/requirements.txt`).
Each phase is timed on the host clock, waited for on a GPU (torch.cuda.synchronize), after one
step of warm-up; the median over --reps steps is reported, with the forward's GFLOP/s from the
products' count (24·T·D² + 4·T²·D per block and image: qkv, proj, fc1, fc2, and attention's two
products, T = 1 + patches + prompts), the same count docs/benchmarks.md uses for ours.

`--unread-rows`: `compute` (the default) runs every block on every token, as KMnP/vpt and timm do;
`skip` does what vpt-wgsl does (src/model/block.rs, `RowsRead`): past each block's attention, only
the rows read after it (not the prompt rows the next block overwrites; in the last block, CLS
only) go through proj and the MLP. The same loss either way; the GFLOP/s stay counted on the full
step's products, so the two settings compare as step times.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import timm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import vit_common  # noqa: E402  (the synthetic generator and the VPT wrapper used by the fixtures)


def forward_gflop(batch, prompts, depth=12, dim=768, patches=196):
    tokens = 1 + patches + prompts
    return batch * depth * (24 * tokens * dim * dim + 4 * tokens * tokens * dim) / 1e9


def block_on_rows(block, x, rows):
    """timm's Block (pre-norm, no layer scale) with only `rows` of its output computed past the
    attention, whose keys and values still take every row: x [B, T, D] → [B, len(rows), D]."""
    B, T, D = x.shape
    attn = block.attn
    qkv = attn.qkv(block.norm1(x)).reshape(B, T, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # [B, H, T, hd] each
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D)
    x = x[:, rows] + attn.proj(o[:, rows])
    return x + block.mlp(block.norm2(x))


def logits_skipping_unread_rows(model, images):
    """model(images) (vit_common.VPT, deep prompts, CLS pooling) without the rows nobody reads."""
    vit, P = model.vit, model.num_prompts
    x = vit._pos_embed(vit.patch_embed(images))  # [B, 1 + N, D]
    B, depth = x.shape[0], len(vit.blocks)
    for i, block in enumerate(vit.blocks):
        if i < model.depth_p:  # block i−1 already left out the prompt rows
            x = torch.cat([x[:, :1], model.prompts[i].unsqueeze(0).expand(B, -1, -1), x[:, 1:]], dim=1)
        T = x.shape[1]
        if i + 1 == depth:
            rows = [0]  # CLS, what the pooling reads
        elif i + 1 < model.depth_p:
            rows = [0] + list(range(1 + P, T))  # the next block overwrites the prompt rows
        else:
            rows = list(range(T))
        x = block_on_rows(block, x, torch.tensor(rows, device=x.device))
    return model.head(vit.norm(x)[:, 0])


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--batch", type=int, default=8)
    args.add_argument("--prompts", type=int, default=50)
    args.add_argument("--reps", type=int, default=3)
    args.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own choice)")
    args.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    args.add_argument("--unread-rows", choices=["compute", "skip"], default="compute", help="run proj and the MLP on the rows nobody reads after a block (compute, as timm does) or not (skip, as vpt-wgsl does)")
    a = args.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    cfg = vit_common.preset("vit_base_patch16_224", num_classes=0)
    vit = timm.models.vision_transformer.VisionTransformer(**cfg.timm_kwargs())
    vit.load_state_dict(vit_common.synthetic_vit_state_dict(cfg, 1234))
    d, depth, classes = 768, 12, 10
    prompts = torch.from_numpy(vit_common.synthetic_tensor("vpt.prompts", (depth, a.prompts, d), 1))
    head_weight = torch.from_numpy(vit_common.synthetic_tensor("vpt.head.weight", (classes, d), 1))
    model = vit_common.VPT(vit, prompts, head_weight, torch.zeros(classes), "cls").to(device)
    images = torch.from_numpy(vit_common.synthetic_tensor("batch.images", (a.batch, 3, 224, 224), 1)).to(device)
    labels = (torch.arange(a.batch) % classes).to(device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    logits_of = model
    if a.unread_rows == "skip":
        logits_of = lambda x: logits_skipping_unread_rows(model, x)  # noqa: E731
        with torch.no_grad():  # the trimmed blocks give the full model's logits
            full, skipped = model(images), logits_of(images)
            assert torch.allclose(full, skipped, rtol=1e-4, atol=1e-4), (full - skipped).abs().max()

    def step():
        times = []
        start = time.perf_counter()
        loss = F.cross_entropy(logits_of(images), labels)
        sync()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        optimizer.step()
        sync()
        times.append(time.perf_counter() - start)
        return loss.item(), times

    step()  # warm-up: allocations, kernel selection
    runs = [step() for _ in range(a.reps)]
    forward, backward, update = (statistics.median(r[1][i] for r in runs) for i in range(3))
    total = forward + backward + update
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, timm {timm.__version__}, {where}")
    print(f"train step (VPT-deep: 12 blocks, {a.prompts} prompts each, 224×224 images (patch 16), batch {a.batch}, unread rows: {a.unread_rows}), median of {a.reps}:")
    print(f"  {a.batch / total:.2f} images/s = forward {forward * 1e3:.1f} ms + backward {backward * 1e3:.1f} ms + optimizer {update * 1e3:.1f} ms")
    gflop = forward_gflop(a.batch, a.prompts)
    print(f"  forward {gflop:.1f} GFLOP of products: {gflop / forward:.1f} GFLOP/s; backward / forward {backward / forward:.2f}; loss {runs[-1][0]:.4f}")


if __name__ == "__main__":
    main()
