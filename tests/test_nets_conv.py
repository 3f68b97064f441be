"""Convolutional encoder and decoder for pixel observations, and the residual tower."""
import pytest
import torch

from course_lib.nets import ConvDecoder, ConvEncoder, ResidualBlock, residual_tower


@pytest.mark.parametrize("shape,stages", [((3, 64, 64), 4), ((4, 10, 10), 1), ((1, 16, 8), 3)])
def test_encoder_and_decoder_mirror_each_other(shape, stages):
    enc = ConvEncoder(shape, depth=8, stages=stages)
    dec = ConvDecoder(enc.out_features, shape, depth=8, stages=stages)
    x = torch.rand(2, 5, *shape)                       # leading dims [B, T] are kept
    z = enc(x)
    assert z.shape == (2, 5, enc.out_features)
    assert enc.map_shape == dec.map_shape
    assert dec(z).shape == x.shape


def test_encoder_and_decoder_can_learn_to_reconstruct():
    torch.manual_seed(0)
    shape = (1, 8, 8)
    enc, dec = ConvEncoder(shape, depth=8, stages=2), None
    dec = ConvDecoder(enc.out_features, shape, depth=8, stages=2)
    images = (torch.rand(16, *shape) > 0.7).float()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    first = None
    for _ in range(150):
        loss = (dec(enc(images)) - images).square().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="cannot be halved 4 times"):
        ConvEncoder((3, 10, 10), stages=4)
    with pytest.raises(ValueError, match=r"expected images \[..., 3, 64, 64\]"):
        ConvEncoder((3, 64, 64))(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown activation"):
        ConvDecoder(8, (1, 8, 8), stages=1, activation="gelu")


def test_residual_block_keeps_the_shape_and_adds_its_input():
    block = ResidualBlock(4).eval()
    x = torch.randn(2, 4, 3, 3)
    assert block(x).shape == x.shape
    for p in (block.bn2.weight, block.bn2.bias):  # F(x) = 0: the block is relu(x)
        torch.nn.init.zeros_(p)
    assert torch.equal(block(x), torch.relu(x))
    assert len(residual_tower(4, 3)) == 3 and len(residual_tower(4, 0)) == 0
