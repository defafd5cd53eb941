"""The sepsis-style MDP (Oberst & Sontag 2019 dynamics): exact tensor by enumeration vs its own sampler."""
import numpy as np
import pytest
import scipy.sparse as sp

from mdpsandbox import solve
from mdpsandbox.envs.sepsis import (
    SEPSIS_N_ACTIONS, SEPSIS_N_OBS_STATES, decode, decode_action, encode, encode_action, sepsis_initial,
    sepsis_mdp, sepsis_outcome, sepsis_simulate, sepsis_step, sepsis_transition_matrix,
)

S, A = SEPSIS_N_OBS_STATES, SEPSIS_N_ACTIONS


def test_encode_decode_roundtrip_all_states():
    idx = np.arange(2 * S)
    d = decode(idx, full=True)
    assert np.array_equal(encode(d["hr"], d["sysbp"], d["o2"], d["glucose"], d["abx"], d["vaso"], d["vent"],
                                 diabetic=d["diabetic"]), idx)
    a = np.arange(A)
    da = decode_action(a)
    assert np.array_equal(encode_action(da["abx"], da["vent"], da["vaso"]), a)
    assert encode(hr=2, sysbp=1, o2=0, glucose=4, abx=1, vaso=0, vent=1) == 2 * 240 + 80 + 4 * 8 + 4 + 1


def test_encode_rejects_out_of_range_levels():
    with pytest.raises(ValueError, match="glucose"):
        encode(1, 1, 1, 5)
    with pytest.raises(ValueError, match="index"):
        decode(720)
    with pytest.raises(ValueError, match="action"):
        decode_action(8)


def test_outcome_counts_by_enumeration():
    # death: >= 3 of the 4 vitals abnormal; discharge: all normal and no treatment
    out = sepsis_outcome()
    n_death = 0
    for s in range(S):
        d = decode(s)
        n_abn = (d["hr"] != 1) + (d["sysbp"] != 1) + (d["o2"] != 1) + (d["glucose"] != 2)
        n_death += n_abn >= 3
    # vitals combos with >= 3 abnormal: C(4,3)-type count over levels (2·2·1·4 non-normal levels)
    k = [2, 2, 1, 4]  # abnormal levels per vital
    n3 = sum(np.prod([k[i] if i != j else 1 for i in range(4)]) for j in range(4)) + np.prod(k)
    assert n_death == (out == -1).sum() == n3 * 8
    assert (out == 1).sum() == 1 and out[encode(1, 1, 1, 2)] == 1


@pytest.mark.parametrize("diabetic", [0, 1])
@pytest.mark.parametrize("cap", [True, False])
def test_transition_rows_stochastic_and_absorbing_self_loops(diabetic, cap):
    P = sepsis_transition_matrix(diabetic, source_glucose_cap=cap)
    assert P.shape == (S * A, S)
    assert np.all(P.data > 0)
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, atol=1e-14)
    absorbing = np.flatnonzero(sepsis_outcome() != 0)
    for s in absorbing[:20]:
        for a in range(A):
            row = P[s * A + a]
            assert row.nnz == 1 and row.indices[0] == s
    # treatments in the next state equal the action (non-absorbing rows)
    live = np.flatnonzero(sepsis_outcome() == 0)
    Pd = P[(live[:, None] * A + np.arange(A)).ravel()].tocoo()
    a_row = (live[:, None] * 0 + np.arange(A)).ravel()[Pd.row]
    nxt = decode(Pd.col)
    da = decode_action(a_row)
    for k in ("abx", "vent", "vaso"):
        assert np.array_equal(nxt[k], da[k])


