"""GPU-style packing of the enhancement, tested on CPU: the items of all conditions of one
(model, algorithm) in one ``enhance()`` call give the results of the per-condition calls (and
keep the common random numbers of a clean/corrupted pair); a batch that runs out of memory is
split in halves and no utterance is lost; the ``auto`` frame budget; the runner's job groups."""
from __future__ import annotations

import dataclasses
import numpy as np
import pandas as pd
import pytest
import torch

import models.enhancement.api as api
from benchmark.runner.stages import enhance as stage
from benchmark.schema import item_id, pair_id
from models.enhancement.api import EnhanceInput, enhance, resolve_frame_budget
from models.enhancement.batch import DEFAULT_FRAME_BUDGET, PROBE_FRAMES, fit_frame_budget, is_out_of_memory
from models.enhancement.toy import ToyVAE, synth_utterance
from models.vae import AVAE, VAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"ldem": {"n_iter": 4, "n_chains": 2}, "mcem": {"n_iter": 3, "n_steps": 4, "burn_in": 2, "final_steps": 4,
                                                        "final_burn_in": 2}}
CONDITIONS = ("white_snr0_none", "white_snr0_occlusion-0.7", "white_snr5_none")


def _grid(n_utt: int = 2) -> dict[str, list[EnhanceInput]]:
    """condition -> its items: ``n_utt`` utterances of different lengths; the first two conditions
    are the clean- and corrupted-video items of the same mixtures (same pair id), the third
    another SNR (another mixture)."""
    out: dict[str, list[EnhanceInput]] = {c: [] for c in CONDITIONS}
    for u in range(n_utt):
        x, lips, fps = synth_utterance(np.random.default_rng(10 + u), (0.8, 1.3, 1.0)[u % 3])
        for c in CONDITIONS:
            snr = 5.0 if "snr5" in c else 0.0
            noise = (0.3 * 10 ** (-snr / 20) * np.random.default_rng(100 + u + int(snr)).standard_normal(x.size))
            level = np.zeros(len(lips), np.float32)
            shown = lips.copy()
            if "occlusion" in c:
                level[: len(lips) // 2] = 0.7
                shown[level > 0, 4:12, 4:12] = 128
            out[c].append(EnhanceInput(item_id(f"u{u}", c), (x + noise).astype(np.float32), shown, fps,
                                       corruption=level, pair_id=pair_id(f"u{u}", "white", snr)))
    return out


def _models() -> dict[str, object]:
    torch.manual_seed(0)
    return {"av": ToyVAE(visual=True, hidden=32, latent_dim=4), "a-vae": AVAE(VAEConfig(hidden=32, latent_dim=4))}


@pytest.mark.parametrize("algorithm", ["ldem", "mcem"])
@pytest.mark.parametrize("which", ["av", "a-vae"])
def test_cross_condition_packing_equals_per_condition_jobs(which, algorithm):
    model = _models()[which]
    grid = _grid()
    # the runner on CPU: one enhance() call per condition
    per_cond = {o.item_id: o for c in CONDITIONS
                for o in enhance(model, algorithm, grid[c], params=FAST[algorithm], seed=3, progress=False)}
    # on a GPU: every condition in one call, packed into one batch
    items = [inp for c in CONDITIONS for inp in grid[c]]
    packed = enhance(model, algorithm, items, params=FAST[algorithm], seed=3, frame_budget=100_000, progress=False)
    assert [o.item_id for o in packed] == [inp.item_id for inp in items]
    for o in packed:
        ref = per_cond[o.item_id]
        assert o.error is None and ref.error is None
        _assert_same_result(o, ref, algorithm)
        np.testing.assert_array_equal(o.traces["corruption_stft"], ref.traces["corruption_stft"])
    by_id = {o.item_id: o for o in packed}
    for u in range(2):  # common random numbers inside one packed batch
        a, b = by_id[item_id(f"u{u}", CONDITIONS[0])], by_id[item_id(f"u{u}", CONDITIONS[1])]
        if which == "a-vae":  # cannot see the video: the pair stays bit-identical (pack_by_budget
            # puts the two in batches of the same structure; in one batch, two rows of a GEMM may
            # round differently in the last bit)
            np.testing.assert_array_equal(a.estimate, b.estimate)
            np.testing.assert_array_equal(a.traces["cost"], b.traces["cost"])
        else:  # sees the occlusion: the pair differs
            assert not np.array_equal(a.estimate, b.estimate)
    # another packing of the same items (reversed order, a budget of about two utterances) changes
    # nothing, and the pairs stay bit-identical there too
    rev = {o.item_id: o for o in enhance(model, algorithm, items[::-1], params=FAST[algorithm], seed=3,
                                         frame_budget=200, progress=False)}
    for o in rev.values():
        _assert_same_result(o, per_cond[o.item_id], algorithm)
    if which == "a-vae":
        for u in range(2):
            np.testing.assert_array_equal(rev[item_id(f"u{u}", CONDITIONS[0])].estimate,
                                          rev[item_id(f"u{u}", CONDITIONS[1])].estimate)


def _assert_same_result(o, ref, algorithm: str) -> None:
    """Equal up to float32 rounding: the same random draws and updates, but a GEMM over another
    number of rows may round differently in the last bit (as batched vs one-by-one in
    ``test_enhancement_core``); for MCEM such a bit can flip an MH decision for a frame."""
    tol = 1e-4 * np.max(np.abs(ref.estimate))
    close = np.isclose(o.estimate, ref.estimate, rtol=1e-3, atol=tol)
    if algorithm == "mcem":
        assert close.mean() > 0.95, close.mean()
        np.testing.assert_allclose(o.traces["cost"], ref.traces["cost"], rtol=1e-3)
    else:
        assert close.all(), 1 - close.mean()
        np.testing.assert_allclose(o.traces["cost"], ref.traces["cost"], rtol=1e-5)


def test_out_of_memory_batches_are_halved_and_no_item_is_lost(monkeypatch):
    model = _models()["a-vae"]
    grid = _grid(3)
    # 9 utterances of 9 random-stream ids (the pairs' batches are tested above): one batch
    items = [dataclasses.replace(inp, pair_id=None) for c in CONDITIONS for inp in grid[c]]
    ref = enhance(model, "ldem", items, params=FAST["ldem"], seed=1, frame_budget=100_000, progress=False)
    real = api._run_batch
    sizes: list[int] = []

    def runner(model, algo, algorithm, params, batch_items, *args, **kwargs):
        sizes.append(len(batch_items))
        if len(batch_items) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(model, algo, algorithm, params, batch_items, *args, **kwargs)

    monkeypatch.setattr(api, "_run_batch", runner)
    outs = enhance(model, "ldem", items, params=FAST["ldem"], seed=1, frame_budget=100_000, progress=False)
    assert sizes[:3] == [9, 4, 2]  # halves, not one by one
    assert max(s for s in sizes if s <= 2) == 2 and sum(s for s in sizes if s <= 2) == 9  # each item ran once
    for o, r in zip(outs, ref):
        assert o.error is None, o.error
        _assert_same_result(o, r, "ldem")

    # an utterance that alone does not fit fails alone, with the reason; the others are enhanced
    def one_too_big(model, algo, algorithm, params, batch_items, *args, **kwargs):
        if any(it.item_id == items[4].item_id for it in batch_items):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, algo, algorithm, params, batch_items, *args, **kwargs)

    monkeypatch.setattr(api, "_run_batch", one_too_big)
    outs = enhance(model, "ldem", items, params=FAST["ldem"], seed=1, frame_budget=100_000, progress=False)
    assert "OutOfMemoryError" in outs[4].error and outs[4].estimate is None
    assert all(o.error is None for k, o in enumerate(outs) if k != 4)


