"""Training that gives reliability a reason to be learned: audio-side degradation of the encoder
input, the per-frame visual corruption level kept through batching, the auxiliary reliability
losses on the fusions' visual weight (penalty, paired rank, the first BCE/MSE) and the
mechanism they train on a synthetic task, and the clean-vs-zeroed-video check in the checkpoint."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import models
from benchmark.configtools import ConfigError
from benchmark.spec import RELSUP_SUFFIX, ModelEntry, TrainingSpec, load_spec
from models.augment import AudioMaskConfig, degrade_audio
from models.features import ClipItem
from models.spectral import STFTConfig, per_frame_to_stft_rate
from models.training import (EpochOptions, _Batcher, _fusion_inputs, _run_epoch, clean_video_weights,
                             fusion_weights_with_grad, reliability_loss, train_model)
from models.vae import AVVAE, VAEConfig
from test_training_loop import _spec, toy  # noqa: F401 - the toy corpus fixture
from test_training_toycorpus import LIP

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F = 17


def _power(B=3, T=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(B, T, F, generator=g) * 4 + 0.05
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[-1, T - 15:] = False
    return p, mask


def _tiny_av(fusion="gated", **kw) -> AVVAE:
    torch.manual_seed(0)
    cfg = dict(n_freq=F, hidden=8, latent_dim=2, lip_size=8, visual_dim=8, frontend_hidden=16, fusion=fusion)
    cfg.update(kw)
    return AVVAE(VAEConfig(**cfg))


# -- audio degradation ---------------------------------------------------------------------------
def test_degrade_audio_masks_frames_and_bands_deterministically_and_leaves_the_input_alone():
    p, mask = _power()
    orig = p.clone()
    cfg = AudioMaskConfig(p_frames=1.0, n_frame_masks=2, max_frames=6, p_bands=1.0, n_band_masks=1, max_bins=5)
    fill = torch.full((F,), 0.123)
    d = degrade_audio(p, mask, cfg, torch.Generator().manual_seed(3), fill=fill)
    assert torch.equal(p, orig), "the input (the reconstruction target) must not be modified"
    assert d.power.shape == p.shape and d.frame_mask.shape == mask.shape and d.level.shape == mask.shape
    again = degrade_audio(p, mask, cfg, torch.Generator().manual_seed(3), fill=fill)
    other = degrade_audio(p, mask, cfg, torch.Generator().manual_seed(4), fill=fill)
    assert torch.equal(d.power, again.power) and torch.equal(d.level, again.level)
    assert not torch.equal(d.power, other.power)
    for b in range(p.shape[0]):
        n_masked = int(d.frame_mask[b].sum())
        assert 1 <= n_masked <= 2 * 6, n_masked  # every sequence is masked (p = 1), at most 2 runs of 6
    assert not d.frame_mask[~mask].any() and torch.all(d.level[~mask] == 0)
    assert torch.all(d.power[d.frame_mask] == 0.123)  # whole masked frames take the fill
    assert torch.all(d.level[d.frame_mask] == 1.0)
    # unmasked real frames: exactly the band fraction is replaced (the same bins on every frame)
    keep = mask & ~d.frame_mask
    changed = (d.power != p) & keep.unsqueeze(-1)
    frac = changed.float().sum(-1) / F
    assert torch.allclose(frac[keep], d.level[keep])
    assert torch.all((d.level[keep] > 0) & (d.level[keep] <= 5 / F + 1e-6))
    assert torch.equal(d.power[~mask], p[~mask])  # padding untouched


def test_degrade_audio_off_is_identity_and_fraction_follows_the_probability():
    p, mask = _power(B=200, T=40)
    off = degrade_audio(p, mask, AudioMaskConfig(), torch.Generator().manual_seed(0))
    assert not AudioMaskConfig().active
    assert torch.equal(off.power, p) and not off.level.any() and torch.isinf(off.snr_db).all()
    d = degrade_audio(p, mask, AudioMaskConfig(p_frames=0.3, n_frame_masks=1, max_frames=4),
                      torch.Generator().manual_seed(0))
    hit = d.frame_mask.any(1).float().mean().item()
    assert 0.2 < hit < 0.4, hit


def test_degrade_audio_noise_is_at_the_drawn_snr():
    p, mask = _power(B=4, T=400)
    mask[:] = True
    d = degrade_audio(p, mask, AudioMaskConfig(p_noise=1.0, snr_db=(0.0, 10.0)), torch.Generator().manual_seed(1))
    assert torch.all((d.snr_db >= 0) & (d.snr_db <= 10)) and not d.frame_mask.any()
    for b in range(4):
        added = (d.power[b] - p[b]).double().mean() / p[b].double().mean()  # cross terms average out
        assert added.item() == pytest.approx(10 ** (-d.snr_db[b].item() / 10), rel=0.1)


def test_training_loss_target_stays_the_clean_power():
    model = _tiny_av()
    p, mask = _power(B=2, T=20)
    vfeat = model.visual_features(torch.rand(2, 20, 8, 8), mask)
    deg = degrade_audio(p, mask, AudioMaskConfig(p_frames=1.0, p_bands=1.0, max_bins=4),
                        torch.Generator().manual_seed(0)).power

    def loss(**kw):
        return model.training_loss(p if "target" not in kw else kw.pop("target"), vfeat, mask,
                                   generator=torch.Generator().manual_seed(0), **kw)["loss"]

    assert torch.equal(loss(), loss(encoder_power=p))
    l_enc = loss(encoder_power=deg)
    assert not torch.equal(l_enc, loss())  # the encoder saw the degraded input ...
    assert not torch.equal(l_enc, loss(target=deg, encoder_power=deg))  # ... but the target is clean


# -- reliability loss ----------------------------------------------------------------------------
class _FixedBatcher:
    def __init__(self, batch):
        self.batch = batch

    def batches(self, epoch, generator, paired=False):
        if not paired:
            yield self.batch
        else:  # the clean lips: the corrupted frames (level > 0) replaced by other frames
            lips, level = self.batch[1], self.batch[3]
            other = torch.rand(lips.shape, generator=torch.Generator().manual_seed(1))
            yield self.batch + (torch.where(level[..., None, None] > 0, other, lips),)


def _av_batch(T=24):
    p, mask = _power(B=2, T=T)
    lips = torch.rand(2, T, 8, 8)
    level = torch.zeros(2, T)
    level[0, 5:15] = 1.0
    level[1, :] = 0.4
    return p, lips, mask, level


@pytest.mark.parametrize("fusion", ["gated", "modality-attention"])
def test_reliability_loss_reaches_the_fusion_weights(fusion):
    model = _tiny_av(fusion)
    p, lips, mask, level = _av_batch()
    vfeat = model.visual_features(lips, mask)
    with fusion_weights_with_grad(model) as w:
        model.training_loss(p, vfeat, mask, generator=torch.Generator().manual_seed(0))
    assert set(w) == {"encoder", "decoder"} and w["decoder"].requires_grad
    # the same weights as the model returns (the encoder's: deterministic given the input)
    assert torch.allclose(w["encoder"].detach(), model.encode(p, vfeat, mask, return_weights=True).weights.detach())
    rl = reliability_loss(w, level, mask, "penalty")
    rl.backward()
    fusion_params = [q for n, q in model.named_parameters() if n.startswith("fusion_")]
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in fusion_params)
    # the hooks are gone after the block
    with torch.no_grad():
        model.decode(torch.zeros(2, 24, 2), vfeat, mask)
    assert w["decoder"].requires_grad


def test_reliability_loss_values():
    w = {"decoder": torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])}
    level = torch.tensor([[0.0, 1.0]])
    mask = torch.tensor([[True, True]])
    expect = (-math.log(0.5) - math.log(0.9)) / 2
    assert reliability_loss(w, level, mask, "bce").item() == pytest.approx(expect, rel=1e-5)
    assert reliability_loss(w, level, mask, "mse").item() == pytest.approx((0.25 + 0.01) / 2, rel=1e-5)
    assert reliability_loss(w, level, torch.tensor([[True, False]]), "mse").item() == pytest.approx(0.25)
    with pytest.raises(ValueError):
        reliability_loss({}, level, mask)
    # penalty: level * w_v per real frame (the clean frame adds nothing)
    assert reliability_loss(w, level, mask, "penalty").item() == pytest.approx(0.1 / 2, rel=1e-5)
    assert reliability_loss(w, torch.tensor([[0.0, 0.5]]), mask, "penalty").item() == pytest.approx(0.05 / 2, rel=1e-5)
    # rank: max(0, margin * level - (w_clean - w)) on corrupted frames only
    clean = {"decoder": torch.tensor([[[0.0, 0.9], [0.8, 0.2]]])}
    lv = torch.tensor([[0.0, 0.5]])
    assert reliability_loss(w, lv, mask, "rank", clean_weights=clean, margin=0.4).item() == \
        pytest.approx((0.4 * 0.5 - 0.1) / 2, rel=1e-5)
    assert reliability_loss(w, lv, mask, "rank", clean_weights=clean, margin=0.1).item() == 0.0  # gap 0.1 >= 0.05
    with pytest.raises(ValueError, match="clean-video"):
        reliability_loss(w, lv, mask)  # rank (the default) without the clean-video weights
    with pytest.raises(ValueError, match="unknown"):
        reliability_loss(w, lv, mask, "hinge")


@pytest.mark.parametrize("kind", ["penalty", "rank"])
def test_well_posed_losses_are_zero_on_clean_frames_and_reach_the_weight_path(kind):
    model = _tiny_av()
    p, lips, mask, level = _av_batch()
    lips_corr = lips.clone()
    lips_corr[level > 0] = 0.5  # the corrupted frames differ from the clean ones

    def loss(lev):
        model.zero_grad(set_to_none=True)
        v = model.visual_features(lips_corr, mask)
        with fusion_weights_with_grad(model) as w, _fusion_inputs(model) as inputs:
            model.training_loss(p, v, mask, generator=torch.Generator().manual_seed(0))
        # rank: the same fusion calls (same audio input, same latent sample) with the clean video
        clean = clean_video_weights(model, inputs, model.visual_features(lips, mask)) if kind == "rank" else None
        out = reliability_loss(w, lev, mask, kind, clean_weights=clean, margin=0.5)
        out.backward()
        return out, {n: q.grad for n, q in model.named_parameters() if n.startswith("fusion_") and q.grad is not None}

    zero, grads = loss(torch.zeros_like(level))
    assert zero.item() == 0.0 and all(g.abs().sum() == 0 for g in grads.values())
    some, grads = loss(level)
    assert some.item() > 0
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("fusion_enc"))
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("fusion_dec"))


def test_reliability_weight_switch_in_the_training_step():
    batch = _av_batch()
    states, stats = [], []
    for weight in (0.0, 2.0):
        model = _tiny_av()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        r = _run_epoch(model, _FixedBatcher(batch), 0, torch.device("cpu"), 1.0, opt, None,
                       torch.Generator().manual_seed(0), EpochOptions(reliability_weight=weight))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        stats.append(r)
    assert "reliability" not in stats[0] and stats[1]["reliability"] > 0
    assert stats[0]["loss"] == pytest.approx(stats[1]["loss"])  # "loss" stays the negative ELBO
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0] if k.startswith("fusion_"))


class _FlagTask:
    """A synthetic task whose video is needed and can be corrupted: each frame's spectrum is tilted
    up or down by a hidden sign, the lips show that sign (left half bright or dark), and on
    about half of the frames (level 0.5-1) the lips are replaced by flat grey plus noise (the
    sign is gone; the corruption is visible in the frame). Batches as the training batcher makes
    them, with the clean lips as fifth item when ``paired``."""

    def __init__(self, seed: int, B: int = 4, T: int = 32) -> None:
        self.seed, self.B, self.T = seed, B, T

    def batches(self, epoch, generator, paired=False):
        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        B, T = self.B, self.T
        sign = torch.randint(0, 2, (B, T), generator=g).float() * 2 - 1
        power = torch.exp(1.5 * sign[..., None] * torch.linspace(-1, 1, F)) * (0.8 + 0.4 * torch.rand(B, T, F, generator=g))
        half = torch.zeros(8, 8)
        half[:, :4] = 1.0
        clean = 0.5 + 0.8 * sign[..., None, None] * (half - 0.5) + 0.05 * torch.rand(B, T, 8, 8, generator=g)
        level = (torch.rand(B, T, generator=g) < 0.5).float() * (0.5 + 0.5 * torch.rand(B, T, generator=g))
        lips = torch.where(level[..., None, None] > 0, 0.5 + 0.05 * torch.rand(B, T, 8, 8, generator=g), clean)
        mask = torch.ones(B, T, dtype=torch.bool)
        yield (power, lips, mask, level, clean) if paired else (power, lips, mask, level)


def _paired_auc(model, task):
    """Per fusion: AUC of w_v(clean video) against w_v(corrupted video) on the corrupted frames of
    one fresh batch, and the mean w_v there with the corrupted video (encoder-mean latents)."""
    power, lips, mask, level, clean = next(task.batches(0, None, paired=True))
    model.eval()
    ws = []
    for video in (clean, lips):
        with torch.no_grad(), fusion_weights_with_grad(model) as w:
            v = model.visual_features(video, mask)
            model.decode(model.encode(power, v, mask)[0], v, mask)
        ws.append({k: t[..., 1][level > 0] for k, t in w.items()})
    out = {}
    for k in ws[0]:
        pos, neg = ws[0][k], ws[1][k]
        auc = ((pos[:, None] > neg[None]).double().mean() + 0.5 * (pos[:, None] == neg[None]).double().mean()).item()
        out[k] = (auc, neg.mean().item())
    return out


def test_supervised_gate_learns_to_see_a_visible_corruption():
    """The mechanism, not the corpus: on a task where the video is needed and its corruption is
    visible, a few hundred steps of the training step with either well-posed loss make the gated
    fusion's visual weight separate corrupted from clean video (AUC > 0.9 on one of its fusions),
    and the penalty pushes the corrupted frames' weight below that of unsupervised training."""
    def train(kind, weight):
        torch.manual_seed(0)
        model = _tiny_av("gated")
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        task = _FlagTask(0)
        for step in range(250):
            _run_epoch(model, task, step, torch.device("cpu"), 1.0, opt, None, torch.Generator().manual_seed(step),
                       EpochOptions(reliability_weight=weight, reliability_kind=kind, reliability_margin=0.1))
        return _paired_auc(model, _FlagTask(99))

    control = train("penalty", 0.0)
    for kind in ("penalty", "rank"):
        res = train(kind, 10.0)
        assert max(a for a, _ in res.values()) > 0.9, (kind, res, control)
        if kind == "penalty":
            k = max(res, key=lambda key: res[key][0])
            assert res[k][1] < control[k][1], (res, control)


