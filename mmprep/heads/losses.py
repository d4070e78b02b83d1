"""Alignment losses on unit-norm embeddings: GRAM volumes, PMRL, pairwise InfoNCE.

All inputs are (B, D) tensors with unit-norm rows; nothing here normalises.

GRAM volumes without a determinant per pair
-------------------------------------------
For anchor row ``a_i`` and the tuple ``O_j`` (the ``m = k - 1`` other vectors of sample
``j``), the Gram matrix is the block matrix ``[[a.a, c^T], [c, H]]`` with ``H = O_j O_j^T``
(fixed per ``j``) and ``c = O_j a_i``. Its determinant is ``|a|^2 det H - c^T adj(H) c``
(the Schur-complement formula multiplied through by ``det H``, so it holds for singular
``H`` too). ``det H`` and the adjugate come from the Faddeev-LeVerrier recursion, which
uses only matrix products: its gradient is finite everywhere, including when two of the
other vectors coincide. The only large operation is one ``(B, D) x (D, B m)`` matrix
product; the small ``m x m`` algebra runs in float64.

Safe square roots
-----------------
``sqrt`` has an infinite slope at zero, and a volume is zero whenever two vectors
coincide. :class:`_SafeSqrt` returns the exact root but uses ``0.5 / max(y, eps)`` as its
slope, so gradients stay finite at and near zero volume (and at zero singular values).

PMRL from the k x k Gram matrix
-------------------------------
Singular values of the ``D x k`` matrix ``Z`` are the square roots of the eigenvalues of
``K = Z^T Z``; the leading left singular vector is ``u = Z v_1 / sigma_1``. ``eigh`` of a
``k x k`` matrix is far cheaper than an SVD of ``D x k``. Its textbook gradient divides
by eigenvalue gaps and blows up when eigenvalues (near) coincide (e.g. mutually
orthogonal modality vectors, which is what freshly initialised heads produce).
:class:`_SymEig` uses the Lorentzian-broadened factor ``gap / (gap^2 + eps)`` instead of
``1 / gap``: exact for gaps well above ``sqrt(eps)`` (1e-5), zero for exactly equal
eigenvalues, bounded by ``1 / (2 sqrt(eps))`` in between. Eigenvalue (sigma) gradients
never involve gaps and are exact.

Missing modalities
------------------
Every loss takes an optional ``present`` mask, (B, k) bool in the order of its inputs
(True where sample i has modality a). GRAM scores a tuple over the vectors it has: a
missing vector of ``O_j`` is replaced by zeros and ``H_j`` gets 1 on its diagonal, so
``det G`` is exactly the determinant of the Gram matrix of the vectors present (a
Gram matrix with a unit row and column); queries and targets are the samples with
the anchor and at least one other vector. PMRL drops the columns a sample lacks: its
singular values are those of the present columns (the zero columns add zero singular
values, which are the smallest and are left out of the softmax); samples with fewer
than two columns are left out. InfoNCE uses the samples that have both.

The sign of PMRL's leading vector
---------------------------------
Singular vectors are defined up to sign. ``u`` is signed so that ``u . z_a > 0`` for
the first modality ``a`` (in input order, the anchor first) that the sample has and
that ``u`` is not orthogonal to (``|v1_a| > 1e-6``; ``u . z_a = sigma_1 v1_a``). An
earlier rule, ``sum_a u . z_a >= 0``, was undefined for two modalities whose cosine is
negative: the sum is then exactly zero and rounding chose the sign.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "gram_volumes", "gram_loss", "pmrl_loss", "pmrl_terms", "singular_spectrum", "infonce_loss",
]

SQRT_EPS = 1e-6  # slope cap of the safe square root: 0.5 / SQRT_EPS
EIGH_EPS = 1e-10  # broadening of eigenvector gradients (gaps >> 1e-5 are exact)


class _SafeSqrt(torch.autograd.Function):
    """sqrt(max(x, 0)) with a finite slope 0.5 / max(sqrt(x), eps)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        y = x.clamp_min(0).sqrt()
        ctx.save_for_backward(y)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        return grad * 0.5 / y.clamp_min(ctx.eps), None


def safe_sqrt(x: torch.Tensor, eps: float = SQRT_EPS) -> torch.Tensor:
    return _SafeSqrt.apply(x, eps)


