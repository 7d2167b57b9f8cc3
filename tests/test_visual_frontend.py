"""Visual front-ends (``models/visual.py``): the ``linear-std`` option (per-frame standardised
pixels, linear output) -- shapes, padding invariance, determinism, that it reaches the model, and
that it keeps an occluding patch visible where the published ``linear`` one loses units."""
from __future__ import annotations

import pytest
import torch

from models.registry import FRONTENDS
from models.vae import AVVAE
from models.spectral import STFTConfig, video_frame_index
from models.visual import FrontendConfig, StandardisedLinearFrontend, per_distinct_frame, standardise_frames

LIP = 16

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frontend(name: str = "linear-std", seed: int = 0):
    torch.manual_seed(seed)
    return FRONTENDS.get(name)(FrontendConfig(lip_size=LIP, out_dim=8, hidden=32)).eval()


def _lips(B=2, T=7, seed=0) -> torch.Tensor:
    return torch.rand(B, T, LIP, LIP, generator=torch.Generator().manual_seed(seed))


def test_registered_and_listed():
    assert "linear-std" in FRONTENDS.names()
    assert isinstance(_frontend(), StandardisedLinearFrontend)


def test_standardise_frames_moments_and_constant_frames():
    x = _lips().flatten(-2)
    y = standardise_frames(x)
    assert torch.allclose(y.mean(-1), torch.zeros(y.shape[:-1]), atol=1e-5)
    assert torch.allclose(y.std(-1, unbiased=False), torch.ones(y.shape[:-1]), atol=1e-2)
    # affine changes of a frame's intensity do not change the standardised frame
    assert torch.allclose(standardise_frames(0.5 * x + 0.2), y, atol=1e-2)
    black = torch.zeros(3, LIP * LIP)
    assert torch.equal(standardise_frames(black), black)


def test_shapes_and_output_is_not_rectified():
    fe = _frontend()
    mask = torch.ones(2, 7, dtype=torch.bool)
    v = fe(_lips(), mask)
    assert v.shape == (2, 7, 8)
    assert (v < 0).any()  # no final ReLU
    with pytest.raises(ValueError, match="expects lips"):
        fe(torch.rand(2, 7, LIP + 1, LIP + 1), mask)


def test_padding_invariance_and_zero_output_on_padding():
    fe = _frontend()
    lips = _lips(B=1, T=5)
    mask = torch.ones(1, 5, dtype=torch.bool)
    with torch.no_grad():
        short = fe(lips, mask)
        padded_lips = torch.cat([lips, torch.rand(1, 3, LIP, LIP)], dim=1)
        padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], dim=1)
        long = fe(padded_lips, padded_mask)
    assert torch.allclose(long[:, :5], short, atol=1e-6)
    assert torch.equal(long[:, 5:], torch.zeros_like(long[:, 5:]))


def test_deterministic_for_a_seed_and_different_across_seeds():
    lips, mask = _lips(), torch.ones(2, 7, dtype=torch.bool)
    with torch.no_grad():
        a, b, c = (_frontend(seed=s)(lips, mask) for s in (0, 0, 1))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_option_reaches_the_model_and_its_features():
    torch.manual_seed(0)
    m = AVVAE(fusion="gated", lip_size=LIP, frontend="linear-std", frontend_hidden=32, visual_dim=8).eval()
    assert isinstance(m.frontend, StandardisedLinearFrontend)
    lips, mask = _lips(), torch.ones(2, 7, dtype=torch.bool)
    with torch.no_grad():
        v = m.visual_features(lips, mask)
        expected = m.frontend(lips, mask)
    assert v.shape == (2, 7, 8)
    assert torch.allclose(v, expected)


def test_no_constant_unit_and_an_occluding_patch_moves_the_embedding_more_than_published():
    """At initialisation: every output unit varies across frames (no dead unit), and a gray patch
    moves the embedding by more than the published front-end's relative movement."""
    g = torch.Generator().manual_seed(3)
    base = torch.rand(1, 1, LIP, LIP, generator=g)
    frames = (base + 0.1 * torch.randn(1, 64, LIP, LIP, generator=g)).clamp(0, 1)
    occluded = frames.clone()
    occluded[..., 4:12, 4:12] = 0.5
    mask = torch.ones(1, 64, dtype=torch.bool)

    def rel_move(name: str) -> tuple[float, float]:
        fe = _frontend(name)
        with torch.no_grad():
            a, b = fe(frames, mask)[0], fe(occluded, mask)[0]
        spread = (a - a.mean(0)).norm(dim=1).mean()
        return float((b - a).norm(dim=1).mean() / spread), float((a.std(0) < 1e-6).float().mean())

    move_std, dead_std = rel_move("linear-std")
    move_lin, _ = rel_move("linear")
    assert dead_std == 0.0
    assert move_std > move_lin


@pytest.mark.parametrize("kind", ["linear", "linear-std", "cnn2d"])
def test_distinct_frame_evaluation_equals_the_per_frame_network(kind):
    """The per-frame front-ends evaluate their network once per run of repeated frames (lips at
    the STFT rate repeat the video frames): outputs and parameter gradients equal a plain
    evaluation of every frame, and a frame that differs from its neighbour is not merged."""
    torch.manual_seed(0)
    fe = FRONTENDS.get(kind)(FrontendConfig(lip_size=16, out_dim=8, hidden=32, channels=4))
    video = torch.rand(2, 9, 16, 16)
    idx = torch.as_tensor(video_frame_index(20, 25.0, STFTConfig(), n_video_frames=9))
    lips = video[:, idx].clone()  # [2, 20, 16, 16], each video frame repeated 2-3 times
    lips[1, 5, :8] = 0.0  # one frame inside a run differs (half occluded): it must get its own output
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 16:] = False

    out = fe(lips, mask)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in fe.parameters()]
    fe.zero_grad()
    # reference: each frame alone (T = 1 sequences cannot be deduplicated)
    ref = torch.cat([fe(lips[:, t:t + 1], mask[:, t:t + 1]) for t in range(20)], dim=1)
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for g, p in zip(grads, fe.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)
    assert torch.equal(lips[1, 6], video[1, idx[6]]) and idx[5] == idx[6]  # frame 5 was in a run with 6
    assert not torch.allclose(out[1, 5], out[1, 6])  # ... and, altered, has its own output


def test_per_distinct_frame_calls_the_network_once_per_run():
    calls = []

    def net(x):
        calls.append(x.shape[0])
        return x.sum(dim=-1, keepdim=True)

    frames = torch.tensor([[[1.0], [1.0], [2.0], [2.0], [1.0]], [[3.0], [3.0], [3.0], [0.0], [0.0]]])
    out = per_distinct_frame(net, frames)
    assert calls == [5]  # runs: [1,1] [2,2] [1] | [3,3,3] [0,0]
    torch.testing.assert_close(out, frames)