def test_paired_batches_carry_the_clean_lips():
    rng = np.random.default_rng(0)
    items = [ClipItem(f"u{i}", "s", torch.rand(n, F), rng.integers(0, 255, (m, 8, 8), dtype=np.uint8), 25.0)
             for i, (n, m) in enumerate([(70, 12), (45, 8)])]

    def aug(frames, utt_id, epoch):  # every frame corrupted: black, level 1
        return np.zeros_like(frames), np.ones(len(frames), np.float32)

    b = _Batcher(items, seq_len=30, batch_size=2, audio_visual=True, augmenter=aug, stft_cfg=STFTConfig())
    plain = list(b.batches(0, None))
    paired = list(b.batches(0, None, paired=True))
    assert len(plain) == len(paired) and all(len(x) == 4 for x in plain) and all(len(x) == 5 for x in paired)
    clean_b = _Batcher(items, seq_len=30, batch_size=2, audio_visual=True, augmenter=None, stft_cfg=STFTConfig())
    for (power, lips, mask, level), pb, cb in zip(plain, paired, clean_b.batches(0, None)):
        for x, y in zip((power, lips, mask, level), pb[:4]):
            assert torch.equal(x, y)
        assert torch.equal(pb[4], cb[1]) and not torch.equal(pb[4][mask], lips[mask])


