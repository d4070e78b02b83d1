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
    gram_loss_naive,
    gram_volumes_dots,
    gram_volumes_naive,
    infonce_loss_naive,
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
    assert ((u.unsqueeze(1) @ z).squeeze(1).sum(-1) > 0).all()
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