def test_pack_by_budget_gives_pairs_batches_of_the_same_structure():
    from models.enhancement.batch import pack_by_budget

    # two visual conditions of mixtures p0..p3 (lengths 5, 9, 5, 7), and a mixture p4 seen once
    pids = ["p0", "p1", "p2", "p3"] * 2 + ["p4"]
    n = [5, 9, 5, 7] * 2 + [6]
    groups = pack_by_budget(n, 20, pair_ids=pids)
    assert sorted(i for g in groups for i in g) == list(range(len(n)))
    for g in groups:
        assert len({pids[i] for i in g}) == len(g)  # never two items of one pair in a batch
        assert len(g) == 1 or len(g) * max(n[i] for i in g) <= 20
    first = [[pids[i] for i in g] for g in groups if g[0] < 4 or g[0] == 8]
    second = [[pids[i] for i in g] for g in groups if 4 <= g[0] < 8]
    assert [g for g in first if "p4" not in g] == second  # the same pairs in the same rows
    assert pack_by_budget(n, 20) != groups  # without pair ids: pairs share batches


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_out_of_memory(ValueError("lip frames of different sizes"))


def test_auto_frame_budget():
    assert resolve_frame_budget("auto", torch.device("cpu")) == DEFAULT_FRAME_BUDGET
    assert resolve_frame_budget("auto", torch.device("cuda")) is None  # measured by the probe
    assert resolve_frame_budget(123, torch.device("cuda")) == 123
    with pytest.raises(ValueError, match="auto"):
        resolve_frame_budget("big", torch.device("cpu"))
    gib = 1 << 30
    assert fit_frame_budget(100 * gib, 40_000, margin=0.5) == int(0.5 * 100 * gib / 40_000)
    assert fit_frame_budget(100 * gib, 80_000) < fit_frame_budget(100 * gib, 40_000)
    assert fit_frame_budget(1000, 1e9) == PROBE_FRAMES  # never below the probe that did fit


