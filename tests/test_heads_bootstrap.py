"""Bootstrap intervals over clips: they cover the true recall as often as they claim."""

from __future__ import annotations

import numpy as np

from mmprep.heads.bootstrap import clip_weights, interval, resampled_recall


def simulate(rng, n_clips, p_clip, queries_per_clip=2):
    """Per clip a hit probability; each of its queries hits independently."""
    groups = np.repeat(np.arange(n_clips), queries_per_clip)
    hits = rng.random(groups.size) < p_clip[groups]
    return hits[:, None], groups


def test_weights_draw_each_resample_with_replacement():
    w = clip_weights(50, n_boot=200, seed=1)
    assert w.shape == (200, 50) and (w.sum(1) == 50).all()
    assert 0.55 < (w > 0).mean() < 0.72  # 1 - 1/e of the clips appear in a resample
    np.testing.assert_array_equal(w, clip_weights(50, n_boot=200, seed=1))


def test_recall_interval_covers_the_true_value_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    n_clips, sims, covered = 200, 200, 0
    # clips differ in difficulty: the true R@K is the mean hit probability
    p_clip = rng.beta(2, 2, n_clips)
    truth = p_clip.mean()
    weights = clip_weights(n_clips, n_boot=500, seed=3)
    for _ in range(sims):
        hits, groups = simulate(rng, n_clips, p_clip)
        lo, hi = interval(resampled_recall(hits, groups, weights)[:, 0])
        covered += lo <= truth <= hi
    assert 0.90 <= covered / sims <= 0.99


def test_paired_difference_interval_covers_the_true_difference():
    """Two systems with a shared clip difficulty and a known difference of 0.05: the
    paired interval covers it about 95% of the time and is narrower than unpaired."""
    rng = np.random.default_rng(1)
    n_clips, sims, covered, widths = 300, 200, 0, []
    base = rng.beta(2, 2, n_clips)
    p_a, p_b = np.clip(base + 0.05, 0, 1), base
    truth = p_a.mean() - p_b.mean()
    weights = clip_weights(n_clips, n_boot=500, seed=5)
    for _ in range(sims):
        u = rng.random(n_clips)  # the same draw: a clip both find easy
        ha, hb = (u < p_a)[:, None], (u < p_b)[:, None]
        groups = np.arange(n_clips)
        diff = resampled_recall(ha, groups, weights) - resampled_recall(hb, groups, weights)
        lo, hi = interval(diff[:, 0])
        covered += lo <= truth <= hi
        widths.append(hi - lo)
        unpaired_lo, unpaired_hi = interval(resampled_recall(ha, groups, weights)[:, 0])
    assert 0.90 <= covered / sims <= 0.99
    assert np.mean(widths) < unpaired_hi - unpaired_lo  # one system alone is wider