class _SymEig(torch.autograd.Function):
    """Batched ``eigh`` (ascending) with gap-broadened eigenvector gradients."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, eps: float):
        lam, vec = torch.linalg.eigh(a)
        ctx.save_for_backward(lam, vec)
        ctx.eps = eps
        return lam, vec

    @staticmethod
    def backward(ctx, g_lam, g_vec):
        lam, vec = ctx.saved_tensors
        inner = torch.zeros_like(vec)
        if g_lam is not None:
            inner = inner + torch.diag_embed(g_lam)
        if g_vec is not None:
            gap = lam.unsqueeze(-2) - lam.unsqueeze(-1)  # [i, j] = lam_j - lam_i
            factor = gap / (gap * gap + ctx.eps)
            inner = inner + factor * (vec.mT @ g_vec)
        g_a = vec @ inner @ vec.mT
        return 0.5 * (g_a + g_a.mT), None


def sym_eig(a: torch.Tensor, eps: float = EIGH_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of symmetric ``a`` (..., k, k)."""
    return _SymEig.apply(a, eps)


def det_adjugate(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Determinant and adjugate of (..., m, m) matrices by Faddeev-LeVerrier.

    Only products and traces, so the gradient exists everywhere (a polynomial). Stable
    for the small (m <= 6) matrices with entries in [-1, 1] used here, in float64.
    """
    m = h.shape[-1]
    eye = torch.eye(m, dtype=h.dtype, device=h.device)
    mk = torch.zeros_like(h)
    coef = torch.ones(h.shape[:-2], dtype=h.dtype, device=h.device)
    for k in range(1, m + 1):
        mk = h @ mk + coef[..., None, None] * eye
        coef = -(h @ mk).diagonal(dim1=-2, dim2=-1).sum(-1) / k
    det = coef if m % 2 == 0 else -coef
    adj = mk if m % 2 == 1 else -mk
    return det, adj


def _check_rows(*tensors: torch.Tensor) -> None:
    if any(t.ndim != 2 for t in tensors):
        raise ValueError("expected (B, D) tensors")
    dims = {t.shape[1] for t in tensors}
    if len(dims) != 1:
        raise ValueError(f"all inputs need the same dimension, got {sorted(dims)}")


SIGN_TOL = 1e-6  # |v1_a| below this: u counts as orthogonal to z_a for the sign rule


def gram_volumes(anchor: torch.Tensor, *others: torch.Tensor,
                 others_present: torch.Tensor | None = None) -> torch.Tensor:
    """(B_a, B_o) matrix: entry [i, j] is sqrt(det G) of {anchor[i], others[0][j], ...}.

    ``others_present`` (B_o, k - 1) bool: tuple j is made of the others it has (the
    volume of the vectors present). Any number (>= 1) of other modalities, all with
    the same number of rows B_o. The
    small m x m algebra (``det H``, ``adj H``) runs in float64, the (B_a, B_o) part in
    the inputs' dtype (pass float64 inputs for float64 results). Without autograd
    (evaluation) a factorised form needs half the arithmetic; with autograd every step
    is a product or a sum, so the gradient is finite for any input.
    """
    if not others:
        raise ValueError("gram_volumes needs the anchor and at least one other modality")
    _check_rows(anchor, *others)
    if len({o.shape[0] for o in others}) != 1:
        raise ValueError("all non-anchor modalities need the same number of rows")
    o = torch.stack(others, dim=1)  # (B_o, m, D)
    missing = None
    if others_present is not None:
        if others_present.shape != o.shape[:2]:
            raise ValueError(f"others_present must be {tuple(o.shape[:2])}")
        missing = ~others_present.to(torch.bool)
        o = o * others_present.to(o.dtype)[..., None]
    if torch.is_grad_enabled() and (anchor.requires_grad or o.requires_grad):
        return safe_sqrt(_det_gram_autograd(anchor, o, missing))
    return _det_gram_fast(anchor, o, missing).clamp_min_(0).sqrt_()


def _tuple_gram(o64: torch.Tensor, missing: torch.Tensor | None) -> torch.Tensor:
    """H_j = O_j O_j^T, with 1 on the diagonal for missing (zeroed) vectors."""
    h = o64 @ o64.mT
    if missing is not None:
        h = h + torch.diag_embed(missing.to(h.dtype))
    return h


def _det_gram_autograd(anchor: torch.Tensor, o: torch.Tensor,
                       missing: torch.Tensor | None = None) -> torch.Tensor:
    """det G_ij = |a_i|^2 det H_j - sum_l (a_i . o_jl)(a_i . q_jl), q_j = adj(H_j) O_j."""
    (b_o, m, dim), b_a = o.shape, anchor.shape[0]
    o64 = o.double()
    det_h, adj = det_adjugate(_tuple_gram(o64, missing))
    q = (adj @ o64).to(anchor.dtype)
    both = torch.cat([o.reshape(b_o * m, dim), q.reshape(b_o * m, dim)])
    cd = anchor @ both.mT  # one matrix product for both factors
    c = cd[:, : b_o * m].reshape(b_a, b_o, m)
    d = cd[:, b_o * m:].reshape(b_a, b_o, m)
    a_sq = (anchor * anchor).sum(-1)
    return a_sq[:, None] * det_h.to(anchor.dtype)[None, :] - (c * d).sum(-1)


@torch.no_grad()
def _det_gram_fast(anchor: torch.Tensor, o: torch.Tensor,
                   missing: torch.Tensor | None = None) -> torch.Tensor:
    """Same value with adj(H_j) = L_j L_j^T from eigh(H_j): det G_ij = |a_i|^2 det H_j
    - |L_j^T O_j a_i|^2, one (B_a, D) x (D, B_o m) product."""
    (b_o, m, dim), b_a = o.shape, anchor.shape[0]
    o64 = o.double()
    lam, vec = torch.linalg.eigh(_tuple_gram(o64, missing))
    lam = lam.clamp_min(0)
    det_h = lam.prod(-1)
    # adj(H) = V diag(prod_{l' != l} lam_l') V^T
    rest = torch.stack([torch.cat([lam[:, :i], lam[:, i + 1:]], -1).prod(-1)
                        for i in range(m)], -1)
    w = (vec * rest.sqrt()[:, None, :]).mT @ o64  # (B_o, m, D) = L^T O
    y = (anchor @ w.to(anchor.dtype).reshape(b_o * m, dim).mT).view(b_a, b_o, m)
    quad = torch.einsum("ijl,ijl->ij", y, y)
    a_sq = (anchor * anchor).sum(-1)
    return quad.neg_().add_(a_sq[:, None] * det_h.to(anchor.dtype)[None, :])


def _symmetric_ce(logits: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (
        F.cross_entropy(logits, target, label_smoothing=label_smoothing)
        + F.cross_entropy(logits.T, target, label_smoothing=label_smoothing)
    )


def _present_mask(present: torch.Tensor | None, b: int, k: int) -> torch.Tensor | None:
    if present is None:
        return None
    if present.shape != (b, k):
        raise ValueError(f"present must be a ({b}, {k}) bool mask, got {tuple(present.shape)}")
    return present.to(torch.bool)


def gram_loss(
    anchor: torch.Tensor,
    *others: torch.Tensor,
    temperature: float | torch.Tensor,
    label_smoothing: float = 0.0,
    present: torch.Tensor | None = None,
    stop_gradient: bool = False,
) -> torch.Tensor:
    """GRAM contrastive loss: logits -volume / temperature, mean of the anchor->tuple
    and tuple->anchor cross-entropies with the diagonal as target.

    ``present`` (B, k) bool, anchor first: samples with the anchor and at least one
    other vector take part, each tuple scored over the vectors it has.
    ``stop_gradient``: the GRAM authors' update with all-gathered batches, which carry
    no gradient: anchor->tuple differentiates the anchors only, tuple->anchor the
    tuples only (on one process, 1/2 dL(a->t)/d anchor + 1/2 dL(t->a)/d others)."""
    if not others or any(o.shape[0] != anchor.shape[0] for o in others):
        raise ValueError("gram_loss needs the same batch size for all modalities")
    mask = _present_mask(present, anchor.shape[0], len(others) + 1)
    rest = None
    if mask is not None:
        keep = mask[:, 0] & mask[:, 1:].any(1)
        anchor, others, rest = anchor[keep], tuple(o[keep] for o in others), mask[keep, 1:]
        if anchor.shape[0] == 0:
            return anchor.sum() * 0.0
    if not stop_gradient:
        vol = gram_volumes(anchor, *others, others_present=rest)
        return _symmetric_ce(-vol / temperature, label_smoothing)
    target = torch.arange(anchor.shape[0], device=anchor.device)
    fwd = -gram_volumes(anchor, *[o.detach() for o in others], others_present=rest)
    bwd = -gram_volumes(anchor.detach(), *others, others_present=rest).T
    return 0.5 * (F.cross_entropy(fwd / temperature, target, label_smoothing=label_smoothing)
                  + F.cross_entropy(bwd / temperature, target, label_smoothing=label_smoothing))


def _row_gram(modalities: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """(B, k, k) per-sample Gram matrices from k (B, D) tensors (row-wise dots; cheaper
    than a batched product with tiny inner sizes)."""
    k = len(modalities)
    dots = {}
    for a in range(k):
        for b in range(a, k):
            dots[a, b] = (modalities[a] * modalities[b]).sum(-1)
    rows = [torch.stack([dots[min(a, b), max(a, b)] for b in range(k)], -1) for a in range(k)]
    return torch.stack(rows, -2)


def singular_spectrum(*modalities: torch.Tensor, present: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the singular values (B, k), descending, of the D x k matrix Z of its
    modality vectors, and the leading left singular vector u (B, D), signed so that
    u . z_a > 0 for the first modality a it is not orthogonal to (module docstring).
    From eigh of the k x k Gram matrix. ``present`` (B, k) bool: missing columns are
    zeroed (their singular values are the trailing zeros)."""
    if len(modalities) < 2:
        raise ValueError("needs at least two modalities")
    _check_rows(*modalities)
    if len({t.shape[0] for t in modalities}) != 1:
        raise ValueError("all modalities need the same batch size")
    mask = _present_mask(present, modalities[0].shape[0], len(modalities))
    if mask is not None:
        modalities = tuple(z * mask[:, a, None].to(z.dtype) for a, z in enumerate(modalities))
    gram = _row_gram(modalities).double()  # (B, k, k); eigen-algebra in float64
    lam, vec = sym_eig(gram)
    lam, vec = lam.flip(-1), vec.flip(-1)  # descending
    sigma = safe_sqrt(lam)
    v1 = vec[..., 0]
    big = v1.detach().abs() > SIGN_TOL
    first = big.to(torch.int64).argmax(-1, keepdim=True)  # first column u is not orthogonal to
    v1 = v1 * torch.where(v1.gather(-1, first) >= 0, 1.0, -1.0).to(v1.dtype)
    dtype = modalities[0].dtype
    w = (v1 / sigma[:, :1].clamp_min(SQRT_EPS)).to(dtype)
    u = sum(w[:, a, None] * z for a, z in enumerate(modalities))  # Z v1 / sigma1
    return sigma.to(dtype), u


def pmrl_terms(
    *modalities: torch.Tensor, tau_sv: float | torch.Tensor, tau_reg: float | torch.Tensor,
    present: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The two PMRL terms and the per-sample spectrum.

    Returns ``sv`` (cross-entropy of softmax(sigma / tau_sv) with target 0), ``reg``
    (instance-wise contrastive loss over the leading singular vectors, logits
    ``u_i . u_j / tau_reg``, target i), ``sigma`` (B, k) descending and ``u`` (B, D).
    ``present`` (B, k) bool: each sample over the columns it has; samples with fewer
    than two are left out (``sigma`` and ``u`` then cover the samples kept).
    """
    if len(modalities) < 2:
        raise ValueError("pmrl_loss needs at least two modalities")
    mask = _present_mask(present, modalities[0].shape[0], len(modalities))
    if mask is not None:
        keep = mask.sum(1) >= 2
        modalities, mask = tuple(z[keep] for z in modalities), mask[keep]
        if mask.shape[0] == 0:
            zero = modalities[0].sum() * 0.0
            return {"sv": zero, "reg": zero, "sigma": modalities[0].new_zeros(0, mask.shape[1]),
                    "u": modalities[0][:0]}
    sigma, u = singular_spectrum(*modalities, present=mask)
    target = torch.zeros(sigma.shape[0], dtype=torch.long, device=sigma.device)
    logits = sigma / tau_sv
    if mask is not None:  # the trailing zeros of the missing columns leave the softmax
        n_present = mask.sum(1, keepdim=True)
        slots = torch.arange(sigma.shape[1], device=sigma.device)[None, :]
        logits = logits.masked_fill(slots >= n_present, float("-inf"))
    sv = F.cross_entropy(logits, target)
    logits = u @ u.T / tau_reg
    reg = F.cross_entropy(logits, torch.arange(u.shape[0], device=u.device))
    return {"sv": sv, "reg": reg, "sigma": sigma, "u": u}


def pmrl_loss(
    *modalities: torch.Tensor,
    tau_sv: float | torch.Tensor,
    tau_reg: float | torch.Tensor,
    reg_weight: float = 1.0,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """PMRL: per sample, cross-entropy of softmax(sigma / tau_sv) with target 0 (push
    the leading singular value of the D x k matrix of its modality vectors up), averaged,
    plus ``reg_weight`` x the contrastive loss over the leading singular vectors."""
    terms = pmrl_terms(*modalities, tau_sv=tau_sv, tau_reg=tau_reg, present=present)
    return terms["sv"] + reg_weight * terms["reg"]


def infonce_loss(
    anchor: torch.Tensor,
    other: torch.Tensor,
    temperature: float | torch.Tensor,
    label_smoothing: float = 0.0,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric CLIP loss: logits anchor . other / temperature, diagonal targets.
    ``present`` (B, 2) bool: only the samples that have both take part."""
    _check_rows(anchor, other)
    if anchor.shape[0] != other.shape[0]:
        raise ValueError("infonce_loss needs the same batch size for both inputs")
    mask = _present_mask(present, anchor.shape[0], 2)
    if mask is not None:
        keep = mask.all(1)
        anchor, other = anchor[keep], other[keep]
        if anchor.shape[0] == 0:
            return anchor.sum() * 0.0
    return _symmetric_ce(anchor @ other.T / temperature, label_smoothing)