def test_rank_training_step_uses_the_clean_video():
    task = _FlagTask(1)
    states = []
    for kind, weight in (("rank", 0.0), ("rank", 5.0), ("penalty", 5.0)):
        model = _tiny_av()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        r = _run_epoch(model, task, 0, torch.device("cpu"), 1.0, opt, None, torch.Generator().manual_seed(0),
                       EpochOptions(reliability_weight=weight, reliability_kind=kind, reliability_margin=0.5))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        if weight > 0:
            assert r["reliability"] > 0
    fusion_keys = [k for k in states[0] if k.startswith("fusion_")]
    assert any(not torch.equal(states[0][k], states[1][k]) for k in fusion_keys)
    assert any(not torch.equal(states[1][k], states[2][k]) for k in fusion_keys)


# -- level per frame through the batcher ---------------------------------------------------------
def test_batcher_keeps_the_per_frame_level():
    rng = np.random.default_rng(0)
    items = [ClipItem(f"u{i}", "s", torch.rand(n, F), rng.integers(0, 255, (m, 8, 8), dtype=np.uint8), 25.0)
             for i, (n, m) in enumerate([(70, 12), (45, 8)])]

    def aug(frames, utt_id, epoch):  # a distinct level per video frame
        return frames, (np.arange(len(frames), dtype=np.float32) + 1) / 100 + (epoch if utt_id == "u1" else 0)

    stft = STFTConfig()
    b = _Batcher(items, seq_len=30, batch_size=2, audio_visual=True, augmenter=aug, stft_cfg=stft)
    seen = 0
    for epoch in (0, 1):
        for power, lips, mask, level in b.batches(epoch, None):
            assert level.shape == mask.shape
            assert torch.all(level[~mask] == 0)
            for j in range(power.shape[0]):
                n = int(mask[j].sum())
                i = next(k for k, it in enumerate(items) if it.power[:n].shape == power[j, :n].shape
                         and any(torch.equal(it.power[s:s + n], power[j, :n]) for s in range(0, it.n_frames, 30)))
                it = items[i]
                s = next(s for s in range(0, it.n_frames, 30) if torch.equal(it.power[s:s + n], power[j, :n]))
                want = per_frame_to_stft_rate(aug(it.lips_video, it.utt_id, epoch)[1], it.n_frames, 25.0, stft)[s:s + n]
                assert np.allclose(level[j, :n].numpy(), want)
                seen += 1
    assert seen == 2 * (3 + 2)


