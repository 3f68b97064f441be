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


# ============================================================ the float-discount core
# The core takes per-step discounts gamma_t = gamma * c_t (c_t a predicted continuation
# probability in [0, 1], as Dreamer, TWM and STORM imagine) and per-step lambda_t. Its
# references below are written as forward sums, one start at a time, not as the
# backward recursions the library uses.
import math  # noqa: E402
import statistics  # noqa: E402

from course_lib.returns import (gae_from_discounts, group_relative_advantages,  # noqa: E402
                                lambda_returns_from_discounts, n_step_returns_from_discounts, returns_to_go,
                                td_errors_from_discounts, vtrace_from_discounts)


def imagined_rollout(T=8, B=3, seed=0, gamma=0.95, dtype=torch.float64):
    """Rewards, predicted-continue discounts gamma * c_t with c_t ~ U[0, 1] (some exactly 0 or 1),
    per-step lambda_t ~ U[0, 1] (some exactly 0: cuts), and a critic that is consistent
    (next_values[t] == values[t+1]) except where lambda_t = 0."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, B, generator=g, dtype=dtype)
    c = torch.rand(T, B, generator=g, dtype=dtype)
    c[torch.rand(T, B, generator=g) < 0.15] = 0.0
    c[torch.rand(T, B, generator=g) < 0.15] = 1.0
    lam = torch.rand(T, B, generator=g, dtype=dtype)
    lam[torch.rand(T, B, generator=g) < 0.2] = 0.0
    lam[torch.rand(T, B, generator=g) < 0.2] = 1.0
    chain = torch.randn(T + 1, B, generator=g, dtype=dtype)
    v, nv = chain[:-1].clone(), chain[1:].clone()
    cut = lam == 0
    nv[cut] = torch.randn(int(cut.sum()), generator=g, dtype=dtype)
    return r, gamma * c, v, nv, lam


def ref_core_n_step(r, d, nv, lam, n):
    """G_t = sum_k (prod_{j<k} gamma_{t+j} lambda_{t+j}) [r_{t+k} + gamma_{t+k} w_k V(s_{t+k+1})],
    w_k = 1 - lambda_{t+k}, and w = 1 at the window's last step (n-th reward or end of rollout)."""
    T, B = len(r), len(r[0])
    out = [[0.0] * B for _ in range(T)]
    for b in range(B):
        for t in range(T):
            m = min(n, T - t)
            total, weight = 0.0, 1.0
            for k in range(m):
                s = t + k
                w = 1.0 if k == m - 1 else 1.0 - lam[s][b]
                total += weight * (r[s][b] + d[s][b] * w * nv[s][b])
                weight *= d[s][b] * lam[s][b]
            out[t][b] = total
    return out


def ref_core_gae(r, d, v, nv, lam):
    """A_t = sum_k (prod_{j<k} gamma_{t+j} lambda_{t+j}) delta_{t+k}."""
    T, B = len(r), len(r[0])
    out = [[0.0] * B for _ in range(T)]
    for b in range(B):
        for t in range(T):
            total, weight = 0.0, 1.0
            for s in range(t, T):
                total += weight * (r[s][b] + d[s][b] * nv[s][b] - v[s][b])
                weight *= d[s][b] * lam[s][b]
            out[t][b] = total
    return out


def ref_core_vtrace(r, d, v, nv, log_rhos, lam, rho_bar, c_bar, kappa):
    """v_s = V(x_s) + sum_t (prod_{i<t} gamma_i c_i) rho_t delta_t and
    A_t = rho_t (r_t + gamma_t [kappa_t v_{t+1} + (1 - kappa_t) V(x_{t+1})] - V(x_t))."""
    T, B = len(r), len(r[0])
    vs = [[0.0] * B for _ in range(T)]
    adv = [[0.0] * B for _ in range(T)]
    for b in range(B):
        ratio = [math.exp(log_rhos[t][b]) for t in range(T)]
        rho = [min(rho_bar, x) for x in ratio]
        c = [lam[t][b] * min(c_bar, ratio[t]) for t in range(T)]
        for s in range(T):
            total, weight = v[s][b], 1.0
            for t in range(s, T):
                total += weight * rho[t] * (r[t][b] + d[t][b] * nv[t][b] - v[t][b])
                weight *= d[t][b] * c[t]
            vs[s][b] = total
        for t in range(T):
            nxt = nv[t][b] if t == T - 1 else kappa[t][b] * vs[t + 1][b] + (1 - kappa[t][b]) * nv[t][b]
            adv[t][b] = rho[t] * (r[t][b] + d[t][b] * nxt - v[t][b])
    return vs, adv


