"""Weighted feature matching (Eq. 2-3), meta-networks, pairs, baselines."""

import pytest
import torch
import torch.nn.functional as F

from l2t.baselines import at_loss, attention, lwf_loss
from l2t.matching import Regressors, wfm_loss
from l2t.meta import What, Where
from l2t.pairs import CONFIGS, parse_pairs


def test_wfm_matches_hand_computed_value():
    # one pair, batch 1, 2 channels, 1x2 map: errors per channel are means of squared differences
    t = torch.tensor([[[[1.0, 2.0]], [[0.0, 4.0]]]])
    s = torch.tensor([[[[0.0, 0.0]], [[1.0, 1.0]]]])
    reg = Regressors([(0, 0)], [2], [2])
    with torch.no_grad():
        reg.convs[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        reg.convs[0].bias.zero_()
    errors = reg([s], [t])
    assert torch.allclose(errors[0], torch.tensor([[(1 + 4) / 2, (1 + 9) / 2]]))
    w = [torch.tensor([[0.25, 0.75]])]
    lam = [torch.tensor([2.0])]
    # beta * lambda * sum_c w_c e_c = 0.5 * 2 * (0.25*2.5 + 0.75*5)
    assert torch.isclose(wfm_loss(errors, w, lam, beta=0.5), torch.tensor(0.5 * 2 * (0.625 + 3.75)))


def test_uniform_weights_reduce_to_mse_and_zero_when_matched():
    torch.manual_seed(0)
    s, t = torch.randn(4, 3, 5, 5), torch.randn(4, 6, 5, 5)
    reg = Regressors([(0, 0)], [3], [6])
    errors = reg([s], [t])
    mse = torch.nn.functional.mse_loss(reg.convs[0](t), s)
    uniform = [torch.full((4, 3), 1 / 3)]
    assert torch.allclose(wfm_loss(errors, beta=1.0), mse)
    assert torch.allclose(wfm_loss(errors, uniform, [torch.ones(4)], beta=1.0), mse)
    assert wfm_loss(reg([reg.convs[0](t).detach()], [t]), beta=1.0) == 0


def test_source_is_resized_to_target_size():
    """An 8x8 source map is compared, bilinearly resized, with a 4x4 target map (Eq. 2 on unequal sizes)."""
    reg = Regressors([(0, 0)], [3], [2])
    s, t = torch.randn(2, 3, 8, 8), torch.randn(2, 2, 4, 4)
    errors = reg([s], [t])
    mapped = reg.convs[0](t)
    resized = torch.nn.functional.interpolate(s, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(resized, s.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2)))  # halving = 2x2 means
    assert torch.allclose(errors[0], (mapped - resized).pow(2).mean((2, 3)))
    assert not torch.allclose(errors[0], (mapped - s[..., ::2, ::2]).pow(2).mean((2, 3)))  # not a subsampling


def test_meta_networks_start_uniform_and_at_one():
    feats = [torch.randn(4, 16, 8, 8), torch.randn(4, 32, 4, 4)]
    pairs = [(0, 0), (1, 0), (1, 2)]
    w = What(pairs, [16, 32])(feats)
    assert [tuple(x.shape) for x in w] == [(4, 16), (4, 32), (4, 32)]
    assert all(torch.allclose(x, torch.full_like(x, 1 / x.shape[1])) for x in w)
    lam = Where(pairs, [16, 32])(feats)
    assert all(torch.equal(l, torch.ones(4)) for l in lam)


def test_what_weights_sum_to_one_and_where_is_bounded():
    torch.manual_seed(0)
    what, where = What([(0, 0)], [8]), Where([(0, 0)], [8])
    for p in list(what.parameters()) + list(where.parameters()):
        torch.nn.init.normal_(p, 0, 5)
    feats = [torch.randn(16, 8, 4, 4)]
    assert torch.allclose(what(feats)[0].sum(1), torch.ones(16))
    lam = where(feats)[0]
    assert (lam >= 0).all() and (lam <= 6).all() and lam.std() > 0


def test_pairs_parsing_and_configs():
    assert parse_pairs("4-0,9-1", num_source=15, num_target=5) == [(4, 0), (9, 1)]
    assert len(parse_pairs("all-to-all", "resnet32", "vgg9")) == 15
    assert parse_pairs("one-to-one", "resnet32", "vgg9") == [(4, 0), (9, 1), (14, 2)]
    assert len(CONFIGS[("resnet34", "resnet18")]["all-to-all"]) == 16
    with pytest.raises(ValueError, match="source index 15 .* 15 candidate feature maps"):
        parse_pairs("15-0", num_source=15, num_target=5)
    with pytest.raises(ValueError, match="target index 5 .* 5 candidate"):
        parse_pairs([(4, 5)], num_source=15, num_target=5)
    with pytest.raises(ValueError, match="form 'm-n,m-n'"):
        parse_pairs("4:0")
    with pytest.raises(ValueError, match="no ready-made"):
        parse_pairs("single", "resnet18", "vgg9")


