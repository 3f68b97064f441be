"""Return estimators: hand-worked examples, plain-loop references and identities between them."""
import pytest
import torch

from course_lib.returns import discounted_returns, gae_advantages, lambda_returns, n_step_targets, td_errors


# ----------------------------------------------------------------- plain-loop references
def ref_gae(r, v, nv, term, trunc, gamma, lam):
    """GAE written as the lecture's sum, one environment and one start at a time."""
    T, B = len(r), len(r[0])
    out = [[0.0] * B for _ in range(T)]
    for b in range(B):
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                delta = r[k][b] + gamma * (0.0 if term[k][b] else nv[k][b]) - v[k][b]
                total += weight * delta
                if term[k][b] or trunc[k][b]:
                    break
                weight *= gamma * lam
            out[t][b] = total
    return out


def ref_n_step(r, term, trunc, nv, gamma, n):
    T, B = len(r), len(r[0])
    out = [[0.0] * B for _ in range(T)]
    for b in range(B):
        for t in range(T):
            g, disc = 0.0, 1.0
            for k in range(t, min(t + n, T)):
                g += disc * r[k][b]
                disc *= gamma
                if term[k][b]:
                    break
                if trunc[k][b] or k == T - 1 or k == t + n - 1:
                    g += disc * nv[k][b]
                    break
            out[t][b] = g
    return out


def ref_lambda(r, term, trunc, nv, gamma, lam):
    """λ-return as the weighted average of n-step returns, (1-λ) Σ λ^(n-1) G^(n) (+ tail weight)."""
    T, B = len(r), len(r[0])
    out = [[0.0] * B for _ in range(T)]
    for b in range(B):
        for t in range(T):
            # Steps until the episode or rollout ends (inclusive window length).
            m = 0
            for k in range(t, T):
                m += 1
                if term[k][b] or trunc[k][b]:
                    break
            total = 0.0
            for n in range(1, m):
                total += (1 - lam) * lam ** (n - 1) * ref_n_step(r, term, trunc, nv, gamma, n)[t][b]
            total += lam ** (m - 1) * ref_n_step(r, term, trunc, nv, gamma, m)[t][b]
            out[t][b] = total
    return out


def random_rollout(T=9, B=4, seed=0, p_end=0.2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, B, generator=g, dtype=dtype)
    v = torch.randn(T, B, generator=g, dtype=dtype)
    nv = torch.randn(T, B, generator=g, dtype=dtype)
    ends = torch.rand(T, B, generator=g) < p_end
    kind = torch.rand(T, B, generator=g) < 0.5
    return r, v, nv, ends & kind, ends & ~kind


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.0), (0.8, 1.0), (0.0, 0.7)])
def test_gae_matches_plain_loop(seed, gamma, lam):
    r, v, nv, term, trunc = random_rollout(seed=seed)
    got = gae_advantages(r, v, nv, term, trunc, gamma, lam)
    want = torch.tensor(ref_gae(r.tolist(), v.tolist(), nv.tolist(), term.tolist(), trunc.tolist(), gamma, lam),
                        dtype=r.dtype)
    torch.testing.assert_close(got, want)


def test_gae_hand_worked():
    # One environment, three steps; the episode is truncated after step 1 and runs on at step 2.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [2.0]])
    nv = torch.tensor([[1.0], [4.0], [5.0]])   # V(s_1)=1, V(final obs)=4, V(s_3)=5
    term = torch.tensor([[False], [False], [False]])
    trunc = torch.tensor([[False], [True], [False]])
    gamma, lam = 0.5, 0.5
    # deltas: 1 + .5*1 - .5 = 1.0 ; 2 + .5*4 - 1 = 3.0 ; 3 + .5*5 - 2 = 3.5
    # A_2 = 3.5 ; A_1 = 3.0 (truncated: no recursion) ; A_0 = 1.0 + .25*3.0 = 1.75
    got = gae_advantages(r, v, nv, term, trunc, gamma, lam)
    torch.testing.assert_close(got, torch.tensor([[1.75], [3.0], [3.5]]))
    # Had step 1 terminated instead, its bootstrap disappears: delta_1 = 2 - 1 = 1.
    got = gae_advantages(r, v, nv, trunc, term, gamma, lam)
    torch.testing.assert_close(got, torch.tensor([[1.25], [1.0], [3.5]]))