def _t(x, like):
    return torch.tensor(x, dtype=like.dtype)


@pytest.mark.parametrize("seed", range(4))
def test_core_lambda_returns_match_the_forward_sum(seed):
    r, d, v, nv, lam = imagined_rollout(seed=seed)
    # With n >= T the n-step sum is the lambda-return.
    want = ref_core_n_step(r.tolist(), d.tolist(), nv.tolist(), lam.tolist(), n=len(r))
    torch.testing.assert_close(lambda_returns_from_discounts(r, d, nv, lam), _t(want, r))
    # A float lambda is the same as a tensor full of it.
    torch.testing.assert_close(lambda_returns_from_discounts(r, d, nv, 0.7),
                               lambda_returns_from_discounts(r, d, nv, torch.full_like(r, 0.7)))


@pytest.mark.parametrize("n", [1, 2, 3, 8, 20])
@pytest.mark.parametrize("seed", range(3))
def test_core_n_step_matches_the_forward_sum(n, seed):
    r, d, v, nv, lam = imagined_rollout(seed=seed)
    for lam_ in (lam, torch.ones_like(lam)):
        want = ref_core_n_step(r.tolist(), d.tolist(), nv.tolist(), lam_.tolist(), n)
        torch.testing.assert_close(n_step_returns_from_discounts(r, d, nv, n, lam_), _t(want, r))


@pytest.mark.parametrize("seed", range(4))
def test_core_gae_matches_the_forward_sum_and_is_lambda_return_minus_values(seed):
    r, d, v, nv, lam = imagined_rollout(seed=seed)
    got = gae_from_discounts(r, d, v, nv, lam)
    torch.testing.assert_close(got, _t(ref_core_gae(r.tolist(), d.tolist(), v.tolist(), nv.tolist(), lam.tolist()), r))
    # The critic is consistent wherever lambda_t > 0, so A + V is the lambda-return.
    torch.testing.assert_close(got + v, lambda_returns_from_discounts(r, d, nv, lam))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rho_bar,c_bar", [(1.0, 1.0), (2.0, 0.5), (100.0, 100.0)])
def test_core_vtrace_matches_the_forward_sum(seed, rho_bar, c_bar):
    r, d, v, nv, lam = imagined_rollout(seed=seed)
    log_rhos = torch.randn(r.shape, generator=torch.Generator().manual_seed(seed + 50), dtype=r.dtype)
    ones = torch.ones_like(lam)
    for kappa in (None, ones):
        out = vtrace_from_discounts(r, d, v, nv, log_rhos, lam, rho_bar=rho_bar, c_bar=c_bar, pg_lambda=kappa)
        want_vs, want_adv = ref_core_vtrace(r.tolist(), d.tolist(), v.tolist(), nv.tolist(), log_rhos.tolist(),
                                            lam.tolist(), rho_bar, c_bar, (lam if kappa is None else kappa).tolist())
        torch.testing.assert_close(out.vs, _t(want_vs, r))
        torch.testing.assert_close(out.pg_advantages, _t(want_adv, r))
        torch.testing.assert_close(out.rhos, log_rhos.exp().clamp(max=rho_bar))