def test_attention_transfer_and_lwf():
    f = torch.randn(2, 4, 6, 6)
    assert torch.allclose(attention(f).norm(dim=1), torch.ones(2))
    assert at_loss([f], [f * 3], [(0, 0)]) < 1e-9  # AT ignores scale
    assert at_loss([f], [torch.randn(2, 7, 6, 6)], [(0, 0)]) > 0
    logits = torch.randn(3, 5)
    assert lwf_loss(logits, logits).abs() < 1e-6 and lwf_loss(logits, -logits) > 0


def test_attention_transfer_value_is_beta_half_times_the_mean_squared_map_difference():
    """AT on fixed maps against the formula by hand: beta/2 * sum over pairs of mean_ij (a_s - a_t)^2, with
    a = vec(mean_c F^2) / ||vec(mean_c F^2)||, the source map resized to the target's size first."""
    s = torch.arange(2 * 3 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4) / 50
    t = torch.cos(torch.arange(2 * 5 * 2 * 2, dtype=torch.float64)).reshape(2, 5, 2, 2)

    def a(f):
        m = (f**2).mean(1).flatten(1)
        return m / m.norm(dim=1, keepdim=True)

    s_small = F.interpolate(s, size=(2, 2), mode="bilinear", align_corners=False)
    by_hand = 1e3 / 2 * (((a(s_small) - a(t)) ** 2).mean() + ((a(s) - a(s)) ** 2).mean())
    assert torch.allclose(at_loss([s, s], [t, s], [(0, 0), (1, 1)], beta=1e3), by_hand, rtol=1e-12)
    assert torch.allclose(at_loss([s], [t], [(0, 0)], beta=2.0) * 500, by_hand, rtol=1e-12)  # linear in beta


def test_lwf_value_is_t_squared_kl_of_the_source_from_the_target_head():
    """LwF on fixed logits: T^2 * mean over images of KL(q || p) = sum q (log q - log p), q the source's
    softened outputs, p the target head's; the direction matters (KL(p || q) is another number)."""
    target = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    source = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]], dtype=torch.float64)
    T = 2.0
    q, p = torch.softmax(source / T, 1), torch.softmax(target / T, 1)
    by_hand = T**2 * (q * (q.log() - p.log())).sum(1).mean()
    assert torch.allclose(lwf_loss(target, source, temperature=T), by_hand, rtol=1e-12)
    reverse = T**2 * (p * (p.log() - q.log())).sum(1).mean()
    assert not torch.allclose(by_hand, reverse, rtol=1e-3)


def test_transfer_graph_widths_follow_lambda_and_a_shared_scale():
    import matplotlib

    matplotlib.use("Agg")
    from l2t.plots import transfer_graph

    fig = transfer_graph([(4, 0), (9, 1)], [1.0, 2.0])
    widths = [line.get_linewidth() for line in fig.axes[0].lines]
    assert widths[1] > widths[0]
    shared = transfer_graph([(4, 0), (9, 1)], [1.0, 2.0], max_amount=4.0)
    assert [l.get_linewidth() for l in shared.axes[0].lines][1] < widths[1]


def test_lambda_grid_puts_each_pair_in_its_row_and_column_and_the_graph_has_a_width_key():
    import matplotlib

    matplotlib.use("Agg")
    from l2t.plots import lambda_grid, transfer_graph

    pairs = [(m, n) for m in (4, 9, 14) for n in range(5)]
    grid = lambda_grid(pairs, [10 * m + n for m, n in pairs])
    assert grid.shape == (3, 5) and grid[1, 3] == 93 and grid[2, 0] == 140
    assert len(matplotlib.pyplot.gcf().axes) == 2  # the heat map and its colorbar
    fig = transfer_graph(pairs[:2], [1.0, 3.0])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "largest: $\\lambda$ = 3.00",
        "smallest: $\\lambda$ = 1.00",
    ]  # the drawn extremes
    key = transfer_graph(pairs[:2], [1.0, 3.0], max_amount=4.0).axes[0].get_legend().get_texts()
    assert [t.get_text().split(":")[0] for t in key] == ["scale", "largest", "smallest"]
    same = transfer_graph(pairs[:2], [1.0, 1.0]).axes[0].get_legend().get_texts()
    assert [t.get_text() for t in same] == ["every pair: $\\lambda$ = 1.00"]
    scaled = transfer_graph(pairs[:2], [0.5, 1.0], max_amount=1.0).axes[0].get_legend().get_texts()
    assert [t.get_text().split(":")[0] for t in scaled] == ["largest", "smallest"]  # the scale is the largest
