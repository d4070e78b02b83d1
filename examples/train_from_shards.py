"""Train a small video-text model from mmprep shards, resuming mid-epoch.

    python examples/train_from_shards.py SHARDS -o RUN [--epochs 2] [--stop-after STEPS]

The loader (`mmprep.loader.make_loader`: 2 workers, 4 frames drawn at random per
segment, one random caption per epoch) feeds a tiny dual encoder (a linear layer on
mean-pooled frames, mean token embeddings of the caption) trained with a symmetric
InfoNCE loss. Every step saves RUN/checkpoint.pt (model, optimiser, loader state), so
a job killed at any step restarts where it stopped, with the batches it would have
seen. `--stop-after N` ends the run after N steps, as a kill would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from mmprep.loader import make_loader


class DualEncoder(torch.nn.Module):
    def __init__(self, vocab: int = 30522, dim: int = 32, pixels: int = 3 * 8 * 8):
        super().__init__()
        self.video = torch.nn.Linear(pixels, dim)
        self.text = torch.nn.Embedding(vocab, dim)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, batch):
        frames = F.adaptive_avg_pool2d(batch["video"].flatten(0, 1), 8)  # (B*T, 3, 8, 8)
        frames = frames.view(*batch["video"].shape[:2], -1).mean(1)  # mean over time
        mask = batch["text_mask"].unsqueeze(-1).float()  # mean over the caption's tokens
        words = (self.text(batch["text_ids"]) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return F.normalize(self.video(frames), dim=-1), F.normalize(words, dim=-1)


def info_nce(v, t, scale):
    logits = scale.exp() * v @ t.T
    target = torch.arange(len(v))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", help="an extract output folder (or brace pattern, URL)")
    parser.add_argument("-o", "--out", required=True, help="run folder (checkpoint, log)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stop-after", type=int, help="stop after this many steps")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loader = make_loader(args.shards, batch_size=args.batch_size, num_workers=args.workers,
                         num_frames=4, sampling="random", captions="random", seed=0)
    model = DualEncoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    epoch, step = 0, 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        epoch, step = state["epoch"], state["step"]
        if state["loader"] is not None:  # mid-epoch: continue it
            loader.load_state_dict(state["loader"])
        print(f"resumed at epoch {epoch}, step {step}")

    with open(out / "log.txt", "a") as log:
        while epoch < args.epochs:
            loader.dataset.set_epoch(epoch)
            for batch in loader:
                v, t = model(batch)
                loss = info_nce(v, t, model.scale)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                log.write(f"{epoch} {step} {' '.join(batch['__key__'])} {loss.item():.6f}\n")
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "epoch": epoch, "step": step, "loader": loader.state_dict()}, ckpt)
                if args.stop_after is not None and step >= args.stop_after:
                    print(f"stopped after step {step}")
                    return
            epoch += 1
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "epoch": epoch, "step": step, "loader": None}, ckpt)
    print(f"done: {epoch} epochs, {step} steps")


if __name__ == "__main__":
    main()