@pytest.mark.parametrize("seed", range(4))
def test_core_vtrace_on_policy_is_the_n_step_and_lambda_return(seed):
    r, d, v, nv, lam = imagined_rollout(seed=seed)
    on_policy = torch.zeros_like(r)   # pi = mu: rho = c = 1, no clipping at rho_bar = c_bar = 1
    # lambda = 1 everywhere (the critic is then consistent everywhere): v_s is the bootstrapped
    # n-step return with n >= T, and the lambda = 1 return.
    consistent = torch.cat([v[1:], nv[-1:]])
    out = vtrace_from_discounts(r, d, v, consistent, on_policy)
    torch.testing.assert_close(out.vs, n_step_returns_from_discounts(r, d, consistent, len(r)))
    torch.testing.assert_close(out.vs, lambda_returns_from_discounts(r, d, consistent, 1.0))
    torch.testing.assert_close(out.pg_advantages, out.vs - v)
    # Per-step lambda: v_s is the lambda-return and the advantage GAE's.
    out = vtrace_from_discounts(r, d, v, nv, on_policy, lam)
    torch.testing.assert_close(out.vs, lambda_returns_from_discounts(r, d, nv, lam))
    torch.testing.assert_close(out.pg_advantages, gae_from_discounts(r, d, v, nv, lam))


def test_core_lambda_zero_gives_one_step_targets():
    r, d, v, nv, lam = imagined_rollout(seed=9)
    one_step = r + d * nv
    torch.testing.assert_close(lambda_returns_from_discounts(r, d, nv, 0.0), one_step)
    torch.testing.assert_close(n_step_returns_from_discounts(r, d, nv, 1, lam), one_step)
    torch.testing.assert_close(n_step_returns_from_discounts(r, d, nv, 5, 0.0), one_step)
    torch.testing.assert_close(gae_from_discounts(r, d, v, nv, 0.0), td_errors_from_discounts(r, d, v, nv))
    torch.testing.assert_close(td_errors_from_discounts(r, d, v, nv), one_step - v)


def test_core_hand_worked():
    # Two imagined steps: continue probabilities .5 then 1, gamma = .8, lambda = .5, V(s_1) = 2, V(s_2) = 4.
    r = torch.tensor([[1.0], [1.0]])
    d = torch.tensor([[0.4], [0.8]])
    nv = torch.tensor([[2.0], [4.0]])
    # G_1 = 1 + .8 * 4 = 4.2 ; G_0 = 1 + .4 * (.5 * 2 + .5 * 4.2) = 2.24
    torch.testing.assert_close(lambda_returns_from_discounts(r, d, nv, 0.5), torch.tensor([[2.24], [4.2]]))
    # lambda = 1: G_0 = 1 + .4 * 4.2 = 2.68 ; a cut (lambda_0 = 0) gives the one-step 1 + .4 * 2 = 1.8.
    torch.testing.assert_close(lambda_returns_from_discounts(r, d, nv, 1.0), torch.tensor([[2.68], [4.2]]))
    cut = torch.tensor([[0.0], [1.0]])
    torch.testing.assert_close(lambda_returns_from_discounts(r, d, nv, cut), torch.tensor([[1.8], [4.2]]))
    # Decision Transformer's returns-to-go and a discounted version.
    rw = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(returns_to_go(rw), torch.tensor([6.0, 5.0, 3.0]))
    torch.testing.assert_close(returns_to_go(rw, 0.5), torch.tensor([2.75, 3.5, 3.0]))


def test_core_takes_any_batch_dimensions_and_keeps_gradients():
    r, d, v, nv, lam = imagined_rollout(T=6, B=6, seed=2)
    shaped = [x.reshape(6, 2, 3) for x in (r, d, v, nv, lam)]
    torch.testing.assert_close(lambda_returns_from_discounts(shaped[0], shaped[1], shaped[3], shaped[4]),
                               lambda_returns_from_discounts(r, d, nv, lam).reshape(6, 2, 3))
    one_env = lambda_returns_from_discounts(r[:, 0], d[:, 0], nv[:, 0], lam[:, 0])   # [T] alone
    torch.testing.assert_close(one_env, lambda_returns_from_discounts(r, d, nv, lam)[:, 0])
    # Gradients flow into the critic and into predicted continues (Dreamer trains through them).
    nv = nv.clone().requires_grad_(True)
    d = d.clone().requires_grad_(True)
    lambda_returns_from_discounts(r, d, nv, lam).sum().backward()
    assert nv.grad is not None and d.grad is not None and torch.isfinite(d.grad).all()
    assert d.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", range(3))
