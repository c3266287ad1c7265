"""l2t.teach.saliency: saliency maps are |d logit_y / d x| maximised over channels."""

import torch
from torch import nn

from l2t.teach.saliency import centre_share, normalize_maps, saliency


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(x.flatten(1)), [x]


def test_saliency_of_a_linear_model_is_its_weight():
    torch.manual_seed(0)
    model = Linear().train()
    x = torch.randn(5, 3, 4, 4)
    y = torch.tensor([0, 1, 1, 0, 1])
    maps = saliency(model, x, y)
    assert maps.shape == (5, 4, 4)
    expected = model.fc.weight.detach().view(2, 3, 4, 4)[y].abs().amax(1)
    assert torch.allclose(maps, expected)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient left


def test_normalize_and_centre_share():
    maps = torch.zeros(2, 20, 20)
    maps[0, 8:12, 8:12] = 3.0  # all in the centre
    maps[1] = 1.0  # uniform
    n = normalize_maps(maps)
    assert float(n.max()) <= 1.0 and float(n[0].max()) == 1.0
    share = centre_share(maps, border=5)
    assert torch.allclose(share, torch.tensor([1.0, 100 / 400]))