def test_hand_computed_transitions():
    P0 = sepsis_transition_matrix(0).toarray()
    P0c = sepsis_transition_matrix(0, source_glucose_cap=False).toarray()
    P1 = sepsis_transition_matrix(1).toarray()
    # all three treatments from (hr high, bp low, o2 normal, glucose normal), non-diabetic:
    # hr→normal 1/2 (abx), bp low→normal 0.7 (vaso), o2 stays normal (vent on), glucose frozen (vaso on)
    s = encode(2, 0, 1, 2)
    a = encode_action(1, 1, 1)
    assert P0[s * A + a, encode(1, 1, 1, 2, 1, 1, 1)] == pytest.approx(0.5 * 0.7, abs=1e-15)
    assert P0[s * A + a, encode(2, 0, 1, 2, 1, 1, 1)] == pytest.approx(0.5 * 0.3, abs=1e-15)
    assert P0[s * A + a].sum() == pytest.approx(1.0, abs=1e-15) and np.count_nonzero(P0[s * A + a]) == 4
    # diabetic, vaso only from bp low: bp→normal .5, →high .4; glucose +1 w.p. .5; hr, o2 fluctuate
    a = encode_action(0, 0, 1)
    p_hr_stay, p_o2_stay = 0.8 + 0.1, 0.9  # hr high: down .1, up clipped (stays) .1; o2 normal: down .1
    assert P1[s * A + a, encode(2, 2, 1, 3, 0, 1, 0)] == pytest.approx(p_hr_stay * 0.4 * p_o2_stay * 0.5, abs=1e-15)
    # no treatment from (normal, normal, normal, glucose high): discharge iff glucose drops (.1) and the others
    # stay (.8 · .8 · .9, o2 normal cannot go up)
    s = encode(1, 1, 1, 3)
    assert P0[s * A + 0, encode(1, 1, 1, 2)] == pytest.approx(0.8 * 0.8 * 0.9 * 0.1, abs=1e-15)
    # the source's non-diabetic glucose cap: an "up" fluctuation from level 3 lands on level 1
    assert P0[s * A + 0, encode(1, 1, 1, 1)] == pytest.approx(0.8 * 0.8 * 0.9 * 0.1, abs=1e-15)
    assert P0[s * A + 0, encode(1, 1, 1, 4)] == 0.0
    assert P0c[s * A + 0, encode(1, 1, 1, 4)] == pytest.approx(0.8 * 0.8 * 0.9 * 0.1, abs=1e-15)
    assert P0c[s * A + 0, encode(1, 1, 1, 1)] == 0.0


def _assert_binomial(counts, n, p, z=6.0):
    """Every count within z binomial standard deviations (+1 for discreteness); zero-probability cells empty."""
    sd = np.sqrt(n * p * (1 - p))
    dev = np.abs(counts - n * p)
    assert np.all(counts[p == 0] == 0), "sampler reached a transition the exact tensor gives probability 0"
    assert np.all(dev <= z * sd + 1.0), f"max deviation {np.max(dev / (sd + 1e-300))} sd"


@pytest.mark.parametrize("cap", [True, False])
def test_sampler_matches_exact_tensor_all_rows(cap):
    rng = np.random.default_rng(1)
    live = np.flatnonzero(sepsis_outcome() == 0)
    m = 300
    for d in (0, 1):
        P = sepsis_transition_matrix(d, source_glucose_cap=cap)
        rows = (live[:, None] * A + np.arange(A)).ravel()
        s = np.repeat(live[:, None] * 0 + live[:, None], A, axis=1).ravel()
        a = np.tile(np.arange(A), live.size)
        s_rep, a_rep = np.repeat(s, m), np.repeat(a, m)
        nxt = sepsis_step(s_rep, a_rep, np.full(s_rep.size, d), rng, source_glucose_cap=cap)
        row_id = np.repeat(np.arange(rows.size), m)
        counts = sp.csr_matrix((np.ones(nxt.size), (row_id, nxt)), shape=(rows.size, S)).toarray()
        _assert_binomial(counts, m, P[rows].toarray())


def test_sampler_matches_exact_rows_many_draws():
    rng = np.random.default_rng(2)
    n = 200_000
    for d in (0, 1):
        P = sepsis_transition_matrix(d).toarray()
        for s, a in [(encode(2, 0, 0, 2), 7), (encode(0, 1, 0, 4, 1, 1, 1), 0), (encode(1, 2, 1, 0, 0, 1, 0), 1)]:
            nxt = sepsis_step(np.full(n, s), np.full(n, a), np.full(n, d), rng)
            _assert_binomial(np.bincount(nxt, minlength=S), n, P[s * A + a])


