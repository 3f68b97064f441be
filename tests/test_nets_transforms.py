"""Value transforms and two-hot heads (course_lib.nets.transforms): hand-worked values, inverses, round trips."""
import math

import pytest
import torch

from course_lib.nets import (from_support, from_two_hot, scale_value, symexp, symexp_bins, symlog, to_support,
                             two_hot, unscale_value)


def test_muzero_names_still_import_from_the_agent_and_are_the_nets_functions():
    # The chapter 02 notebook and the muzero_targets assignment import them from muzero.
    from course_lib.agents import muzero
    assert muzero.scale_value is scale_value and muzero.unscale_value is unscale_value
    assert muzero.to_support is to_support and muzero.from_support is from_support


def test_phi_hand_worked_and_inverse():
    # phi(3) = sqrt(4) - 1 + 3e-3 ; phi(-8) = -(3 - 1) - 8e-3 ; phi(99) = 9 + .099
    torch.testing.assert_close(scale_value(torch.tensor([3.0, -8.0, 99.0, 0.0])),
                               torch.tensor([1.003, -2.008, 9.099, 0.0]))
    x = torch.linspace(-500, 500, 2001, dtype=torch.float64)
    torch.testing.assert_close(unscale_value(scale_value(x)), x, rtol=1e-10, atol=1e-10)


def test_symlog_hand_worked():
    e = math.e
    x = torch.tensor([0.0, e - 1, -(e ** 2 - 1), 1e6], dtype=torch.float64)
    torch.testing.assert_close(symlog(x), torch.tensor([0.0, 1.0, -2.0, math.log(1e6 + 1)], dtype=torch.float64))
    torch.testing.assert_close(symexp(torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)),
                               torch.tensor([e - 1, -(e ** 2 - 1), 0.0], dtype=torch.float64))
    # Near 0 symlog is the identity (slope 1), unlike a plain log.
    x = torch.tensor([1e-4], requires_grad=True)
    symlog(x).backward()
    assert x.grad.item() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symexp_inverts_symlog(dtype):
    x = torch.cat([torch.linspace(-1e4, 1e4, 1001, dtype=dtype), torch.linspace(-1, 1, 101, dtype=dtype)])
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(symexp(symlog(x)), x, **tol)
    torch.testing.assert_close(symlog(symexp(x[-101:])), x[-101:], **tol)


def test_two_hot_hand_worked():
    bins = torch.tensor([-1.0, 0.0, 2.0, 6.0])
    # 1 lies halfway between 0 and 2; 5 is a quarter of the way back from 6 to 2; 9 is clipped to 6.
    got = two_hot(torch.tensor([1.0, 5.0, 9.0, -1.0, 0.0]), bins)
    want = torch.tensor([[0.0, 0.5, 0.5, 0.0],
                         [0.0, 0.0, 0.25, 0.75],
                         [0.0, 0.0, 0.0, 1.0],
                         [1.0, 0.0, 0.0, 0.0],
                         [0.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("bins", [torch.linspace(-20, 20, 255, dtype=torch.float64), symexp_bins(41).double(),
                                  torch.tensor([-3.0, -1.0, 0.5, 0.6, 10.0], dtype=torch.float64)])
def test_two_hot_round_trip(bins):
    g = torch.Generator().manual_seed(0)
    x = bins[0] + (bins[-1] - bins[0]) * torch.rand(6, 50, generator=g, dtype=torch.float64)
    x[0, :5] = bins[:5]   # values on bins, the ends included
    x[0, 5] = bins[-1]
    dist = two_hot(x, bins)
    assert dist.shape == (6, 50, len(bins))
    torch.testing.assert_close(dist.sum(-1), torch.ones_like(x))
    assert ((dist > 0).sum(-1) <= 2).all() and (dist >= 0).all()
    torch.testing.assert_close((dist * bins).sum(-1), x)                       # the mean is x
    torch.testing.assert_close(from_two_hot(dist.clamp(min=1e-300).log(), bins), x)   # logits = log p read back


def test_dreamer_symlog_head_round_trip():
    # Dreamer V3's code encodes symlog(y) over bins even in [-20, 20] and decodes with symexp.
    bins = torch.linspace(-20, 20, 255)
    y = torch.tensor([-12345.0, -1.5, 0.0, 0.3, 7.0, 1e5])
    logits = two_hot(symlog(y), bins).clamp(min=1e-30).log()
    torch.testing.assert_close(symexp(from_two_hot(logits, bins)), y, rtol=1e-4, atol=1e-4)
    # Its paper's form: bins symexp'd, the two-hot of y itself.
    torch.testing.assert_close((two_hot(y, symexp_bins()) * symexp_bins()).sum(-1), y, rtol=1e-5, atol=1e-5)
    assert symexp_bins()[-1].item() == pytest.approx(math.expm1(20), rel=1e-5)
    assert len(symexp_bins()) == 255 and symexp_bins()[127].item() == 0.0
    assert torch.equal(symexp_bins(), -symexp_bins().flip(0))
    assert two_hot(torch.tensor(0.0), symexp_bins())[127].item() == 1.0


def test_muzero_support_is_two_hot_over_integer_bins():
    x = torch.tensor([-7.3, 0.0, 0.4, 12.0, 99.0, 200.0, -200.0])
    bins = torch.arange(-10, 11, dtype=torch.float32)
    torch.testing.assert_close(to_support(x, 10), two_hot(scale_value(x), bins), rtol=0, atol=1e-6)
    # Read back: the values inside the support, and phi^-1(+-10) for the clipped ones.
    dist = to_support(x, 10)
    edge = unscale_value(torch.tensor(10.0))
    torch.testing.assert_close(from_support(dist.clamp(min=1e-12).log(), 10),
                               torch.cat([x[:5], torch.stack([edge, -edge])]), rtol=1e-3, atol=1e-3)


def test_two_hot_keeps_dtype_and_device_and_takes_integers():
    assert two_hot(torch.tensor([1, 2]), torch.tensor([0.0, 4.0])).dtype == torch.float32
    assert two_hot(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.0, 4.0])).dtype == torch.float64
    assert from_two_hot(torch.zeros(3, 2, dtype=torch.bfloat16), torch.tensor([0.0, 4.0])).dtype == torch.float32
    torch.testing.assert_close(from_two_hot(torch.zeros(3, 2), torch.tensor([0.0, 4.0])), torch.full((3,), 2.0))


def test_bad_bins_give_clear_errors():
    with pytest.raises(ValueError, match="1-d tensor of at least 2"):
        two_hot(torch.zeros(3), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="3 classes .* but there are 2 bins"):
        from_two_hot(torch.zeros(4, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="bins must be a torch.Tensor"):
        two_hot(torch.zeros(3), [0.0, 1.0])
    with pytest.raises(ValueError, match="num_bins"):
        symexp_bins(1)
