"""Straight-through one-hot categorical (course_lib.nets.OneHotCategorical): exact one-hot forward,
the probabilities' gradient backward, unimix, sampling frequencies."""
import pytest
import torch

from course_lib.nets import OneHotCategorical


def test_samples_are_exactly_one_hot():
    torch.manual_seed(0)
    logits = torch.randn(5, 32, 32)          # Dreamer's 32 latents of 32 classes
    dist = OneHotCategorical(logits, unimix=0.01)
    z = dist.sample()
    assert z.shape == (5, 32, 32)
    assert torch.equal(z, torch.nn.functional.one_hot(z.argmax(-1), 32).float())
    assert torch.equal(dist.mode(), torch.nn.functional.one_hot(logits.argmax(-1), 32).float())


@pytest.mark.parametrize("unimix", [0.0, 0.01])
def test_straight_through_gradient_is_the_gradient_of_the_probabilities(unimix):
    torch.manual_seed(1)
    logits = torch.randn(4, 6, requires_grad=True)
    weights = torch.randn(4, 6)
    (weights * OneHotCategorical(logits, unimix).sample()).sum().backward()
    got = logits.grad.clone()
    logits.grad = None
    (weights * OneHotCategorical(logits, unimix).probs).sum().backward()
    torch.testing.assert_close(got, logits.grad, rtol=0, atol=0)
    assert got.abs().sum() > 0
    # The same for mode().
    logits.grad = None
    (weights * OneHotCategorical(logits, unimix).mode()).sum().backward()
    torch.testing.assert_close(logits.grad, got, rtol=0, atol=0)


def test_unimix_hand_worked():
    # Softmax of [100, 0, 0, 0] is (1, ~0, ~0, ~0); 1% uniform over 4 classes adds .0025 to each.
    dist = OneHotCategorical(torch.tensor([100.0, 0.0, 0.0, 0.0]), unimix=0.01)
    torch.testing.assert_close(dist.probs, torch.tensor([0.9925, 0.0025, 0.0025, 0.0025]))
    torch.testing.assert_close(dist.log_probs, dist.probs.log())
    assert torch.isfinite(dist.kl(OneHotCategorical(torch.tensor([0.0, 0.0, 0.0, 100.0]), unimix=0.01)))
    torch.testing.assert_close(dist.probs.sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"unimix must be in \[0, 1\)"):
        OneHotCategorical(torch.zeros(3), unimix=1.0)


def test_sampling_frequencies_log_prob_entropy_and_kl():
    torch.manual_seed(2)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    dist = OneHotCategorical(probs.log().expand(40_000, 4))
    freq = dist.sample().mean(0)
    # 4 standard errors of a frequency estimated from 40,000 samples.
    assert ((freq - probs).abs() <= 4 * (probs * (1 - probs) / 40_000).sqrt()).all(), freq
    one = OneHotCategorical(probs.log())
    z = torch.tensor([0.0, 1.0, 0.0, 0.0])
    torch.testing.assert_close(one.log_prob(z), probs[1].log())
    torch.testing.assert_close(one.entropy(), -(probs * probs.log()).sum())
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    torch.testing.assert_close(one.kl(OneHotCategorical(q.log())), (probs * (probs / q).log()).sum())
    torch.testing.assert_close(one.kl(one), torch.tensor(0.0))
