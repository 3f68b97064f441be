"""GRPO's and DPO's losses against hand-worked values and their defining properties."""
import math

import pytest
import torch

from course_lib.agents.ppo import clipped_surrogate_objective
from course_lib.reasoning.rl import dpo_loss, grpo_loss, kl_to_reference
from course_lib.returns import group_relative_advantages


def test_dpo_loss_is_log_2_at_the_reference_and_falls_when_the_chosen_answer_gains():
    g = torch.Generator().manual_seed(0)
    ref_c, ref_r = -torch.rand(8, generator=g) * 20, -torch.rand(8, generator=g) * 20
    loss, margins = dpo_loss(ref_c.clone(), ref_r.clone(), ref_c, ref_r, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and torch.all(margins == 0)
    better, margins = dpo_loss(ref_c + 1.0, ref_r - 1.0, ref_c, ref_r, beta=0.5)
    assert better.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.0))))   # margin 0.5 * (1 + 1)
    assert torch.allclose(margins, torch.full((8,), 1.0))
    chosen = ref_c.clone().requires_grad_()
    dpo_loss(chosen, ref_r, ref_c, ref_r)[0].backward()
    assert torch.all(chosen.grad < 0)                    # descending the loss raises the chosen answer
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(ref_c, ref_r, ref_c, ref_r, beta=0.0)


def test_kl_estimator_is_zero_at_the_reference_non_negative_and_unbiased():
    x = torch.linspace(-3, 3, 13)
    assert torch.all(kl_to_reference(x, x) == 0)
    assert torch.all(kl_to_reference(x, x.flip(0)) >= 0)
    # sampling from p, the estimator's mean is KL(p || q)
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.3, 0.3, 0.4])
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(1))
    estimate = kl_to_reference(p.log()[samples], q.log()[samples]).mean()
    assert estimate.item() == pytest.approx((p * (p / q).log()).sum().item(), rel=0.03)


def test_grpo_loss_is_ppo_clipping_per_token_with_a_group_baseline_and_a_kl_penalty():
    g = torch.Generator().manual_seed(2)
    G, T = 4, 6
    old = -torch.rand(G, T, generator=g)
    new = old + 0.3 * torch.randn(G, T, generator=g)
    ref = old + 0.1 * torch.randn(G, T, generator=g)
    mask = torch.ones(G, T, dtype=torch.bool)
    mask[1, 4:] = False                                  # a shorter answer
    adv = group_relative_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]))
    loss, stats = grpo_loss(new, old, ref, adv, mask, clip_eps=0.2, beta=0.04)
    want = 0.0
    for i in range(G):                                   # the equation, one answer at a time
        n = int(mask[i].sum())
        s = clipped_surrogate_objective(new[i, :n], old[i, :n], adv[i].expand(n), 0.2)
        want += (s - 0.04 * kl_to_reference(new[i, :n], ref[i, :n])).mean() / G
    assert loss.item() == pytest.approx(-want.item(), rel=1e-5)
    assert 0 < stats["clip_fraction"] < 1 and stats["kl"] > 0
    same, _ = grpo_loss(old, old, old, adv, mask, beta=1.0)    # ratio 1, no KL: minus the mean advantage
    assert same.item() == pytest.approx(-adv.mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match=r"\[G, T\]"):
        grpo_loss(new, old, ref[:, :3], adv, mask)