def test_absorbing_states_stay_put_in_sampler():
    rng = np.random.default_rng(0)
    absorbing = np.flatnonzero(sepsis_outcome() != 0)
    s = np.repeat(absorbing, A)
    a = np.tile(np.arange(A), absorbing.size)
    assert np.array_equal(sepsis_step(s, a, np.zeros_like(s), rng), s)


@pytest.mark.parametrize("f", [0.0, 0.2, 1.0])
def test_mdp_is_the_diabetes_mixture(f):
    m = sepsis_mdp(f, gamma=0.9)
    P = (1 - f) * sepsis_transition_matrix(0) + f * sepsis_transition_matrix(1)
    np.testing.assert_allclose(m.P2.toarray(), P.toarray(), atol=1e-15)
    np.testing.assert_allclose(m.initial, (1 - f) * sepsis_initial(0) + f * sepsis_initial(1), atol=1e-15)
    np.testing.assert_array_equal(m.terminal, sepsis_outcome() != 0)
    # r(s,a) = expected outcome of the next state
    np.testing.assert_allclose(m.R[~m.terminal], (P @ sepsis_outcome())[np.repeat(~m.terminal, A)].reshape(-1, A),
                               atol=1e-15)
    assert m.initial[m.terminal].sum() == 0


def test_observed_diabetes_is_block_diagonal():
    f = 0.3
    m = sepsis_mdp(f, gamma=0.9, observe_diabetes=True)
    assert m.n_states == 2 * S
    P = m.P2.toarray()
    np.testing.assert_array_equal(P[: S * A, S:], 0.0)
    np.testing.assert_array_equal(P[S * A:, :S], 0.0)
    assert m.initial[S:].sum() == pytest.approx(f)
    # a patient with a known flag: the observed-flag value equals the value of the pure (f ∈ {0, 1}) MDP
    v = solve(m).v
    np.testing.assert_allclose(v[:S], solve(sepsis_mdp(0.0, gamma=0.9)).v, atol=1e-9)
    np.testing.assert_allclose(v[S:], solve(sepsis_mdp(1.0, gamma=0.9)).v, atol=1e-9)


def test_initial_law_matches_sampler():
    pol = np.full((S, A), 1.0 / A)
    n = 100_000
    states, _, _, diab = sepsis_simulate(pol, n, 1, diabetes_fraction=0.5, seed=3)
    for d in (0, 1):
        sel = states[diab == d, 0]
        _assert_binomial(np.bincount(sel, minlength=S), sel.size, sepsis_initial(d))


def test_monte_carlo_return_matches_exact_value_in_observed_flag_mdp():
    # the source's POMDP with a fixed per-patient flag and an observed-state policy that ignores the flag
    # has, per flag, the value of the pure MDP: E[Σ γ^t r_t] ≈ μ0 · V^π  (finite-horizon truncation exact here)
    from mdpsandbox import evaluate
    rng_pol = np.random.default_rng(0).dirichlet(np.ones(A), size=S)
    H, g, n = 40, 0.8, 40_000
    states, actions, rewards, diab = sepsis_simulate(rng_pol, n, H, diabetes_fraction=1.0, seed=5)
    ret = (rewards * g ** np.arange(H)).sum(axis=1)
    m1 = sepsis_mdp(1.0, gamma=g)
    ev = evaluate(m1, rng_pol, horizon=H)
    exact = float(sepsis_initial(1) @ ev.v[0])
    assert abs(ret.mean() - exact) <= 5 * ret.std() / np.sqrt(n)


def test_bad_input():
    with pytest.raises(ValueError, match="diabetes_fraction"):
        sepsis_mdp(1.5)
    with pytest.raises(ValueError, match="gamma"):
        sepsis_mdp(0.2, gamma=1.2)
    with pytest.raises(ValueError, match="gamma"):  # γ = 1: some policy never terminates
        solve(sepsis_mdp(0.2, gamma=1.0))
    with pytest.raises(ValueError, match="policy"):
        sepsis_simulate(np.ones((3, 8)), 10, 5)
    with pytest.raises(ValueError, match="states"):
        sepsis_step(np.array([720]), np.array([0]), np.array([0]), np.random.default_rng(0))
