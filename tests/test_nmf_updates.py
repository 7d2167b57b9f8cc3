"""IS-NMF / gain multiplicative updates: never increase the cost; padding-neutral; seeded init."""
from __future__ import annotations

import numpy as np
import torch

from models.enhancement.nmf import NMFState, init_nmf, is_cost, is_nmf, m_step, update_g, update_H, update_W


def _random_problem(seed: int = 0, B: int = 3, T: int = 40, F: int = 33, K: int = 5, R: int = 4):
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(B, T, F, generator=g) ** 3 * 10 + 1e-4
    Vs = torch.exp(torch.randn(R, B, T, F, generator=g))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 30:] = False
    mask[2, 12:] = False
    P = torch.where(mask.unsqueeze(-1), P, torch.zeros(()))
    st = init_nmf(["a", "b", "c"][:B], [int(m.sum()) for m in mask], F, K, seed=seed)
    return P.double(), Vs.double(), mask, NMFState(st.W.double(), st.H.double(), st.g.double())


def test_each_update_never_increases_is_cost():
    P, Vs, mask, st = _random_problem()
    cost = is_cost(P, Vs, st, mask)
    for it in range(30):
        for name in ("W", "H", "g"):
            if name == "W":
                st = NMFState(update_W(P, Vs, st, mask), st.H, st.g)
            elif name == "H":
                st = NMFState(st.W, update_H(P, Vs, st, mask), st.g)
            else:
                st = NMFState(st.W, st.H, update_g(P, Vs, st, mask))
            new = is_cost(P, Vs, st, mask)
            assert torch.all(new <= cost + 1e-10), (it, name, (new - cost).max().item())
            cost = new
    assert torch.all(torch.isfinite(cost))


def test_m_step_decreases_cost_substantially_and_respects_active():
    P, Vs, mask, st = _random_problem(1)
    c0 = is_cost(P, Vs, st, mask)
    active = torch.tensor([True, False, True])
    st2 = st
    for _ in range(20):
        st2 = m_step(P, Vs, st2, mask, active=active)
    c1 = is_cost(P, Vs, st2, mask)
    assert c1[0] < c0[0] - 0.05 and c1[2] < c0[2] - 0.05
    assert torch.equal(st2.W[1], st.W[1]) and torch.equal(st2.H[1], st.H[1]) and torch.equal(st2.g[1], st.g[1])


def test_padding_does_not_change_updates():
    P, Vs, mask, st = _random_problem(2)
    full = m_step(P, Vs, st, mask)
    b, tb = 2, int(mask[2].sum())
    one = NMFState(st.W[b:b + 1], st.H[b:b + 1, :tb], st.g[b:b + 1, :tb])
    single = m_step(P[b:b + 1, :tb], Vs[:, b:b + 1, :tb], one, mask[b:b + 1, :tb])
    assert torch.allclose(full.W[b], single.W[0], rtol=1e-10)
    assert torch.allclose(full.H[b, :tb], single.H[0], rtol=1e-10)


def test_init_is_per_item_and_length_independent():
    a = init_nmf(["x", "y"], [10, 20], 9, 3, seed=5)
    b = init_nmf(["y"], [20], 9, 3, seed=5)
    assert torch.equal(a.W[1], b.W[0]) and torch.equal(a.H[1, :20], b.H[0])
    assert not torch.equal(a.W[0], a.W[1])
    assert torch.all(a.g == 1)


def test_plain_is_nmf_monotone_with_fixed_dictionary():
    rng = np.random.default_rng(0)
    P = torch.as_tensor(rng.random((50, 20)) ** 2 + 1e-3)
    Wf = torch.as_tensor(rng.random((20, 4)))
    W, H, costs = is_nmf(P, 3, n_iter=40, W_fixed=Wf, rng=rng)
    assert W.shape == (20, 7) and H.shape == (50, 7)
    assert torch.equal(W[:, :4], Wf)
    assert all(b <= a + 1e-9 for a, b in zip(costs, costs[1:]))
    assert costs[-1] < costs[0]
