r"""Fine-tuning a language model on its own reasoning traces: GRPO and DPO as pure loss functions.

Both start where PPO (chapter 04) does, a policy :math:`\pi_\theta` over tokens, and drop a part:

* **GRPO** (Shao et al., 2024, *DeepSeekMath*) keeps PPO's clipped ratio objective but has no
  critic: the baseline of an answer is the mean reward of the G answers sampled for the same
  prompt (:func:`~course_lib.returns.group_relative_advantages`), and a KL penalty keeps the
  policy near a frozen reference model.
* **DPO** (Rafailov et al., 2023, *Direct Preference Optimization*) has no reward model and no
  sampling during training: from pairs (chosen, rejected) it raises the log-ratio to the
  reference of the chosen answer over the rejected one, which optimises the same KL-regularised
  objective as RLHF in closed form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..agents.ppo import clipped_surrogate_objective

__all__ = ["kl_to_reference", "grpo_loss", "dpo_loss"]


def kl_to_reference(log_prob: torch.Tensor, ref_log_prob: torch.Tensor) -> torch.Tensor:
    r"""Per-token estimate of :math:`\mathrm{KL}(\pi_\theta \,\|\, \pi_{\mathrm{ref}})` on tokens sampled from
    :math:`\pi_\theta`, the unbiased and always non-negative estimator GRPO uses:

    .. math::
        \hat{\mathbb D}_{\mathrm{KL}} = \frac{\pi_{\mathrm{ref}}(o_t)}{\pi_\theta(o_t)}
            - \log\frac{\pi_{\mathrm{ref}}(o_t)}{\pi_\theta(o_t)} - 1 .
    """
    log_ratio = ref_log_prob - log_prob
    return torch.exp(log_ratio) - log_ratio - 1.0


def grpo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, ref_log_prob: torch.Tensor,
              advantages: torch.Tensor, mask: torch.Tensor, *, clip_eps: float = 0.2,
              beta: float = 0.04) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""GRPO's loss for G sampled answers of T tokens (to be *minimised*):

    .. math::
        \mathcal L = -\frac{1}{G}\sum_{i=1}^{G} \frac{1}{|o_i|}\sum_{t=1}^{|o_i|}
            \Big[\min\big(r_{i,t}\hat A_i,\ \mathrm{clip}(r_{i,t}, 1-\epsilon, 1+\epsilon)\hat A_i\big)
            - \beta\, \hat{\mathbb D}_{\mathrm{KL}}[\pi_\theta \| \pi_{\mathrm{ref}}]_{i,t}\Big],
        \qquad r_{i,t} = \frac{\pi_\theta(o_{i,t} \mid q, o_{i,<t})}{\pi_{\theta_{\mathrm{old}}}(o_{i,t} \mid q, o_{i,<t})}

    with one advantage per answer, :math:`\hat A_i` (the group-relative one), for every token of it.
    The clipped term is PPO's (:func:`~course_lib.agents.ppo.clipped_surrogate_objective`).

    Args:
      log_prob, old_log_prob, ref_log_prob: ``[G, T]`` log-probabilities of the sampled tokens under
        the policy being trained, the policy that sampled them, and the frozen reference.
      advantages: ``[G]`` :math:`\hat A_i`.
      mask: ``[G, T]`` bool, the answer's tokens (not the prompt, not the padding after the end).
      clip_eps: :math:`\epsilon`; beta: :math:`\beta`.

    Returns:
      ``(loss, {"kl": mean KL per token, "clip_fraction": share of tokens whose ratio was clipped})``.
    """
    if not (log_prob.shape == old_log_prob.shape == ref_log_prob.shape == mask.shape) or log_prob.dim() != 2:
        raise ValueError(f"log_prob, old_log_prob, ref_log_prob and mask must all be [G, T]; got "
                         f"{tuple(log_prob.shape)}, {tuple(old_log_prob.shape)}, {tuple(ref_log_prob.shape)}, "
                         f"{tuple(mask.shape)}")
    if advantages.shape != log_prob.shape[:1] or mask.dtype != torch.bool:
        raise ValueError(f"advantages must be [G] = [{log_prob.shape[0]}] and mask bool; got "
                         f"{tuple(advantages.shape)}, {mask.dtype}")
    adv = advantages.unsqueeze(1).expand_as(log_prob)
    surrogate = clipped_surrogate_objective(log_prob.flatten(), old_log_prob.flatten(), adv.flatten(),
                                            clip_eps).view_as(log_prob)
    kl = kl_to_reference(log_prob, ref_log_prob)
    m = mask.float()
    lengths = m.sum(1).clamp(min=1.0)
    per_answer = ((surrogate - beta * kl) * m).sum(1) / lengths
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = ((ratio - 1.0).abs() > clip_eps) & mask
    stats = {"kl": (kl * m).sum() / m.sum().clamp(min=1.0),
             "clip_fraction": clipped.float().sum() / m.sum().clamp(min=1.0)}
    return -per_answer.mean(), stats


def dpo_loss(chosen_log_prob: torch.Tensor, rejected_log_prob: torch.Tensor, ref_chosen_log_prob: torch.Tensor,
             ref_rejected_log_prob: torch.Tensor, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    r"""DPO's loss over N preference pairs (to be minimised):

    .. math::
        \mathcal L_{\mathrm{DPO}} = -\frac1N\sum \log\sigma\Big(\beta\log\frac{\pi_\theta(y_w\mid x)}{\pi_{\mathrm{ref}}(y_w\mid x)}
            - \beta\log\frac{\pi_\theta(y_l\mid x)}{\pi_{\mathrm{ref}}(y_l\mid x)}\Big)

    with :math:`y_w` the chosen and :math:`y_l` the rejected answer; the log-probabilities are of
    whole answers (summed over their tokens). At the start, :math:`\pi_\theta = \pi_{\mathrm{ref}}`,
    the margin is 0 and the loss is :math:`\log 2`.

    Args:
      chosen_log_prob, rejected_log_prob: ``[N]`` :math:`\log\pi_\theta` of each pair's answers.
      ref_chosen_log_prob, ref_rejected_log_prob: ``[N]`` the same under the frozen reference.
      beta: :math:`\beta`, how far from the reference the policy may move (smaller: further).

    Returns:
      ``(loss, margins [N])``: the margin inside the sigmoid, positive where the pair is ranked right.
    """
    shapes = {t.shape for t in (chosen_log_prob, rejected_log_prob, ref_chosen_log_prob, ref_rejected_log_prob)}
    if len(shapes) != 1 or chosen_log_prob.dim() != 1:
        raise ValueError(f"the four log-probabilities must all be [N]; got {sorted(tuple(s) for s in shapes)}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0; got {beta}")
    margins = beta * ((chosen_log_prob - ref_chosen_log_prob) - (rejected_log_prob - ref_rejected_log_prob))
    return -F.logsigmoid(margins).mean(), margins.detach()
