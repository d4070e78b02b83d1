"""Deliberately naive reference implementations, for tests and benchmarks only.

They build every per-pair (GRAM) or per-sample (PMRL) matrix explicitly and call
``torch.det`` / ``torch.linalg.svd`` on it, sharing no code with :mod:`losses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_volumes_naive(anchor, *others, chunk: int = 0) -> torch.Tensor:
    """Explicit per-pair Gram matrices: stack the k vectors of pair (i, j), multiply,
    ``torch.det``, ``sqrt(|det|)``. ``chunk`` anchor rows at a time (0: all)."""
    b_a, b_o = anchor.shape[0], others[0].shape[0]
    o = torch.stack(others, dim=1)  # (B_o, m, D)
    step = chunk or b_a
    out = []
    for start in range(0, b_a, step):
        a = anchor[start:start + step]
        vecs = torch.cat([
            a[:, None, None, :].expand(-1, b_o, 1, -1),
            o[None].expand(a.shape[0], -1, -1, -1),
        ], dim=2)  # (c, B_o, k, D)
        gram = vecs @ vecs.mT
        out.append(torch.det(gram).abs().sqrt())
    return torch.cat(out)


def gram_volumes_dots(anchor, *others) -> torch.Tensor:
    """The GRAM authors' formulation: all pairwise dot products as (B, B) matrices,
    stacked into per-pair Gram matrices, then one batched ``torch.det``."""
    vecs = (anchor, *others)
    k, b_a, b_o = len(vecs), anchor.shape[0], others[0].shape[0]
    rows = []
    for p in range(k):
        row = []
        for q in range(k):
            if p == 0 and q == 0:
                e = (anchor * anchor).sum(-1)[:, None].expand(b_a, b_o)
            elif p == 0 or q == 0:
                e = anchor @ vecs[max(p, q)].T
            else:
                e = (vecs[p] * vecs[q]).sum(-1)[None, :].expand(b_a, b_o)
            row.append(e)
        rows.append(torch.stack(row, dim=-1))
    gram = torch.stack(rows, dim=-2)
    return torch.det(gram).abs().sqrt()


def gram_loss_naive(anchor, *others, temperature, label_smoothing=0.0):
    logits = -gram_volumes_naive(anchor, *others) / temperature
    t = torch.arange(logits.shape[0])
    return 0.5 * (F.cross_entropy(logits, t, label_smoothing=label_smoothing)
                  + F.cross_entropy(logits.T, t, label_smoothing=label_smoothing))


def pmrl_loss_svd(*modalities, tau_sv, tau_reg, reg_weight=1.0, per_sample=False):
    """PMRL with ``torch.linalg.svd`` of each sample's D x k matrix (batched, or one
    sample at a time with ``per_sample``)."""
    z = torch.stack(modalities, dim=-1)  # (B, D, k)
    if per_sample:
        parts = [torch.linalg.svd(z[n], full_matrices=False) for n in range(z.shape[0])]
        u_all = torch.stack([p[0] for p in parts])
        s = torch.stack([p[1] for p in parts])
    else:
        u_all, s, _ = torch.linalg.svd(z, full_matrices=False)
    u = u_all[:, :, 0]  # (B, D)
    along = (u.unsqueeze(1) @ z).squeeze(1).sum(-1)  # sum_a u . z_a
    u = torch.where(along[:, None] < 0, -u, u)
    sv = F.cross_entropy(s / tau_sv, torch.zeros(z.shape[0], dtype=torch.long))
    reg = F.cross_entropy(u @ u.T / tau_reg, torch.arange(z.shape[0]))
    return sv + reg_weight * reg


def infonce_loss_naive(anchor, other, temperature):
    b = anchor.shape[0]
    total = anchor.new_zeros(())
    for i in range(b):
        sims = torch.stack([anchor[i] @ other[j] for j in range(b)]) / temperature
        sims_t = torch.stack([anchor[j] @ other[i] for j in range(b)]) / temperature
        total = total - torch.log_softmax(sims, 0)[i] - torch.log_softmax(sims_t, 0)[i]
    return total / (2 * b)
