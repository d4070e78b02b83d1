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


def _sign_by_first_modality(u: torch.Tensor, z: torch.Tensor, s1: torch.Tensor,
                            tol: float = 1e-6) -> torch.Tensor:
    """Flip u so that u . z_a > 0 for the first column a with |u . z_a| > tol * s1."""
    dots = (u.unsqueeze(-2) @ z).squeeze(-2).detach()  # (..., k): u . z_a
    s1 = s1.detach()
    sign = torch.ones_like(s1, dtype=u.dtype)
    for n in range(dots.shape[0]):
        for a in range(dots.shape[1]):
            if abs(float(dots[n, a])) > tol * float(s1[n]):
                sign[n] = 1.0 if float(dots[n, a]) > 0 else -1.0
                break
    return u * sign[:, None]


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
    u = _sign_by_first_modality(u_all[:, :, 0], z, s[:, 0])  # (B, D)
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


# ---------------------------------------------------------------- missing modalities
def gram_loss_masked_naive(anchor, *others, present, temperature, label_smoothing=0.0):
    """GRAM over the vectors present: keep the samples with the anchor and >= 1 other,
    then, per (anchor i, tuple j), ``torch.det`` of the Gram matrix of anchor[i] and the
    vectors tuple j has."""
    keep = [n for n in range(anchor.shape[0]) if present[n, 0] and present[n, 1:].any()]
    vols = torch.zeros(len(keep), len(keep), dtype=anchor.dtype)
    rows = []
    for i in keep:
        row = []
        for j in keep:
            vecs = [anchor[i]] + [o[j] for a, o in enumerate(others) if present[j, a + 1]]
            m = torch.stack(vecs)
            row.append(torch.det(m @ m.T).abs().sqrt())
        rows.append(torch.stack(row))
    vols = torch.stack(rows)
    logits = -vols / temperature
    t = torch.arange(len(keep))
    return 0.5 * (F.cross_entropy(logits, t, label_smoothing=label_smoothing)
                  + F.cross_entropy(logits.T, t, label_smoothing=label_smoothing))


def pmrl_loss_masked_svd(*modalities, present, tau_sv, tau_reg, reg_weight=1.0):
    """PMRL per sample over the columns it has (``torch.linalg.svd`` of a D x k_i
    matrix), samples with fewer than two columns left out."""
    keep = [n for n in range(present.shape[0]) if int(present[n].sum()) >= 2]
    sv_terms, us = [], []
    for n in keep:
        cols = [z[n] for a, z in enumerate(modalities) if present[n, a]]
        z = torch.stack(cols, dim=-1)  # (D, k_n)
        u_all, s, _ = torch.linalg.svd(z, full_matrices=False)
        u = _sign_by_first_modality(u_all[None, :, 0], z[None], s[None, 0])[0]
        sv_terms.append(-torch.log_softmax(s / tau_sv, 0)[0])
        us.append(u)
    u = torch.stack(us)
    reg = F.cross_entropy(u @ u.T / tau_reg, torch.arange(len(keep)))
    return torch.stack(sv_terms).mean() + reg_weight * reg
