"""Controls of the reliability diagnostics, end to end through the enhancement API, the runner's
per-row weight summaries and the report's reliability table: the ``oracle-reliability`` fusion
(visual weight = 1 - true corruption level) must read AUC ~1, a constant-weight fusion 0.5, and
the audio-only A-VAE "no weights"."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.report import diagnostics as diag
from benchmark.report.style import add_system_column
from benchmark.runner.stages import weight_summaries
from models.enhancement.api import EnhanceInput, enhance
from models.enhancement.toy import synth_utterance
from models.fusion.oracle_reliability import OracleReliabilityFusion
from models.registry import FUSIONS
from models.vae import AVAE, AVVAE, VAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LDEM = {"n_iter": 3, "n_chains": 2}


def _av(fusion: str, **fusion_params) -> AVVAE:
    torch.manual_seed(0)
    return AVVAE(VAEConfig(hidden=32, latent_dim=4, lip_size=16, visual_dim=16, frontend_hidden=32, fusion=fusion,
                           fusion_params=fusion_params))


def test_oracle_weight_is_half_of_one_minus_level_and_a_convex_share():
    torch.manual_seed(1)
    f = OracleReliabilityFusion(audio_dim=8, visual_dim=6, out_dim=8)
    a, v = torch.randn(2, 9, 8), torch.randn(2, 9, 6)
    mask = torch.ones(2, 9, dtype=torch.bool)
    level = torch.rand(2, 9)
    level[0, :3] = 0.0
    level[1, -2:] = 1.0
    out = f(a, v, mask, level=level)
    torch.testing.assert_close(out.weights[..., 1], 0.5 * (1 - level), rtol=0, atol=0)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(2, 9))
    # the reported weight is the contribution share of docs/fusion_weights.md
    h_a = torch.tanh(f.proj_a(a))
    c_a = (1 - out.weights[..., 1:]) * h_a
    c_v = out.fused - c_a
    na, nv = c_a.norm(dim=-1), c_v.norm(dim=-1)
    torch.testing.assert_close(nv / (na + nv), 0.5 * (1 - level), rtol=0, atol=1e-5)
    # no ground truth given: clean video (the clean-frame weight, 0.5 by default)
    assert torch.equal(f(a, v, mask).weights[..., 1], torch.full((2, 9), 0.5))
    # fully corrupted frames with the audio-identity start: exactly tanh(audio)
    assert f.init_audio_identity()
    full = f(a, v, mask, level=torch.ones(2, 9))
    assert torch.equal(full.fused, torch.tanh(a))


def test_oracle_model_uses_level_and_enhance_requires_it():
    model = _av("oracle-reliability")
    assert model.uses_level and not _av("concat").uses_level and not AVAE(VAEConfig(hidden=16, latent_dim=4)).uses_level
    x, lips, fps = synth_utterance(np.random.default_rng(0), 1.0)
    (o,) = enhance(model, "ldem", [EnhanceInput("c/u", x, lips, fps)], params=LDEM, progress=False)
    assert o.estimate is None and "corruption level" in o.error


def _inputs(n_utts: int = 2):
    """Each utterance with clean video and with an occluded burst (level 0.7), as the runner's
    mixing makes them (same mixture, same pair id)."""
    out = []
    for u in range(n_utts):
        x, lips, fps = synth_utterance(np.random.default_rng(10 + u), 1.0)
        mix = (x + 0.2 * np.random.default_rng(20 + u).standard_normal(x.size)).astype(np.float32)
        for corr in ("none", "occlusion"):
            level = np.zeros(len(lips), np.float32)
            frames = lips.copy()
            if corr != "none":
                level[6:16] = 0.7
                frames[6:16, 3:13, 3:13] = 128
            out.append((u, corr, EnhanceInput(f"white_snr0_{corr}/u{u}", mix, frames, fps, corruption=level,
                                              pair_id=f"mix:white_snr0_s0/u{u}")))
    return out


def test_controls_read_right_end_to_end(tmp_path):
    if "constant" not in FUSIONS.names():
        pytest.skip("the constant-weight fusion is not registered")
    systems = {"av-vae/oracle-reliability": _av("oracle-reliability"), "av-vae/constant": _av("constant"),
               "a-vae": AVAE(VAEConfig(hidden=32, latent_dim=4))}
    inputs = _inputs()
    rows = []
    for label, model in systems.items():
        outs = enhance(model, "ldem", [i for _, _, i in inputs], params=LDEM, progress=False)
        for (u, corr, inp), o in zip(inputs, outs):
            assert o.error is None, o.error
            path = tmp_path / f"{label.replace('/', '__')}_{u}_{corr}.npz"
            np.savez(path, **o.traces)
            rows.append({"utt_id": f"u{u}", "item_id": inp.item_id, "condition_id": inp.item_id.split("/")[0],
                         "noise": "white", "snr_db": 0.0, "corruption": corr, "severity": 0.7 if corr != "none" else 0.0,
                         "model_id": label, "model": label.split("/")[0], "fusion": label.split("/")[1] if "/" in label else None,
                         "algorithm": "ldem", "traces_path": path.name, **weight_summaries(path)})
            if label == "av-vae/oracle-reliability":  # the weight is exactly 0.5 (1 - level) at the STFT rate
                np.testing.assert_array_equal(o.traces["weights_decoder"][:, 1], 0.5 * (1 - o.traces["corruption_stft"]))
    df = add_system_column(pd.DataFrame(rows))
    occl = df[df["corruption"] == "occlusion"].set_index(["system", "utt_id"])
    # runner's per-row summaries (the same AUC function as the report)
    assert (occl.loc["av-vae/oracle-reliability", "visual_weight_auc"] >= 0.95).all()
    assert (occl.loc["av-vae/constant", "visual_weight_auc"] == 0.5).all()
    assert occl.loc["a-vae", "visual_weight_auc"].isna().all()
    rel = diag.reliability_table(df, diag.frame_table(df, tmp_path), n_boot=50).set_index("system")
    assert rel.loc["av-vae/oracle-reliability", "auc_within"] >= 0.95
    # frame-paired (common random numbers: same mixture, same draws): the oracle's weight on the
    # occluded frames is 0.5 with the clean video and 0.15 with the occluded one, the constant ties
    assert rel.loc["av-vae/oracle-reliability", "auc_paired"] == 1.0
    assert rel.loc["av-vae/oracle-reliability", "weight_drop_paired"] == pytest.approx(0.35)
    assert rel.loc["av-vae/oracle-reliability", "n_pairs_paired"] == 2
    assert rel.loc["av-vae/constant", "auc_paired"] == 0.5 and rel.loc["av-vae/constant", "weight_drop_paired"] == 0.0
    assert np.isnan(rel.loc["a-vae", "auc_paired"])
    assert rel.loc["av-vae/oracle-reliability", "control"].startswith("positive control")
    assert rel.loc["av-vae/constant", "auc_within"] == 0.5
    assert rel.loc["av-vae/constant", "control"] != ""
    assert rel.loc["a-vae", "weights"] == "no weights" and np.isnan(rel.loc["a-vae", "auc_within"])
    assert rel.loc["a-vae", "control"] == ""
    assert rel.loc["av-vae/oracle-reliability", "weights"] == "decoder"
    # the A-VAE cannot see the video: common random numbers make its paired drop exactly 0
    res = df.assign(delta_si_sdr=0.0)
    assert diag.metric_drop(res[res["system"] == "a-vae"], n_boot=20).loc[0, "drop"] == 0.0


def test_oracle_gets_the_augmentation_levels_in_training():
    """The training batches carry the visual augmentation's per-frame level to the oracle."""
    from models.features import ClipItem
    from models.spectral import STFTConfig, power_spectrogram
    from models.training import _Batcher, _run_epoch

    rng = np.random.default_rng(0)
    items = []
    for k in range(2):
        x, lips, fps = synth_utterance(rng, 0.6)
        P = power_spectrogram(x / np.max(np.abs(x))).float()
        items.append(ClipItem(utt_id=f"u{k}", speaker="s", power=P, lips_video=lips, fps=fps))

    def augment(frames, utt_id, epoch):
        level = np.zeros(len(frames), np.float32)
        level[: len(frames) // 2] = 0.4
        return frames, level

    model = _av("oracle-reliability")
    seen = []
    model.fusion_dec.register_forward_hook(lambda m, args, kwargs, out: seen.append(out.weights.detach()), with_kwargs=True)
    batcher = _Batcher(items, 16, 4, True, augment, STFTConfig())
    _run_epoch(model, batcher, 0, torch.device("cpu"), 1.0, torch.optim.Adam(model.parameters(), 1e-3), None,
               torch.Generator().manual_seed(0))
    w = torch.cat([s[..., 1].reshape(-1) for s in seen])
    assert torch.isclose(w, torch.tensor(0.3)).any() and torch.isclose(w, torch.tensor(0.5)).any()


def test_vem_encoder_posterior_gives_the_oracle_its_level():
    """VEM's per-utterance encoder copies (posterior='encoder') also see the true level."""
    model = _av("oracle-reliability")
    seen = []
    model.fusion_enc.register_forward_hook(lambda m, args, kwargs, out: seen.append(out.weights.detach()), with_kwargs=True)
    _, _, inp = _inputs(1)[1]
    (o,) = enhance(model, "vem", [inp], params={"n_iter": 2, "posterior": "encoder"}, progress=False)
    assert o.error is None, o.error
    w = seen[-1][0, :, 1]  # the last encoder call: an encoder copy of the utterance
    torch.testing.assert_close(w, 0.5 * (1 - torch.from_numpy(o.traces["corruption_stft"])), rtol=0, atol=0)


def test_oracle_clean_frame_weight_is_an_option():
    """``max_visual_weight`` scales the weight (1.0: the first version, all-visual on clean frames)."""
    torch.manual_seed(1)
    a, v, mask = torch.randn(1, 5, 8), torch.randn(1, 5, 6), torch.ones(1, 5, dtype=torch.bool)
    level = torch.tensor([[0.0, 0.25, 0.5, 1.0, 0.0]])
    for wmax in (1.0, 0.5, 0.2):
        f = OracleReliabilityFusion(audio_dim=8, visual_dim=6, out_dim=8, max_visual_weight=wmax)
        torch.testing.assert_close(f(a, v, mask, level=level).weights[..., 1], wmax * (1 - level), rtol=0, atol=0)
    with pytest.raises(ValueError):
        _av("oracle-reliability", max_visual_weight=1.5)
