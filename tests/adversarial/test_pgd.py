"""The one torch L∞ PGD (``attacks.pgd.pgd_linf``), its registered attack ``pgd-torch``, and the attack factories'
defaults (``eps=None`` means the default budget; minimum-norm attacks record ``eps: null``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from fakescope.adversarial import create_attack, list_attacks, run_attack
from fakescope.adversarial.attacks.base import L2_EPS, LINF_EPS
from fakescope.adversarial.attacks.pgd import descent_direction, pgd_linf, project_linf, uniform_noise
from fakescope.models import Net
from tests.helpers.adversarial import structured


def _linear(w: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective x ↦ <w, x> per image."""
    return lambda x: (x * w).flatten(1).sum(1)


def test_pgd_linf_stays_in_budget_and_descends() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 3, 8, 8, generator=g)
    w = torch.randn(1, 3, 8, 8, generator=g)
    eps = 4 / 255
    x = pgd_linf(_linear(w), x0, eps, steps=10, generator=torch.Generator().manual_seed(1))
    assert (x - x0).abs().max() <= eps + 1e-7 and x.min() >= 0 and x.max() <= 1
    # a linear objective is minimised at x0 - eps·sign(w) (clipped to [0, 1]): 10 steps of 2.5·eps/10 get there
    assert torch.allclose(x, (x0 - eps * w.sign()).clamp(0, 1), atol=1e-6)
    assert not x.requires_grad


def test_pgd_linf_fgsm_step_and_seeded_start() -> None:
    x0 = torch.full((2, 3, 4, 4), 0.5)
    w = torch.ones(1, 3, 4, 4)
    fgsm = pgd_linf(_linear(w), x0, 0.1, steps=1, step_size=0.1, random_start=False)
    assert torch.allclose(fgsm, torch.full_like(x0, 0.4))
    runs = [pgd_linf(_linear(w), x0, 0.1, steps=0, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], x0)
    assert torch.equal(runs[0], (x0 + uniform_noise(x0, 0.1, torch.Generator().manual_seed(3))).clamp(0, 1))


def test_pgd_linf_point_and_perturbation_iterates_differ_at_the_box() -> None:
    # x0 = 1, one step up then one down. The point iterate is clipped to 1, then moves to 1 - α; the perturbation
    # iterate keeps δ = α outside the box, so the step down only brings δ back to 0 and the point stays at 1.
    x0 = torch.ones(1, 1, 1, 1)
    seen: dict[str, list[float]] = {}
    for mode in ("point", "perturbation"):
        signs = iter([-1.0, 1.0])  # minimise -x (go up), then x (go down)
        seen[mode] = []
        pgd_linf(lambda x, s=signs: x.flatten(1).sum(1) * next(s), x0, 0.1, steps=2, step_size=0.05,
                 random_start=False, iterate=mode, on_step=lambda x, m=mode: seen[m].append(float(x)) or False)
    assert seen["point"] == pytest.approx([1.0, 0.95]) and seen["perturbation"] == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="iterate"):
        pgd_linf(lambda x: x.flatten(1).sum(1), x0, 0.1, 1, iterate="delta")


def test_pgd_linf_on_step_stops_the_run() -> None:
    calls = []
    pgd_linf(_linear(torch.ones(1, 3, 2, 2)), torch.rand(2, 3, 2, 2), 0.1, steps=10,
             on_step=lambda x: calls.append(1) or len(calls) == 3)
    assert len(calls) == 3


def test_descent_direction_balances_terms() -> None:
    x = torch.rand(2, 1, 2, 2)
    big, small = torch.tensor([1000.0, 0, 0, 0]).view(1, 1, 2, 2), torch.tensor([0, 0.001, 0, 0]).view(1, 1, 2, 2)
    g = descent_direction(lambda t: ((t * big).flatten(1).sum(1), (t * small).flatten(1).sum(1)), x, (1.0, 2.0))
    assert torch.allclose(g[:, 0].flatten(1), torch.tensor([[1.0, 2.0, 0, 0]] * 2))  # unit gradients, weighted
    none = descent_direction(lambda t: (torch.zeros(len(t)),), x)
    assert none is None  # nothing depends on x: no direction, the step leaves x where it is
    assert torch.equal(project_linf(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.9, 0.05, 0.45]), 0.1),
                       torch.tensor([1.0, 0.0, 0.5]))


def test_pgd_torch_matches_art_pgd(victim: Net) -> None:
    x, y = structured(40, seed=8)
    rates = {}
    for name in ("pgd", "pgd-torch"):
        adv, st = run_attack(victim, x, y, name, eps=8 / 255, seed=2)
        assert np.abs(adv.astype(int) - x.astype(int)).max() <= 8 + 1  # uint8 rounding
        rates[name] = st["success_rate"]
    assert rates["pgd-torch"] > 0.2 and abs(rates["pgd-torch"] - rates["pgd"]) <= 0.15, rates
    atk = create_attack("pgd-torch", victim, eps=4 / 255, max_iter=5)
    assert atk.describe() == {"attack": "pgd-torch", "family": "gradient", "norm": "linf", "eps": 4 / 255,
                              "parameters": {"eps": 4 / 255, "max_iter": 5, "eps_step": 2.5 * (4 / 255) / 5,
                                             "random_start": True}}


@pytest.mark.parametrize("name", list_attacks())
def test_eps_none_means_the_default_budget(name: str, victim: Net) -> None:
    default = create_attack(name, victim).describe()
    assert create_attack(name, victim, eps=None).describe() == default
    if default["eps"] is None:  # minimum-norm / decision-based / spatial: any eps is ignored and recorded as null
        assert create_attack(name, victim, eps=8 / 255).eps is None
        assert default["norm"] == ("spatial" if default["family"] == "spatial" else "l2")
    else:
        assert default["eps"] == (LINF_EPS if default["norm"] == "linf" else L2_EPS)
        assert create_attack(name, victim, eps=2 / 255).eps == 2 / 255