def test_probe_budget_measures_peak_bytes_per_padded_frame(monkeypatch):
    """The probe arithmetic with the CUDA memory counters replaced by fakes (no GPU needed)."""
    from models.enhancement.batch import prepare_item

    grid = _grid()
    items = [prepare_item(inp, k) for k, inp in enumerate(grid[CONDITIONS[0]])]
    state = {"alloc": 1000, "peak": 1000}
    padded = len(items) * max(it.n_frames for it in items)

    def run(batch):  # the probe batch allocates 5 000 bytes per padded frame at its peak
        state["peak"] = state["alloc"] + 5000 * padded

    fake = {"synchronize": lambda d=None: None, "reset_peak_memory_stats": lambda d=None: None,
            "memory_allocated": lambda d=None: state["alloc"], "max_memory_allocated": lambda d=None: state["peak"],
            "mem_get_info": lambda d=None: (10 << 30, 20 << 30), "memory_reserved": lambda d=None: state["alloc"] + (1 << 30)}
    for name, fn in fake.items():
        monkeypatch.setattr(torch.cuda, name, fn)
    budget = api._probe_budget(run, items, torch.device("cpu"))
    assert budget == fit_frame_budget((10 << 30) + (1 << 30), 5000.0)


def test_job_groups_pack_all_conditions_on_a_gpu(monkeypatch):
    rows = [{"item_id": f"{c}/u{u}", "condition_id": c, "utt_id": f"u{u}", "mix_id": f"m{c}{u}"}
            for c in ("c1", "c0", "c2") for u in range(5)]
    ok = pd.DataFrame(rows)
    cpu = stage.job_groups(ok, gpu=False, chunk=2)
    assert len(cpu) == 9 and all(len({r["condition_id"] for r in recs}) == 1 for _, recs in cpu)
    assert cpu[0][0] == "c0[0:2]"
    gpu = stage.job_groups(ok, gpu=True, chunk=2)  # the CPU chunk does not apply on a GPU
    assert len(gpu) == 1 and len(gpu[0][1]) == 15 and gpu[0][0] == "all-conditions[0:15]"
    assert [r["item_id"] for r in gpu[0][1]] == sorted(r["item_id"] for r in rows)
    monkeypatch.setattr(stage, "GPU_JOB_ITEMS", 4)
    gpu = stage.job_groups(ok, gpu=True, chunk=2)
    assert [len(r) for _, r in gpu] == [4, 4, 4, 3]
    assert sorted(r["item_id"] for _, recs in gpu for r in recs) == sorted(r["item_id"] for r in rows)
    assert stage.job_groups(ok.iloc[:0], gpu=True, chunk=2) == []


def test_auto_budget_is_keyed_as_auto_on_a_gpu():
    kw = dict(mix_ids=(("c/u0", "m0"),), model="train-x", system={"model_id": "a", "model": "a-vae", "fusion": None},
              algorithm="ldem", params={}, nmf_rank=4, device="cuda", frame_budget="auto", seed=0, version="1+x")
    a = stage.EnhanceJob(**kw)
    assert a.inputs["frame_budget"] == "auto" and a.key != stage.EnhanceJob(**dict(kw, frame_budget=500)).key