def test_gae_lambda_limits():
    r, v, nv, term, trunc = random_rollout(seed=3)
    torch.testing.assert_close(gae_advantages(r, v, nv, term, trunc, 0.9, 0.0), td_errors(r, v, nv, term, 0.9))
    # lambda = 1: advantage + V(s_t) is the bootstrapped discounted return, given a consistent critic.
    v_chain = torch.randn(10, 4, dtype=torch.float64)
    v, nv = v_chain[:-1].clone(), v_chain[1:].clone()
    done = term | trunc
    nv[done] = torch.randn(int(done.sum()), dtype=torch.float64)  # final observations differ
    a = gae_advantages(r, v, nv, term, trunc, 0.9, 1.0)
    torch.testing.assert_close(a + v, discounted_returns(r, term, trunc, nv, 0.9))


def test_lambda_returns_equal_gae_plus_values():
    r, _, _, term, trunc = random_rollout(seed=4)
    v_chain = torch.randn(10, 4, dtype=torch.float64)
    v, nv = v_chain[:-1].clone(), v_chain[1:].clone()
    done = term | trunc
    nv[done] = torch.randn(int(done.sum()), dtype=torch.float64)
    for lam in (0.0, 0.5, 0.95, 1.0):
        torch.testing.assert_close(lambda_returns(r, term, trunc, nv, 0.97, lam),
                                   gae_advantages(r, v, nv, term, trunc, 0.97, lam) + v)


@pytest.mark.parametrize("seed", range(3))
def test_lambda_returns_are_weighted_n_step_returns(seed):
    r, _, nv, term, trunc = random_rollout(T=6, B=3, seed=seed)
    for lam in (0.3, 0.9):
        want = ref_lambda(r.tolist(), term.tolist(), trunc.tolist(), nv.tolist(), 0.9, lam)
        torch.testing.assert_close(lambda_returns(r, term, trunc, nv, 0.9, lam), torch.tensor(want, dtype=r.dtype))


@pytest.mark.parametrize("seed", range(5))
def test_discounted_returns_match_plain_loop(seed):
    r, _, nv, term, trunc = random_rollout(seed=seed)
    # The discounted return is the n-step target whose window never closes early.
    want = ref_n_step(r.tolist(), term.tolist(), trunc.tolist(), nv.tolist(), 0.95, n=len(r))
    torch.testing.assert_close(discounted_returns(r, term, trunc, nv, 0.95), torch.tensor(want, dtype=r.dtype))


def test_discounted_returns_hand_worked():
    r = torch.tensor([[1.0], [1.0], [1.0], [1.0]])
    term = torch.tensor([[False], [True], [False], [False]])
    trunc = torch.zeros_like(term)
    nv = torch.tensor([[9.0], [9.0], [9.0], [10.0]])
    # Episode 1: G_1 = 1 (terminated), G_0 = 1 + .5 * 1 = 1.5. Episode 2 runs past the
    # rollout: G_3 = 1 + .5 * 10 = 6, G_2 = 1 + .5 * 6 = 4.
    torch.testing.assert_close(discounted_returns(r, term, trunc, nv, 0.5), torch.tensor([[1.5], [1.0], [4.0], [6.0]]))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 20])
@pytest.mark.parametrize("seed", range(3))
def test_n_step_matches_plain_loop(n, seed):
    r, _, nv, term, trunc = random_rollout(seed=seed)
    want = ref_n_step(r.tolist(), term.tolist(), trunc.tolist(), nv.tolist(), 0.9, n)
    torch.testing.assert_close(n_step_targets(r, term, trunc, nv, 0.9, n), torch.tensor(want, dtype=r.dtype))


