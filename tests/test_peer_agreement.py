"""archdal's strategies give the peer libraries' answers on the same inputs.

Peers, test-only dependencies listed in settings.ini's dev_requirements: decile-distil 0.2.0 (DISTIL),
baal 2.1.0 (BAAL) and scikit-activeml 1.0.1. A test is skipped when its peer is not installed. The adapters that let the peers
run on archdal's inputs (a table-lookup network for DISTIL, BAAL's [N, C, S] layout) are in
bench/peers.py, shared with the benchmark.

* entropy, margin, least confidence, BALD and core-set (small pools) pick the same positions, in the same
  order, where no near-ties exist (checked, not assumed);
* Gal et al.'s (2017) scores of MC-dropout samples: mean STD is BAAL's `Variance` heuristic with the mean
  of the square roots as its reduction (same scores and picks); Max Entropy, archdal's entropy of the
  MC-averaged predictive, picks what BAAL's `Entropy` (which averages [N, C, S] samples itself) and
  DISTIL's `EntropySamplingDropout` pick; variation ratios has no peer in BAAL 2.1.0 or DISTIL 0.2.0, so it
  is checked against a direct count with `scipy.stats.mode`;
* on a larger pool core-set reaches the same coverage radius as DISTIL's (max over the pool of the distance
  to the nearest labelled or chosen point) within 1e-4 relative;
* TypiClust picks the points scikit-activeml's `TypiClust` picks, in the same order, on blobs where both
  k-means find the same clusters (its typicality, like archdal's, is over all of a cluster's members);
* EPIG gives BAAL's `EPIG` scores (same candidates, same targets) and the same picks;
* DFAL's DeepFool perturbation, with DISTIL's settings (no overshoot, the same iterations), has the norm of
  DISTIL's `AdversarialDeepFool` on a two-class network, and the same picks. With more classes DISTIL 0.2.0
  steps towards the last class other than the predicted one rather than the nearest (its running minimum is
  never updated), so only two classes, where both choose the one other class, make a like-for-like check;
* BADGE starts at DISTIL's first point and draws the next by the k-means++ D² law computed from DISTIL's
  own materialised gradient embeddings, as DISTIL's seeding does (chi-square tests, fixed seeds).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from peers import baal_layout, distil_deepfool, distil_strategy  # noqa: E402

from archdal.strategies import (QueryInputs, bald_score, deepfool_distances, dfal, entropy_score,  # noqa: E402
                                epig_score, least_confidence_score, margin_score, mean_std_score, nearest_centres,
                                query, top_scores, var_ratios_score)

SCORES = {"entropy": entropy_score, "margin": margin_score, "least_confidence": least_confidence_score}


@pytest.fixture(scope="module")
def distil():
    threads = torch.get_num_threads()
    module = pytest.importorskip("distil.active_learning_strategies")
    torch.set_num_threads(threads)  # importing DISTIL changes torch's thread count (through a dependency)
    return module


@pytest.fixture(scope="module")
def baal():
    return pytest.importorskip("baal.active.heuristics")


@pytest.fixture(scope="module")
def skactiveml():
    return pytest.importorskip("skactiveml.pool", reason="scikit-activeml is not installed (pip install scikit-activeml)")


def make_pool(n, c=10, d=32, s=12, m=20, seed=0, dtype=torch.float32):
    "logits (N x C), MC logits (S x N x C), features (N x D) and labelled features (M x D)."
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(n, c, generator=g, dtype=dtype)
    mc_logits = logits + torch.randn(s, n, c, generator=g, dtype=dtype)
    features = torch.randn(n, d, generator=g, dtype=dtype)
    labelled = torch.randn(m, d, generator=g, dtype=dtype)
    return logits, mc_logits, features, labelled


def archdal_inputs(logits, mc_logits, features, labelled):
    return QueryInputs(probs=torch.softmax(logits, dim=1), mc_probs=torch.softmax(mc_logits, dim=2),
                       embeddings=features, labelled_embeddings=labelled)


def assert_no_near_ties(score, budget, gap=1e-6):
    "The budget + 1 highest scores are `gap` apart (ten times float32 rounding near 1): no library can reorder them."
    top = score.double().sort(descending=True).values[:budget + 1]
    assert (top[:-1] - top[1:]).min() > gap, "near-tie: choose another seed"


def picks(x):
    return [int(i) for i in (x.tolist() if hasattr(x, "tolist") else x)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence"])
def test_uncertainty_same_as_distil(name, seed, distil):
    logits, mc_logits, features, labelled = make_pool(1000, seed=seed)
    inputs, budget = archdal_inputs(logits, mc_logits, features, labelled), 50
    assert_no_near_ties(SCORES[name](inputs.probs), budget)
    cls = {"entropy": distil.EntropySampling, "margin": distil.MarginSampling,
           "least_confidence": distil.LeastConfidence}[name]
    ours = picks(query(name, inputs, budget, torch.Generator().manual_seed(0)))
    assert ours == picks(distil_strategy(cls, logits, features).select(budget))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence"])
def test_uncertainty_same_as_baal(name, seed, baal):
    logits, mc_logits, features, labelled = make_pool(1000, seed=seed)
    inputs, budget = archdal_inputs(logits, mc_logits, features, labelled), 50
    assert_no_near_ties(SCORES[name](inputs.probs), budget)
    heuristic = {"entropy": baal.Entropy, "margin": baal.Margin, "least_confidence": baal.Certainty}[name]()
    ours = picks(query(name, inputs, budget, torch.Generator().manual_seed(0)))
    assert ours == picks(heuristic(inputs.probs.numpy())[:budget])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bald_same_as_peers(seed, distil, baal):
    logits, mc_logits, features, labelled = make_pool(1000, seed=seed)
    inputs, budget = archdal_inputs(logits, mc_logits, features, labelled), 50
    assert_no_near_ties(bald_score(inputs.mc_probs), budget)
    ours = picks(query("bald", inputs, budget, torch.Generator().manual_seed(0)))
    assert ours == picks(baal.BALD()(baal_layout(inputs.mc_probs))[:budget])
    theirs = distil_strategy(distil.BALDDropout, logits, features, mc_logits=mc_logits, n_drop=len(mc_logits))
    assert ours == picks(theirs.select(budget))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_std_same_as_baals_variance_with_a_std_reduction(seed, baal):
    logits, mc_logits, features, labelled = make_pool(1000, seed=seed)
    inputs, budget = archdal_inputs(logits, mc_logits, features, labelled), 50
    ours_score = mean_std_score(inputs.mc_probs)
    assert_no_near_ties(ours_score, budget)
    heuristic = baal.Variance(reduction=lambda var: np.sqrt(var).mean(axis=1))  # var over samples, per class
    ranks, theirs_score = heuristic.get_ranks(baal_layout(inputs.mc_probs))
    np.testing.assert_allclose(ours_score.numpy(), theirs_score, rtol=1e-5, atol=1e-7)
    ours = picks(query("mean_std", inputs, budget, torch.Generator().manual_seed(0)))
    assert ours == picks(ranks[:budget])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_max_entropy_same_as_peers(seed, baal, distil):
    "Max Entropy = archdal's entropy on the MC-averaged predictive; the peers average the samples themselves."
    logits, mc_logits, features, labelled = make_pool(1000, seed=seed)
    mc_probs, budget = torch.softmax(mc_logits, dim=2), 50
    inputs = QueryInputs(probs=mc_probs.mean(dim=0), mc_probs=mc_probs)
    assert_no_near_ties(entropy_score(inputs.probs), budget)
    ours = picks(query("entropy", inputs, budget, torch.Generator().manual_seed(0)))
    assert ours == picks(baal.Entropy()(baal_layout(mc_probs))[:budget])
    theirs = distil_strategy(distil.EntropySamplingDropout, logits, features, mc_logits=mc_logits, n_drop=len(mc_logits))
    assert ours == picks(theirs.select(budget))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_var_ratios_same_as_a_mode_count(seed):
    from scipy.stats import mode
    logits, mc_logits, features, labelled = make_pool(1000, seed=seed)
    inputs, budget = archdal_inputs(logits, mc_logits, features, labelled), 50
    predicted = inputs.mc_probs.argmax(dim=2).numpy()                 # S x N classes
    reference = 1 - mode(predicted, axis=0).count / len(predicted)
    np.testing.assert_allclose(var_ratios_score(inputs.mc_probs).numpy(), reference, atol=1e-6)
    ours = picks(query("var_ratios", inputs, budget, torch.Generator().manual_seed(0)))
    assert ours == picks(np.argsort(-reference, kind="stable")[:budget])   # ties (most points): pool order


@pytest.mark.parametrize("seed", range(4))
def test_coreset_same_as_distil_on_small_pools(seed, distil):
    logits, mc_logits, features, labelled = make_pool(400, d=16, m=10, seed=seed, dtype=torch.float64)
    inputs = archdal_inputs(logits, mc_logits, features, labelled)
    ours = picks(query("coreset", inputs, 40, torch.Generator().manual_seed(0)))
    assert ours == picks(distil_strategy(distil.CoreSet, logits, features, labelled).select(40))


def coverage_radius(features, labelled, chosen):
    "max over the pool of the distance to the nearest labelled or chosen point, in float64."
    x = features.double()
    return float(nearest_centres(x, torch.cat([labelled.double(), x[chosen]]))[0].max().sqrt())


def test_coreset_same_coverage_radius_on_a_larger_pool(distil):
    logits, mc_logits, features, labelled = make_pool(20_000, d=64, m=50, seed=3)
    inputs, budget = archdal_inputs(logits, mc_logits, features, labelled), 300
    ours = picks(query("coreset", inputs, budget, torch.Generator().manual_seed(0)))
    theirs = picks(distil_strategy(distil.CoreSet, logits, features, labelled).select(budget))
    r_ours, r_theirs = coverage_radius(features, labelled, ours), coverage_radius(features, labelled, theirs)
    assert abs(r_ours - r_theirs) <= 1e-4 * r_theirs, (r_ours, r_theirs)


def d2_law(embeddings, first):
    "k-means++ probabilities of the second pick given the first, from explicit embeddings (float64)."
    e = torch.as_tensor(embeddings, dtype=torch.float64)
    d2 = ((e - e[first]) ** 2).sum(dim=1)
    return (d2 / d2.sum()).numpy()


def chi_square_p(draws, law):
    from scipy.stats import chisquare
    counts = np.bincount(draws, minlength=len(law))
    support = law > 0
    assert counts[~support].sum() == 0, "a point of probability 0 was drawn"
    return chisquare(counts[support], law[support] * len(draws)).pvalue


def test_badge_follows_the_d2_law_of_distils_gradient_embeddings(distil):
    from distil.active_learning_strategies.badge import init_centers
    logits, mc_logits, features, labelled = make_pool(8, c=3, d=4, seed=5)
    inputs = archdal_inputs(logits, mc_logits, features, labelled)
    theirs = distil_strategy(distil.BADGE, logits, features)
    embeddings = theirs.get_grad_embedding(theirs.unlabeled_x, bias_grad=False).numpy()   # DISTIL's, N x C·D
    first = int(np.argmax(np.linalg.norm(embeddings, axis=1)))
    law = d2_law(embeddings, first)
    assert law.max() < 0.9 and (law > 0.01).sum() >= 4                    # a law worth testing
    generator = torch.Generator().manual_seed(0)
    ours = np.array([picks(query("badge", inputs, 2, generator)) for _ in range(3000)])
    assert (ours[:, 0] == first).all()
    assert chi_square_p(ours[:, 1], law) > 1e-3
    np.random.seed(0)                                                     # DISTIL draws from numpy's global RNG
    distils = np.array([picks(init_centers(embeddings, 2, "cpu")) for _ in range(1500)])
    assert (distils[:, 0] == first).all()
    assert chi_square_p(distils[:, 1], law) > 1e-3


def test_badge_first_pick_same_as_distil_on_a_larger_pool(distil):
    logits, mc_logits, features, labelled = make_pool(3000, seed=6)
    theirs = distil_strategy(distil.BADGE, logits, features)
    embeddings = theirs.get_grad_embedding(theirs.unlabeled_x, bias_grad=False).numpy()
    ours = query("badge", archdal_inputs(logits, mc_logits, features, labelled), 1, torch.Generator().manual_seed(0))
    assert picks(ours) == [int(np.argmax(np.linalg.norm(embeddings, axis=1)))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_typiclust_same_as_skactiveml(seed, skactiveml):
    """Eight well-separated Gaussian blobs of decreasing size in 16-d, two labelled points in the two largest and a
    budget of 6: |L| + B = 8 clusters, the blobs, for both libraries; each labels the most typical point of the six
    uncovered blobs, largest first (scikit-activeml's only rule; archdal's "fewest labels, then largest" agrees)."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.arange(60, 20, -5)
    x = (10 * torch.randn(8, 16, generator=g, dtype=torch.float64)).repeat_interleave(sizes, 0) \
        + torch.randn(int(sizes.sum()), 16, generator=g, dtype=torch.float64)
    labelled_at = [0, 60]                                         # one point of each of the two largest blobs
    pool_at = [i for i in range(len(x)) if i not in labelled_at]
    ours = query("typiclust", QueryInputs(embeddings=x[pool_at], labelled_embeddings=x[labelled_at]), 6,
                 torch.Generator().manual_seed(seed))
    X = np.concatenate([x[pool_at].numpy(), x[labelled_at].numpy()])
    y = np.full(len(X), np.nan)
    y[-2:] = [0, 1]
    theirs = skactiveml.TypiClust(k=20, random_state=seed).query(X, y, batch_size=6)
    assert picks(ours) == picks(theirs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epig_same_as_baal(seed, baal):
    "300 candidates, 40 targets drawn from them, 12 MC samples of 5 classes: BAAL's EPIG scores and top 10."
    _, mc_logits, _, _ = make_pool(300, c=5, s=12, seed=seed)
    mc = torch.softmax(mc_logits, dim=2)
    targets = mc[:, torch.randperm(300, generator=torch.Generator().manual_seed(seed))[:40]]
    ours = epig_score(mc, targets)
    theirs = baal.EPIG().compute_score(baal_layout(mc), baal_layout(targets))
    assert np.allclose(ours.numpy(), theirs, atol=1e-5), np.abs(ours.numpy() - theirs).max()
    assert_no_near_ties(ours, 10)
    assert picks(top_scores(ours, 10)) == picks(np.argsort(-theirs, kind="stable")[:10])


def binary_net(seed):
    "A small random non-linear two-class network on 6 inputs (eval mode: the rows are independent)."
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_dfal_same_as_distils_deepfool_on_two_classes(seed, distil):
    """30 random inputs: with no overshoot and 50 iterations, archdal's batched DeepFool norm equals the square root
    of DISTIL's per-point `cal_dis`, and DFAL picks what DISTIL's `select` picks, in the same order."""
    net = binary_net(seed)
    x = 2 * torch.randn(30, 6, generator=torch.Generator().manual_seed(seed))
    ours = deepfool_distances(net, x, max_iter=50, overshoot=0.0, batch=8)
    peer = distil_deepfool(net, x, max_iter=50)
    theirs = torch.tensor([float(peer.cal_dis(x[i])) for i in range(len(x))], dtype=torch.float64).sqrt()
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6), (ours - theirs).abs().max()
    assert_no_near_ties(-ours, 8, gap=1e-4)
    assert picks(dfal(QueryInputs(pool_x=x, model=net), 8, torch.Generator(), overshoot=0.0)) == picks(peer.select(8))