def test_returns_to_go_and_group_relative_advantages_match_plain_python(seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(7, 3, generator=g, dtype=torch.float64)
    d = torch.rand(7, 3, generator=g, dtype=torch.float64)
    want = [[sum(r[k, b].item() * math.prod(d[j, b].item() for j in range(t, k)) for k in range(t, 7))
             for b in range(3)] for t in range(7)]
    torch.testing.assert_close(returns_to_go(r, d), _t(want, r))
    torch.testing.assert_close(returns_to_go(r), r.flip(0).cumsum(0).flip(0))
    groups = torch.randn(4, 5, generator=g, dtype=torch.float64)
    want = [[(x - statistics.fmean(row)) / (statistics.pstdev(row) + 1e-6) for x in row] for row in groups.tolist()]
    torch.testing.assert_close(group_relative_advantages(groups), _t(want, groups))


def test_group_relative_advantages_hand_worked():
    # Four answers to one prompt, two right: mean .5, std .5 -> +-1; a group all right or all wrong -> 0.
    adv = group_relative_advantages(torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    torch.testing.assert_close(adv, torch.tensor([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(group_relative_advantages(torch.tensor([[1, 0]])), torch.tensor([[1.0, -1.0]]),
                               atol=1e-5, rtol=0)


def test_core_bad_inputs_give_clear_errors():
    r, d, v, nv, lam = imagined_rollout(seed=1)
    with pytest.raises(ValueError, match=r"next_values has shape \(7, 3\) but rewards has \(8, 3\)"):
        lambda_returns_from_discounts(r, d, nv[:-1], lam)
    with pytest.raises(ValueError, match=r"discounts must be a float or a tensor of shape \(8, 3\)"):
        lambda_returns_from_discounts(r, d[:, :1], nv, lam)
    with pytest.raises(ValueError, match=r"lambda_ must be in \[0, 1\]"):
        gae_from_discounts(r, d, v, nv, 1.5)
    with pytest.raises(ValueError, match=r"discounts must be in \[-1, 1\]"):
        td_errors_from_discounts(r, 2.0, v, nv)
    with pytest.raises(ValueError, match=r"\[T, \.\.\.\]"):
        returns_to_go(torch.tensor(1.0))
    with pytest.raises(ValueError, match="n must be"):
        n_step_returns_from_discounts(r, d, nv, 2.5)
    with pytest.raises(ValueError, match="rho_bar >= c_bar"):
        vtrace_from_discounts(r, d, v, nv, torch.zeros_like(r), rho_bar=0.5, c_bar=1.0)
    with pytest.raises(TypeError, match="lambda_ must be a float or a torch.Tensor"):
        lambda_returns_from_discounts(r, d, nv, [0.5])
    with pytest.raises(ValueError, match=r"\[\.\.\., K\]"):
        group_relative_advantages(torch.zeros(3, 0))


# ---------------------------------------------------- the mask functions are the core
@pytest.mark.parametrize("seed", range(3))
def test_mask_functions_are_the_core_with_mask_discounts(seed):
    r, v, nv, term, trunc = random_rollout(seed=seed)
    gamma, lam = 0.97, 0.8
    d = gamma * (~term).to(r.dtype)
    cont = (~(term | trunc)).to(r.dtype)
    assert torch.equal(lambda_returns(r, term, trunc, nv, gamma, lam),
                       lambda_returns_from_discounts(r, d, nv, lam * cont))
    assert torch.equal(discounted_returns(r, term, trunc, nv, gamma), lambda_returns_from_discounts(r, d, nv, cont))
    assert torch.equal(n_step_targets(r, term, trunc, nv, gamma, 3), n_step_returns_from_discounts(r, d, nv, 3, cont))
    assert torch.equal(td_errors(r, v, nv, term, gamma), td_errors_from_discounts(r, d, v, nv))
    # GAE rounds gamma * lambda once (as it always has); the core multiplies gamma_t by lambda_t.
    torch.testing.assert_close(gae_advantages(r, v, nv, term, trunc, gamma, lam),
                               gae_from_discounts(r, d, v, nv, lam * cont), rtol=1e-12, atol=1e-12)
    log_rhos = torch.randn_like(r)
    a = vtrace(r, v, nv, term, trunc, log_rhos, gamma, rho_bar=1.5, c_bar=1.0)
    b = vtrace_from_discounts(r, d, v, nv, log_rhos, cont, rho_bar=1.5, c_bar=1.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("gamma,n", [(0.9, 3), (0.997, 10), (-1.0, 10), (1.0, 1)])
def test_muzero_value_targets_are_the_core_n_step_return(gamma, n):
    """MuZero's per-episode [E, L] targets are the core on [L, E], with V(s_{t+1}) = nu_{t+1}
    inside the episode and a cut (lambda = 0) at its last step, which bootstraps from the final
    observation (truncated) or from nothing (terminated: gamma_t = 0)."""
    from course_lib.agents.muzero import n_step_value_targets
    g = torch.Generator().manual_seed(0)
    E, T = 4, 12
    rewards = torch.randn(E, T, generator=g, dtype=torch.float64)
    values = torch.randn(E, T, generator=g, dtype=torch.float64)
    lengths = torch.tensor([12, 7, 1, 5])
    terminated = torch.tensor([False, True, True, False])
    bootstrap = torch.randn(E, generator=g, dtype=torch.float64)
    z = n_step_value_targets(rewards, values, lengths, terminated, bootstrap, gamma, n)
    for e in range(E):
        L = int(lengths[e])
        nv = torch.cat([values[e, 1:L], bootstrap[e:e + 1]])
        d = torch.full((L,), gamma, dtype=torch.float64)
        d[-1] = 0.0 if terminated[e] else gamma
        lam = torch.ones(L, dtype=torch.float64)
        lam[-1] = 0.0
        torch.testing.assert_close(z[e, :L], n_step_returns_from_discounts(rewards[e, :L], d, nv, n, lam))


# ------------------------------- the functions as they were before the float-discount core
# Verbatim copies of course_lib/returns.py before the core existed: the mask functions must
# return exactly these numbers (torch.equal, not a tolerance), so PPO's and IMPALA's runs stay
# bit for bit what they were.
def _old_masks(terminated, truncated, dtype):
    terminated = terminated.to(torch.bool)
    truncated = truncated.to(torch.bool)
    return (~terminated).to(dtype), (~(terminated | truncated)).to(dtype)


def old_td_errors(rewards, values, next_values, terminated, gamma):
    not_terminated = (~terminated.to(torch.bool)).to(rewards.dtype)
    return rewards + gamma * not_terminated * next_values - values


def old_discounted_returns(rewards, terminated, truncated, next_values, gamma):
    not_terminated, continues = _old_masks(terminated, truncated, rewards.dtype)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    future = next_values[-1]
    for t in reversed(range(T)):
        future = continues[t] * future + (1 - continues[t]) * next_values[t] if t < T - 1 else next_values[t]
        out[t] = rewards[t] + gamma * not_terminated[t] * future
        future = out[t]
    return out


def old_n_step_targets(rewards, terminated, truncated, next_values, gamma, n):
    not_terminated, continues = _old_masks(terminated, truncated, rewards.dtype)
    T = rewards.shape[0]
    targets = torch.zeros_like(rewards)
    alive = torch.ones_like(rewards)
    discount = torch.ones_like(rewards)
    for k in range(min(int(n), T)):
        span = T - k
        r, nt, nv = rewards[k:], not_terminated[k:], next_values[k:]
        stops = torch.ones_like(r) if k == n - 1 else 1 - continues[k:]
        stops[-1] = 1
        a, d = alive[:span], discount[:span]
        targets[:span] += a * d * (r + gamma * stops * nt * nv)
        alive[:span] = a * (1 - stops)
        discount[:span] = d * gamma
    return targets


def old_gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    not_terminated, continues = _old_masks(terminated, truncated, rewards.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    decay = gamma * lam * continues
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + decay[t] * running
        advantages[t] = running
    return advantages


def old_lambda_returns(rewards, terminated, truncated, next_values, gamma, lam):
    not_terminated, continues = _old_masks(terminated, truncated, rewards.dtype)
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    future = next_values[-1]
    for t in reversed(range(T)):
        if t == T - 1:
            blended = next_values[t]
        else:
            c = continues[t] * lam
            blended = (1 - c) * next_values[t] + c * future
        out[t] = rewards[t] + gamma * not_terminated[t] * blended
        future = out[t]
    return out


def old_vtrace(rewards, values, next_values, terminated, truncated, log_rhos, gamma, rho_bar=1.0, c_bar=1.0,
               pg_rho_bar=None, lam=1.0):
    with torch.no_grad():
        not_terminated, continues = _old_masks(terminated, truncated, rewards.dtype)
        ratios = torch.exp(log_rhos.to(rewards.dtype))
        rhos = ratios.clamp(max=rho_bar)
        cs = lam * ratios.clamp(max=c_bar)
        deltas = rhos * (rewards + gamma * not_terminated * next_values - values)
        T = rewards.shape[0]
        vs_minus_v = torch.empty_like(rewards)
        running = torch.zeros_like(rewards[0])
        for t in reversed(range(T)):
            running = deltas[t] + gamma * continues[t] * cs[t] * running
            vs_minus_v[t] = running
        vs = values + vs_minus_v
        vs_next = next_values.clone()
        vs_next[:-1] = torch.where(continues[:-1].bool(), vs[1:], next_values[:-1])
        pg_rhos = ratios.clamp(max=rho_bar if pg_rho_bar is None else pg_rho_bar)
        pg_advantages = pg_rhos * (rewards + gamma * not_terminated * vs_next - values)
    return vs, pg_advantages, rhos


# PPO's default (.98, .8) and speed profile (.99, .9), IMPALA's .99, and pairs whose gamma*lambda
# rounds differently from fl(gamma) * fl(lambda) in float32 (.9, .9).
GAMMA_LAMBDA = [(0.98, 0.8), (0.99, 0.9), (0.99, 0.95), (0.9, 0.9), (0.3, 0.7), (1.0, 1.0), (0.0, 0.5), (0.9, 0.0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(6))
def test_mask_functions_equal_the_old_ones_bit_for_bit(seed, dtype):
    r, v, nv, term, trunc = random_rollout(T=33, B=16, seed=seed, p_end=0.1, dtype=dtype)
    r = r * 10   # rewards of CartPole's scale
    for gamma, lam in GAMMA_LAMBDA:
        assert torch.equal(gae_advantages(r, v, nv, term, trunc, gamma, lam),
                           old_gae_advantages(r, v, nv, term, trunc, gamma, lam))
        assert torch.equal(lambda_returns(r, term, trunc, nv, gamma, lam),
                           old_lambda_returns(r, term, trunc, nv, gamma, lam))
        assert torch.equal(td_errors(r, v, nv, term, gamma), old_td_errors(r, v, nv, term, gamma))
        assert torch.equal(discounted_returns(r, term, trunc, nv, gamma),
                           old_discounted_returns(r, term, trunc, nv, gamma))
        for n in (1, 2, 5, 40):
            assert torch.equal(n_step_targets(r, term, trunc, nv, gamma, n),
                               old_n_step_targets(r, term, trunc, nv, gamma, n))
        g = torch.Generator().manual_seed(seed + 1000)
        log_rhos = 2 * torch.randn(r.shape, generator=g, dtype=dtype)
        for rho_bar, c_bar, pg_rho_bar in [(1.0, 1.0, None), (2.0, 0.5, 1.5), (100.0, 100.0, None)]:
            new = vtrace(r, v, nv, term, trunc, log_rhos, gamma, rho_bar, c_bar, pg_rho_bar, lam=lam)
            old = old_vtrace(r, v, nv, term, trunc, log_rhos, gamma, rho_bar, c_bar, pg_rho_bar, lam=lam)
            assert all(torch.equal(a, b) for a, b in zip(new, old)), (gamma, lam, rho_bar, c_bar)


def test_mask_functions_keep_their_gradients_bit_for_bit():
    r, v, nv, term, trunc = random_rollout(T=20, B=8, seed=11, dtype=torch.float32)
    grads = []
    for fn in (gae_advantages, old_gae_advantages):
        vv = v.clone().requires_grad_(True)
        nn_ = nv.clone().requires_grad_(True)
        (fn(r, vv, nn_, term, trunc, 0.98, 0.8) * torch.linspace(-1, 1, 8)).sum().backward()
        grads.append((vv.grad, nn_.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