def test_n_step_limits():
    r, v, nv, term, trunc = random_rollout(seed=7)
    torch.testing.assert_close(n_step_targets(r, term, trunc, nv, 0.9, 1), td_errors(r, v, nv, term, 0.9) + v)
    torch.testing.assert_close(n_step_targets(r, term, trunc, nv, 0.9, 50), discounted_returns(r, term, trunc, nv, 0.9))


def test_n_step_hand_worked():
    r = torch.tensor([[1.0], [2.0], [3.0]])
    nv = torch.tensor([[10.0], [20.0], [30.0]])
    no = torch.zeros(3, 1, dtype=torch.bool)
    # n = 2, gamma = .5: G_0 = 1 + .5*2 + .25*20 = 7 ; G_1 = 2 + .5*3 + .25*30 = 11 ; G_2 = 3 + .5*30 = 18
    torch.testing.assert_close(n_step_targets(r, no, no, nv, 0.5, 2), torch.tensor([[7.0], [11.0], [18.0]]))


def test_truncation_and_termination_differ():
    r = torch.ones(3, 1)
    v = torch.zeros(3, 1)
    nv = torch.full((3, 1), 10.0)
    end = torch.tensor([[False], [False], [True]])
    no = torch.zeros_like(end)
    truncated = gae_advantages(r, v, nv, no, end, 0.9, 0.9)
    terminated = gae_advantages(r, v, nv, end, no, 0.9, 0.9)
    assert truncated[2, 0] == pytest.approx(1 + 0.9 * 10)
    assert terminated[2, 0] == pytest.approx(1.0)


def test_gradients_flow_and_devices_follow_inputs():
    r, v, nv, term, trunc = random_rollout(seed=1)
    v.requires_grad_(True)
    gae_advantages(r, v, nv, term, trunc, 0.9, 0.9).sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()