def test_item_results_survive_a_change_of_packing(tiny_corpus, tmp_path, monkeypatch):
    """Runner level: a job of another packing (all conditions together, as on a GPU) enhances only
    the items no earlier job made with the same settings, and takes over the others' rows and
    files; other settings, or a missing file, enhance again."""
    import models.enhancement.api as api_mod
    from benchmark.conditions.build import Condition, make_item, write_item
    from benchmark.corpus.manifest import load_utterance, read_manifest
    from models.checkpoint import save
    from noise_sets import NOISES

    df = read_manifest(tiny_corpus)
    utt = load_utterance(tiny_corpus, df[df["split"] == "test"].iloc[0])
    rows = [dict(write_item(make_item(utt, Condition("white", 0.0, corruption=c), NOISES.get("white")()), tmp_path),
                 status="ok", mix_id=f"mix-{c}") for c in ("none", "occlusion@0.7")]
    ckpt = save(_models()["a-vae"], tmp_path / "models" / "a-vae")
    system = {"model_id": "a-vae", "model": "a-vae", "fusion": None}
    seen: list[int] = []
    real = api_mod.enhance

    def counting(model, algorithm, inputs, **kw):
        seen.append(len(inputs))
        return real(model, algorithm, inputs, **kw)

    monkeypatch.setattr(api_mod, "enhance", counting)

    def job(items, params=FAST["ldem"]):
        j = stage.EnhanceJob(mix_ids=tuple((r["item_id"], r["mix_id"]) for r in items), model="train-x", system=system,
                             algorithm="ldem", params=params, nmf_rank=4, device="cpu", frame_budget="auto", seed=0,
                             run_dir=str(tmp_path), items=tuple(items), checkpoint=str(ckpt), version="1+x")
        return dataclasses.replace(j, item_keys=stage.item_keys(j))

    first = job(rows[:1])  # per condition
    packed = job(rows)  # all conditions
    assert first.key != packed.key and first.item_keys[0] == packed.item_keys[0] != packed.item_keys[1]
    out1 = first.fn(**first.kwargs)
    wav = (tmp_path / out1.rows[0]["enhanced_path"]).read_bytes()
    out2 = packed.fn(**packed.kwargs)
    assert seen == [1, 1]  # the packed job enhanced only the new item
    assert out2.rows[0] == out1.rows[0] and (tmp_path / out2.rows[0]["enhanced_path"]).read_bytes() == wav
    assert all(r["status"] == "ok" for r in out2.rows) and set(out1.outputs) <= set(out2.outputs)
    other = job(rows, params=dict(FAST["ldem"], n_iter=3))  # other settings: both again
    other.fn(**other.kwargs)
    assert seen[-1] == 2
    again = job(rows)  # the markers now name the n_iter=3 keys: both again
    again.fn(**again.kwargs)
    assert seen[-1] == 2
    (tmp_path / out2.rows[1]["traces_path"]).unlink()  # a missing file: that item again
    again.fn(**again.kwargs)
    assert seen[-1] == 1
    nokeys = dataclasses.replace(again, item_keys=())  # no item keys: no reuse
    nokeys.fn(**nokeys.kwargs)
    assert seen[-1] == 2
    again.fn(**again.kwargs)  # (nokeys left no markers)
    assert seen[-1] == 2
    again.fn(**again.kwargs)
    assert len(seen) == 7  # all reused: enhance() not called
    forced = dataclasses.replace(again, reuse_items=False)  # --force enhance: no reuse
    forced.fn(**forced.kwargs)
    assert seen[-1] == 2 and len(seen) == 8


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_plan_packs_all_conditions_on_a_gpu(tmp_path, device):
    """The stage's plan: per (system, algorithm, condition) on CPU; one job per (system,
    algorithm) over every condition on a GPU, with per-item keys independent of the packing."""
    from benchmark.runner.context import StageContext
    from benchmark.runner.pipeline import RunOptions
    from benchmark.runner.store import RunStore
    from benchmark.spec import load_spec

    spec = load_spec("smoke", ["models=[{name: a-vae}]", "enhance.algorithms=[ldem]", "enhance.baselines=[noisy]",
                               f"enhance.device={device}"])
    ctx = StageContext(spec, tmp_path, RunOptions(), RunStore(tmp_path))
    base = dict(speaker="s", noise="white", snr_db=0.0, snr_definition="energy", severity=float("nan"), seed=0,
                mixture_path="m.wav", clean_path="c.wav", fps=25.0, status="ok", error="")
    mix = pd.DataFrame([dict(base, utt_id=u, condition_id=c, corruption=c, item_id=f"{c}/{u}", mix_id=f"m-{c}-{u}")
                        for c in ("none", "blur") for u in ("u0", "u1", "u2")])
    train = pd.DataFrame([{"label": "a-vae", "key": "k1", "checkpoint": "/x.pt", "status": "ok", "error": ""}])
    jobs = stage.plan(ctx, {"mix": mix, "train": train})
    per_system = {}
    for j in jobs:
        per_system.setdefault(j.system["model_id"], []).append(j)
        assert len(j.item_keys) == len(j.items) and j.reuse_items
    assert sorted(per_system) == ["", "a-vae"]
    for sys_jobs in per_system.values():
        assert sorted(i["item_id"] for j in sys_jobs for i in j.items) == sorted(mix["item_id"])
        conds = [{i["condition_id"] for i in j.items} for j in sys_jobs]
        assert conds == ([{"blur", "none"}] if device == "cuda" else [{"blur"}, {"none"}])
    # another packing (one item per job): other job keys, the same item keys
    ctx1 = StageContext(spec, tmp_path, RunOptions(enhance_chunk=1), RunStore(tmp_path))
    jobs1 = stage.plan(ctx1, {"mix": mix, "train": train}) if device == "cpu" else []
    if jobs1:
        keys = lambda js: {(j.system["model_id"], i["item_id"]): k for j in js for i, k in zip(j.items, j.item_keys)}  # noqa: E731
        assert len(jobs1) == 12 and {j.key for j in jobs1}.isdisjoint(j.key for j in jobs)
        assert keys(jobs1) == keys(jobs) and len(set(keys(jobs).values())) == 12
