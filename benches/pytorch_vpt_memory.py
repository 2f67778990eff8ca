#!/usr/bin/env python3
"""What PyTorch keeps for one VPT-deep training step on ViT-B/16 (the comparison for
examples/vpt_step_memory.rs). Same weights (the synthetic generator), same prompt layout.

    .venv/bin/python benches/pytorch_vpt_memory.py [BATCH] [PROMPTS] [UNREAD_ROWS]
                                                   (default 8 50 compute)

UNREAD_ROWS: `compute` runs every block on every row, as timm does; `skip` leaves out, past each
block's attention, the rows nobody reads after it, as vpt-wgsl does (benches/pytorch_vpt_step.py,
`--unread-rows`).

Measured: the bytes of every distinct tensor storage autograd saves for backward
(torch.autograd.graph.saved_tensors_hooks), which is what stays alive between forward and
backward besides the weights, and the weights themselves. timm's attention runs through
F.scaled_dot_product_attention, as it does by default.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F
import timm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import vit_common  # noqa: E402  (the synthetic generator and the VPT wrapper used by the fixtures)
from pytorch_vpt_step import logits_skipping_unread_rows  # noqa: E402  (this folder, on sys.path)


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    prompts = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    unread_rows = sys.argv[3] if len(sys.argv) > 3 else "compute"
    if unread_rows not in ("compute", "skip"):
        sys.exit(f"UNREAD_ROWS is compute or skip, not {unread_rows!r}")
    cfg = vit_common.preset("vit_base_patch16_224", num_classes=0)
    vit = timm.models.vision_transformer.VisionTransformer(**cfg.timm_kwargs())
    vit.load_state_dict(vit_common.synthetic_vit_state_dict(cfg, 1234))
    d, depth, classes = 768, 12, 10
    p = torch.from_numpy(vit_common.synthetic_tensor("vpt.prompts", (depth, prompts, d), 1))
    hw = torch.from_numpy(vit_common.synthetic_tensor("vpt.head.weight", (classes, d), 1))
    model = vit_common.VPT(vit, p, hw, torch.zeros(classes), "cls")
    images = torch.from_numpy(vit_common.synthetic_tensor("batch.images", (batch, 3, 224, 224), 1))
    labels = torch.arange(batch) % classes
    weights = sum(t.numel() * t.element_size() for t in vit.state_dict().values())

    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    start = time.time()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(images) if unread_rows == "compute" else logits_skipping_unread_rows(model, images)
        loss = F.cross_entropy(logits, labels)
    forward_s = time.time() - start
    start = time.time()
    loss.backward()
    backward_s = time.time() - start
    print(f"torch {torch.__version__}, timm {timm.__version__}, CPU, {torch.get_num_threads()} threads")
    print(f"step: ViT-B/16 at 224, batch {batch}, {prompts} deep prompts, unread rows: {unread_rows}, loss {loss.item():.4f}")
    print(f"frozen weights: {mib(weights)}")
    print(f"saved for backward (distinct storages): {mib(sum(saved.values()))} in {len(saved)} storages")
    print(f"time: forward {forward_s:.1f} s, backward {backward_s:.1f} s")


if __name__ == "__main__":
    main()
