"""The fast losses against deliberately naive references: values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmprep.heads.losses import (
    det_adjugate,
    gram_loss,
    gram_volumes,
    infonce_loss,
    pmrl_loss,
    pmrl_terms,
    singular_spectrum,
    sym_eig,
)
from mmprep.heads.reference import (
    gram_loss_masked_naive,
    gram_loss_naive,
    gram_volumes_dots,
    gram_volumes_naive,
    infonce_loss_naive,
    pmrl_loss_masked_svd,
    pmrl_loss_svd,
)

f64 = torch.float64


def unit(*shape, dtype=f64, gen=None):
    return F.normalize(torch.randn(*shape, dtype=dtype, generator=gen), dim=-1)


def correlated(b, d, k, seed, noise=0.6):
    """k unit modalities sharing a latent (so no sign tie in PMRL's u)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(b, d, dtype=f64, generator=g)
    return [F.normalize(base + noise * torch.randn(b, d, dtype=f64, generator=g), dim=-1)
            for _ in range(k)]


def grads(loss, inputs):
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_gram_volumes_match_explicit_determinants(k):
    g = torch.Generator().manual_seed(k)
    a = unit(6, 12, gen=g)
    others = [unit(9, 12, gen=g) for _ in range(k - 1)]
    ref = gram_volumes_naive(a, *others)
    assert ref.shape == (6, 9)
    fast = gram_volumes(a, *others)  # no autograd: factorised path
    torch.testing.assert_close(fast, ref, atol=1e-12, rtol=0)
    tracked = gram_volumes(a.clone().requires_grad_(), *others)  # autograd path
    torch.testing.assert_close(tracked.detach(), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(gram_volumes_dots(a, *others), ref, atol=1e-12, rtol=0)


def test_gram_volumes_float32_within_1e5_of_float64_reference():
    g = torch.Generator().manual_seed(0)
    a = unit(64, 256, gen=g)
    others = [unit(64, 256, gen=g) for _ in range(3)]
    ref = gram_volumes_naive(a, *others)
    out = gram_volumes(a.float(), *[o.float() for o in others])
    assert out.dtype == torch.float32
    assert (out.double() - ref).abs().max() < 1e-5


def test_gram_k2_is_sine_of_angle():
    a, b = unit(5, 7), unit(5, 7)
    cos = a @ b.T
    torch.testing.assert_close(gram_volumes(a, b), (1 - cos**2).sqrt(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gram_loss_values_and_gradients(k, smoothing):
    g = torch.Generator().manual_seed(10 + k)
    inputs = [unit(7, 10, gen=g).requires_grad_() for _ in range(k)]
    ours = gram_loss(*inputs, temperature=0.2, label_smoothing=smoothing)
    ref = gram_loss_naive(*inputs, temperature=0.2, label_smoothing=smoothing)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    for x, y in zip(grads(ours, inputs), grads(ref, inputs)):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=1e-8)


def test_gram_learnable_temperature_gets_a_gradient():
    a, b, c = unit(5, 8), unit(5, 8), unit(5, 8)
    tau = torch.tensor(0.1, dtype=f64, requires_grad=True)
    (g_tau,) = grads(gram_loss(a, b, c, temperature=tau), [tau])
    assert torch.isfinite(g_tau) and g_tau != 0


@pytest.mark.parametrize("k", [2, 3, 5])
def test_gram_zero_volume_has_finite_gradients(k):
    # every tuple degenerate: identical vectors, then two "others" coinciding
    x = unit(4, 8)
    same = [x.clone().requires_grad_() for _ in range(k)]
    vol = gram_volumes(*same)
    assert torch.allclose(vol.diagonal(), torch.zeros(4, dtype=f64), atol=1e-6)
    for grad in grads(gram_loss(*same, temperature=0.05), same):
        assert torch.isfinite(grad).all()
    if k >= 3:
        a = unit(4, 8).requires_grad_()
        o = unit(4, 8)
        pair = [o.clone().requires_grad_() for _ in range(k - 1)]  # singular H
        torch.testing.assert_close(gram_volumes(a, *pair).detach(),
                                   torch.zeros(4, 4, dtype=f64), atol=1e-6, rtol=0)
        torch.testing.assert_close(gram_volumes(a.detach(), *[p.detach() for p in pair]),
                                   torch.zeros(4, 4, dtype=f64), atol=1e-6, rtol=0)
        for grad in grads(gram_loss(a, *pair, temperature=0.05), [a, *pair]):
            assert torch.isfinite(grad).all()


def test_gram_near_zero_volume_gradients_are_finite_and_bounded():
    x = unit(6, 16)
    inputs = [F.normalize(x + 1e-9 * torch.randn_like(x), dim=-1).requires_grad_()
              for _ in range(3)]
    for grad in grads(gram_volumes(*inputs).sum(), inputs):
        assert torch.isfinite(grad).all()
        assert grad.abs().max() < 1e3


def test_det_adjugate_matches_det_and_inverse():
    g = torch.Generator().manual_seed(3)
    for m in range(1, 6):
        x = torch.randn(8, m, 12, dtype=f64, generator=g)
        h = x @ x.mT
        det, adj = det_adjugate(h)
        torch.testing.assert_close(det, torch.det(h))
        torch.testing.assert_close(adj, torch.det(h)[:, None, None] * torch.linalg.inv(h))


def test_sym_eig_gradient_matches_autograd_eigh_when_separated():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 4, 4, dtype=f64, generator=g)
    a = (x + x.mT).requires_grad_()
    w_lam = torch.randn(5, 4, dtype=f64, generator=g)
    w_vec = torch.randn(5, 4, 4, dtype=f64, generator=g)

    def objective(fn):
        lam, vec = fn(a)
        vec = vec * torch.sign(vec[..., :1, :])  # eigenvector sign is arbitrary
        return (lam * w_lam).sum() + (vec * w_vec).sum()

    ours = grads(objective(sym_eig), [a])[0]
    ref = grads(objective(torch.linalg.eigh), [a])[0]
    torch.testing.assert_close(ours, 0.5 * (ref + ref.mT), atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_pmrl_matches_per_sample_svd(k):
    inputs = [t.requires_grad_() for t in correlated(6, 10, k, seed=k)]
    kw = dict(tau_sv=0.3, tau_reg=0.1, reg_weight=0.7)
    ours = pmrl_loss(*inputs, **kw)
    ref = pmrl_loss_svd(*inputs, per_sample=True, **kw)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    for x, y in zip(grads(ours, inputs), grads(ref, inputs)):
        torch.testing.assert_close(x, y, atol=1e-8, rtol=1e-6)
    batched = pmrl_loss_svd(*[t.detach() for t in inputs], **kw)
    torch.testing.assert_close(ours.detach(), batched, atol=1e-12, rtol=0)


def test_pmrl_spectrum_and_sign_convention():
    inputs = correlated(8, 12, 3, seed=1)
    sigma, u = singular_spectrum(*inputs)
    z = torch.stack(inputs, -1)
    torch.testing.assert_close(sigma, torch.linalg.svdvals(z), atol=1e-12, rtol=0)
    torch.testing.assert_close((sigma**2).sum(-1), torch.full((8,), 3.0, dtype=f64))
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(8, dtype=f64))
    assert ((u.unsqueeze(1) @ z).squeeze(1)[:, 0] > 0).all()  # tied to the first modality
    # flipping every input flips u: it follows its vectors, not an arbitrary sign
    _, u_neg = singular_spectrum(*[-t for t in inputs])
    torch.testing.assert_close(u_neg, -u)


@pytest.mark.parametrize("case", ["identical", "orthogonal", "near_equal"])
def test_pmrl_degenerate_spectra_have_finite_gradients(case):
    if case == "identical":  # sigma = (sqrt k, 0, 0): zero singular values
        x = unit(4, 8)
        inputs = [x.clone() for _ in range(3)]
    elif case == "orthogonal":  # sigma all equal to 1: leading vector undefined
        eye = torch.eye(8, dtype=f64)
        inputs = [eye[a:a + 1].repeat(4, 1) for a in range(3)]
    else:
        eye = torch.eye(8, dtype=f64)
        inputs = [F.normalize(eye[a:a + 1].repeat(4, 1) + 1e-7 * unit(4, 8), dim=-1)
                  for a in range(3)]
    inputs = [t.requires_grad_() for t in inputs]
    terms = pmrl_terms(*inputs, tau_sv=0.1, tau_reg=0.05)
    loss = terms["sv"] + terms["reg"]
    assert torch.isfinite(loss)
    for grad in grads(loss, inputs):
        assert torch.isfinite(grad).all()


def test_infonce_matches_loop():
    g = torch.Generator().manual_seed(5)
    a, b = unit(6, 9, gen=g).requires_grad_(), unit(6, 9, gen=g).requires_grad_()
    ours = infonce_loss(a, b, temperature=0.07)
    ref = infonce_loss_naive(a, b, temperature=0.07)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    for x, y in zip(grads(ours, [a, b]), grads(ref, [a, b])):
        torch.testing.assert_close(x, y, atol=1e-12, rtol=0)


def test_bad_inputs_are_rejected():
    a = unit(4, 8)
    with pytest.raises(ValueError):
        gram_volumes(a)
    with pytest.raises(ValueError):
        gram_volumes(a, unit(4, 7))
    with pytest.raises(ValueError):
        gram_loss(a, unit(5, 8), temperature=0.1)
    with pytest.raises(ValueError):
        pmrl_loss(a, tau_sv=0.1, tau_reg=0.1)
    with pytest.raises(ValueError):
        infonce_loss(a, unit(3, 8), temperature=0.1)


# ---------------------------------------------------------------- sign rule, k = 2
def test_pmrl_k2_sign_is_tied_to_the_first_modality_under_negation():
    """For k = 2 with a negative cosine the old rule (sum_a u . z_a >= 0) summed to
    exactly zero and rounding chose the sign; now u . z_1 > 0 always."""
    g = torch.Generator().manual_seed(3)
    for dtype in (f64, torch.float32):
        z1, z2 = unit(480, 16, dtype=dtype, gen=g), unit(480, 16, dtype=dtype, gen=g)
        for other in (z2, -z2):
            _, u = singular_spectrum(z1, other)
            assert ((u * z1).sum(-1) > 0).all()
            # never the sum rule's tie: u . z1 is far from 0 for every pair
            assert ((u * z1).sum(-1) > 0.5).all()
        # the closed form for k = 2: u = (z1 + sign(z1 . b) b) / |...|, for b = z2 and -z2
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        for b in (z2, -z2):
            _, u = singular_spectrum(z1, b)
            sign = torch.sign((z1 * b).sum(-1, keepdim=True))
            torch.testing.assert_close(u, F.normalize(z1 + sign * b, dim=-1), atol=tol, rtol=0)
        # negating the first modality flips u (it follows z1)
        _, u_flip = singular_spectrum(-z1, z2)
        _, u_pos = singular_spectrum(z1, z2)
        torch.testing.assert_close(u_flip, -u_pos, atol=tol, rtol=0)


def test_pmrl_sign_falls_back_to_the_next_modality_when_orthogonal():
    eye = torch.eye(4, dtype=f64)
    # z1 orthogonal to z2 = z3: the leading vector lies along z2, orthogonal to z1
    z1, z2 = eye[:1].repeat(2, 1), eye[1:2].repeat(2, 1)
    _, u = singular_spectrum(z1, -z2, -z2)
    torch.testing.assert_close(u, -z2)  # u . z_2 > 0 with z_2 = -e2


# ---------------------------------------------------------------- missing modalities
def masks(b, k, seed):
    g = torch.Generator().manual_seed(seed)
    present = torch.rand(b, k, generator=g) > 0.3
    present[0] = True  # at least one complete sample
    present[1, 1:] = False  # anchor alone
    present[2, 0] = False  # no anchor
    return present


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("stop", [False, True])
def test_masked_gram_loss_matches_per_pair_determinants(k, stop):
    inputs = [t.requires_grad_() for t in correlated(9, 7, k, seed=10 + k)]
    present = masks(9, k, seed=k)
    kw = dict(temperature=0.2, label_smoothing=0.1)
    ours = gram_loss(*inputs, present=present, stop_gradient=stop, **kw)
    ref = gram_loss_masked_naive(*inputs, present=present, **kw)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    if not stop:
        for x, y in zip(grads(ours, inputs), grads(ref, inputs)):
            torch.testing.assert_close(x, y, atol=1e-8, rtol=1e-6)
    # complete masks give the unmasked loss
    full = gram_loss(*inputs, present=torch.ones(9, k, dtype=torch.bool), **kw)
    torch.testing.assert_close(full, gram_loss(*inputs, **kw), atol=1e-12, rtol=0)


def test_masked_gram_volume_is_the_volume_of_the_vectors_present():
    t, v, a = correlated(5, 6, 3, seed=2)
    present = torch.tensor([[True, False]] * 5)  # no audio anywhere
    vol = gram_volumes(t, v, a, others_present=present)
    torch.testing.assert_close(vol, gram_volumes(t, v), atol=1e-12, rtol=0)
    with torch.no_grad():  # the factorised evaluation path agrees
        torch.testing.assert_close(gram_volumes(t, v, a, others_present=present), vol)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_masked_pmrl_matches_per_sample_svd_of_the_columns_present(k):
    inputs = [t.requires_grad_() for t in correlated(10, 8, k, seed=20 + k)]
    present = masks(10, k, seed=k + 5)
    kw = dict(tau_sv=0.3, tau_reg=0.1, reg_weight=0.7)
    ours = pmrl_loss(*inputs, present=present, **kw)
    ref = pmrl_loss_masked_svd(*inputs, present=present, **kw)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    for x, y in zip(grads(ours, inputs), grads(ref, inputs)):
        torch.testing.assert_close(x, y, atol=1e-7, rtol=1e-6)


def test_masked_infonce_uses_the_samples_with_both():
    g = torch.Generator().manual_seed(6)
    a, b = unit(8, 5, gen=g).requires_grad_(), unit(8, 5, gen=g).requires_grad_()
    present = torch.ones(8, 2, dtype=torch.bool)
    present[[1, 4], 1] = False
    present[6, 0] = False
    keep = present.all(1)
    ours = infonce_loss(a, b, 0.1, present=present)
    ref = infonce_loss_naive(a[keep], b[keep], temperature=0.1)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    gb = grads(ours, [b])[0]
    assert (gb[~keep] == 0).all() and (gb[keep] != 0).any()


def test_stop_gradient_zeroes_the_gathered_side():
    """The GRAM authors' update: anchor->tuple moves only the anchors, tuple->anchor
    only the tuples; so the anchor gradient is half that of the anchor->tuple CE."""
    t, v, a = [x.requires_grad_() for x in correlated(6, 7, 3, seed=4)]
    tau, target = 0.1, torch.arange(6)
    loss = gram_loss(t, v, a, temperature=tau, label_smoothing=0.1, stop_gradient=True)
    gt, gv, ga = grads(loss, [t, v, a])
    fwd = F.cross_entropy(-gram_volumes(t, v.detach(), a.detach()) / tau, target,
                          label_smoothing=0.1)
    bwd = F.cross_entropy(-gram_volumes(t.detach(), v, a).T / tau, target,
                          label_smoothing=0.1)
    torch.testing.assert_close(gt, 0.5 * grads(fwd, [t])[0])
    bv, ba = grads(bwd, [v, a])
    torch.testing.assert_close(gv, 0.5 * bv)
    torch.testing.assert_close(ga, 0.5 * ba)
    # same value as the full loss, different gradient
    full = gram_loss(t, v, a, temperature=tau, label_smoothing=0.1)
    torch.testing.assert_close(loss, full)
    assert not torch.allclose(gt, grads(full, [t])[0])