def test_bad_inputs_give_clear_errors():
    r, v, nv, term, trunc = random_rollout(seed=1)
    with pytest.raises(ValueError, match=r"values has shape \(8, 4\)"):
        gae_advantages(r, v[:-1], nv, term, trunc, 0.9, 0.9)
    with pytest.raises(ValueError, match=r"\[T, B\]"):
        gae_advantages(r[:, 0], v[:, 0], nv[:, 0], term[:, 0], trunc[:, 0], 0.9, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(r, term, trunc, nv, 1.5)
    with pytest.raises(ValueError, match="lambda"):
        lambda_returns(r, term, trunc, nv, 0.9, -0.1)
    with pytest.raises(ValueError, match="n must be"):
        n_step_targets(r, term, trunc, nv, 0.9, 0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        gae_advantages(r.tolist(), v, nv, term, trunc, 0.9, 0.9)


# ------------------------------------------------------------------------------ V-trace
from course_lib.returns import vtrace  # noqa: E402


def consistent_rollout(T=9, B=4, seed=0):
    """Rewards, episode ends, and values where next_values[t] == values[t+1] inside episodes
    (as when one critic evaluates every observation); final observations get their own values."""
    r, _, _, term, trunc = random_rollout(T, B, seed)
    g = torch.Generator().manual_seed(seed + 100)
    chain = torch.randn(T + 1, B, generator=g, dtype=torch.float64)
    v, nv = chain[:-1].clone(), chain[1:].clone()
    done = term | trunc
    nv[done] = torch.randn(int(done.sum()), generator=g, dtype=torch.float64)
    log_rhos = torch.randn(T, B, generator=g, dtype=torch.float64)
    return r, v, nv, term, trunc, log_rhos


def ref_vtrace(r, v, nv, term, trunc, log_rhos, gamma, rho_bar, c_bar, lam=1.0):
    """The lecture's sum, v_s = V(x_s) + sum_t gamma^(t-s) (prod_{i<t} c_i) delta_t, and
    A_t = r_t + gamma v_{t+1} - V(x_t) weighted by rho_t, one start at a time."""
    import math
    T, B = len(r), len(r[0])
    vs = [[0.0] * B for _ in range(T)]
    adv = [[0.0] * B for _ in range(T)]
    for b in range(B):
        ratio = [math.exp(log_rhos[t][b]) for t in range(T)]
        rho = [min(rho_bar, x) for x in ratio]
        c = [lam * min(c_bar, x) for x in ratio]
        delta = [rho[t] * (r[t][b] + gamma * (0.0 if term[t][b] else nv[t][b]) - v[t][b]) for t in range(T)]
        for s in range(T):
            total, weight = v[s][b], 1.0
            for t in range(s, T):
                total += weight * delta[t]
                if term[t][b] or trunc[t][b]:
                    break
                weight *= gamma * c[t]
            vs[s][b] = total
        for t in range(T):
            if term[t][b]:
                nxt = 0.0
            elif trunc[t][b] or t == T - 1:
                nxt = nv[t][b]
            else:
                nxt = None  # filled below once vs is known
            adv[t][b] = nxt
        for t in range(T):
            nxt = adv[t][b] if adv[t][b] is not None else vs[t + 1][b]
            adv[t][b] = rho[t] * (r[t][b] + gamma * nxt - v[t][b])
    return vs, adv


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rho_bar,c_bar,lam", [(1.0, 1.0, 1.0), (2.0, 0.5, 1.0), (1.0, 1.0, 0.9), (100.0, 100.0, 1.0)])
def test_vtrace_matches_the_lecture_sum(seed, rho_bar, c_bar, lam):
    r, v, nv, term, trunc, log_rhos = consistent_rollout(seed=seed)
    out = vtrace(r, v, nv, term, trunc, log_rhos, 0.9, rho_bar=rho_bar, c_bar=c_bar, lam=lam)
    want_vs, want_adv = ref_vtrace(r.tolist(), v.tolist(), nv.tolist(), term.tolist(), trunc.tolist(),
                                   log_rhos.tolist(), 0.9, rho_bar, c_bar, lam)
    torch.testing.assert_close(out.vs, torch.tensor(want_vs, dtype=r.dtype))
    torch.testing.assert_close(out.pg_advantages, torch.tensor(want_adv, dtype=r.dtype))
    torch.testing.assert_close(out.rhos, log_rhos.exp().clamp(max=rho_bar))


def test_vtrace_on_policy_is_the_bootstrapped_return():
    r, v, nv, term, trunc, _ = consistent_rollout(seed=5)
    on_policy = torch.zeros_like(r)
    out = vtrace(r, v, nv, term, trunc, on_policy, 0.95)
    torch.testing.assert_close(out.vs, discounted_returns(r, term, trunc, nv, 0.95))
    # With lambda in the traces it is the lambda-return, and its advantage is GAE's one-step view.
    out = vtrace(r, v, nv, term, trunc, on_policy, 0.95, lam=0.8)
    torch.testing.assert_close(out.vs, lambda_returns(r, term, trunc, nv, 0.95, 0.8))


def test_vtrace_clipping_cuts_off_policy_corrections():
    # One step, an action the learner likes 5x more than the actor did: rho is clipped to 1.
    r, v, nv = torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]])
    no = torch.zeros(1, 1, dtype=torch.bool)
    out = vtrace(r, v, nv, no, no, torch.log(torch.tensor([[5.0]])), 0.5)
    assert out.rhos.item() == 1.0
    assert out.vs.item() == pytest.approx(1 + 0.5 * 2.0)
    # An action the learner dislikes (ratio 0.2) shrinks the correction towards V(x_s).
    out = vtrace(r, v, nv, no, no, torch.log(torch.tensor([[0.2]])), 0.5)
    assert out.vs.item() == pytest.approx(0.2 * 2.0)
    with pytest.raises(ValueError, match="rho_bar >= c_bar"):
        vtrace(r, v, nv, no, no, torch.zeros(1, 1), 0.5, rho_bar=0.5, c_bar=1.0)