# -- labels and config ---------------------------------------------------------------------------
def test_relsup_label_and_config():
    assert ModelEntry("av-vae", "gated", training={"reliability_loss_weight": 0.5}).label == "av-vae/gated" + RELSUP_SUFFIX
    assert ModelEntry("av-vae", "gated", id="g/x", training={"reliability_loss_weight": 0.5}).label == "g/x+relsup"
    assert ModelEntry("av-vae", "gated", training={"reliability_loss_weight": 0}).label == "av-vae/gated"
    with pytest.raises(ConfigError, match="reliability_loss_weight"):
        load_spec("smoke", ["training.reliability_loss_weight=1"])
    abl = load_spec("ablation")
    labels = [m.label for m in abl.models]
    assert len(set(labels)) == len(labels)
    assert any(RELSUP_SUFFIX in lb for lb in labels)
    assert any(m.training.get("audio_mask_p_frames", 0) > 0 and RELSUP_SUFFIX not in m.label for m in abl.models)
    for name in ("smoke", "paper-table", "visual-stress"):  # other presets keep the options off
        sp = load_spec(name)
        tr = sp.training
        assert (tr.audio_mask_p_frames, tr.audio_mask_p_bands, tr.audio_noise_p, tr.reliability_loss_weight) == (0, 0, 0, 0)
        assert not any(RELSUP_SUFFIX in m.label for m in sp.models)


