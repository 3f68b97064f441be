"""The shared replay buffers: a ring of rows, and episodes sampled as [B, T] windows."""
import pytest
import torch

from course_lib.replay import ReplayBuffer, SequenceReplay

FIELDS = {"board": ((3,), torch.int8), "pi": ((2,), torch.float32), "z": ((), torch.float32)}


def _rows(start: int, n: int) -> dict[str, torch.Tensor]:
    i = torch.arange(start, start + n)
    return {"board": i[:, None].expand(n, 3).to(torch.int8), "pi": torch.stack([i, -i], 1).float(), "z": i.float()}


def test_ring_buffer_with_two_dtypes_keeps_rows_together():
    buf = ReplayBuffer(4, FIELDS)
    assert set(buf._columns.data) == {torch.int8, torch.float32}  # one tensor per dtype
    buf.add(**_rows(0, 3))
    buf.add(**_rows(3, 3))  # rows 3 then 0, 1: items 4 and 5 overwrite 0 and 1
    assert len(buf) == 4 and buf.pos == 2
    assert buf.z.tolist() == [4.0, 5.0, 2.0, 3.0]
    assert buf.board.dtype == torch.int8 and buf.board[:, 1].tolist() == [4, 5, 2, 3]
    batch = buf.sample(200, generator=torch.Generator().manual_seed(0))
    assert batch["board"].shape == (200, 3) and batch["pi"].shape == (200, 2) and batch["z"].shape == (200,)
    assert torch.equal(batch["board"][:, 0].float(), batch["z"]) and torch.equal(batch["pi"][:, 1], -batch["z"])
    assert set(batch["z"].tolist()) == {2.0, 3.0, 4.0, 5.0}


def test_ring_buffer_rejects_wrong_fields_and_oversized_batches():
    buf = ReplayBuffer(4, FIELDS)
    with pytest.raises(ValueError, match="replay fields are"):
        buf.add(board=torch.zeros(1, 3, dtype=torch.int8), pi=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="capacity 4"):
        buf.add(**_rows(0, 5))
    with pytest.raises(ValueError, match="capacity must be"):
        ReplayBuffer(0, FIELDS)


def test_ring_buffer_state_round_trip():
    buf = ReplayBuffer(5, FIELDS)
    buf.add(**_rows(0, 4))
    buf.add(**_rows(4, 3))
    copy = ReplayBuffer(5, FIELDS)
    copy.load_state_dict(buf.state_dict())
    assert (copy.pos, copy.size) == (buf.pos, buf.size)
    for name in FIELDS:
        assert torch.equal(getattr(copy, name), getattr(buf, name)), name


def _episode(first: int, n: int) -> dict[str, torch.Tensor]:
    t = torch.arange(first, first + n)
    return {"obs": t[:, None].float().expand(n, 2), "action": t, "reward": t.float() / 10}


def test_sequence_windows_mask_steps_past_the_episode():
    rep = SequenceReplay(20, {"obs": ((2,), torch.float32), "action": ((), torch.long), "reward": ((), torch.float32)})
    rep.add_episode(True, **_episode(0, 3))     # steps 0, 1, 2 (terminated)
    rep.add_episode(False, **_episode(10, 4))   # steps 3..6 (cut)
    assert len(rep) == 7 and rep.episodes == 2
    w = rep.windows(torch.tensor([1, 3, 5]), 4)
    assert w["obs"].shape == (3, 4, 2) and w["action"].shape == (3, 4)
    assert w["mask"].tolist() == [[True, True, False, False], [True] * 4, [True, True, False, False]]
    assert w["terminal"].tolist() == [True, False, False]
    # Inside the mask, the steps are the episode's, in order.
    assert w["action"][0, :2].tolist() == [1, 2] and w["action"][1].tolist() == [10, 11, 12, 13]
    assert w["index"][2].tolist() == [5, 6, 6, 6]  # clamped to the last row


def test_sequence_sample_draws_from_the_latest_window_only_and_round_trips():
    rep = SequenceReplay(50, {"action": ((), torch.long)})
    for k in range(5):
        rep.add_episode(k % 2 == 0, action=torch.arange(k * 10, k * 10 + 10))
    starts = rep.sample_starts(500, window=10, generator=torch.Generator().manual_seed(0))
    assert starts.min() >= 40 and starts.max() <= 49
    copy = SequenceReplay(50, {"action": ((), torch.long)})
    copy.load_state_dict(rep.state_dict())
    a, b = rep.windows(starts[:7], 3), copy.windows(starts[:7], 3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(RuntimeError, match="full"):
        rep.add_episode(True, action=torch.arange(1))
        rep.add_episode(True, action=torch.arange(50))