# -- end to end: checkpoint metadata -------------------------------------------------------------
def test_checkpoint_records_video_gain_and_training_options(toy, tmp_path):
    root, data = toy
    params = {"lip_size": LIP, "hidden": 16, "latent_dim": 4, "visual_dim": 16, "frontend_hidden": 32}
    tr = {"reliability_loss_weight": 0.5, "audio_mask_p_frames": 0.5, "audio_mask_p_bands": 0.5, "audio_noise_p": 0.3}
    entry = ModelEntry("av-vae", "gated", params=params, training=tr)
    from benchmark.configtools import from_dict, to_dict

    spec = from_dict(TrainingSpec, {**to_dict(_spec(epochs=2, reliability_augmentation=True)), **tr})
    ck = train_model(entry, spec, root, tmp_path / "g", data=data, progress=False)
    meta = models.load(ck).checkpoint_meta
    assert meta["label"].endswith(RELSUP_SUFFIX)
    assert meta["reliability_supervision"] == {"weight": 0.5, "loss": "rank", "margin": 0.1}
    assert meta["audio_masking"]["p_frames"] == 0.5 and meta["audio_masking"]["p_noise"] == 0.3
    assert math.isfinite(meta["video_gain_nats_per_frame"])
    assert meta["video_gain_nats_per_frame"] == pytest.approx(meta["val_loss_zero_video"] - meta["best_val_loss"],
                                                              rel=1e-4, abs=1e-4)
    rows = (tmp_path / "g" / "curves.csv").read_text().splitlines()
    assert "train_reliability_loss" in rows[0] and float(rows[1].split(",")[5]) > 0
    plain = train_model(ModelEntry("av-vae", "gated", params=params), _spec(epochs=1, reliability_augmentation=True),
                        root, tmp_path / "p", data=data, progress=False)
    pm = models.load(plain).checkpoint_meta
    assert pm["reliability_supervision"] is None and pm["audio_masking"] is None
    assert math.isfinite(pm["video_gain_nats_per_frame"])
    relsup = from_dict(TrainingSpec, {**to_dict(_spec(epochs=1, reliability_augmentation=True)),
                                      "reliability_loss_weight": 1.0})
    with pytest.raises(ValueError, match="per-frame weights"):  # no fusion: nothing to supervise
        train_model(ModelEntry("a-vae", training={"reliability_loss_weight": 1.0}), relsup, root, tmp_path / "a",
                    data=data, progress=False)
    with pytest.raises(ValueError, match="reliability_augmentation"):  # no corruption level to aim at
        train_model(ModelEntry("av-vae", "gated", params=params, training={"reliability_loss_weight": 1.0}),
                    from_dict(TrainingSpec, {**to_dict(relsup), "reliability_augmentation": False}), root,
                    tmp_path / "c", data=data, progress=False)
