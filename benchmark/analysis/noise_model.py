"""Speech prior or noise model? The oracle-noise check of a finished run.

When a VAE system loses to the mixture on some noise (babble, in the synthetic study), two parts
of the unsupervised model can be at fault: the speech prior, which cannot tell speech from a
speech-like noise, or the NMF noise model (rank ``nmf_rank``), which absorbs speech or cannot
represent the noise. This check separates them on one cell of a finished run (by default 0 dB,
clean video): each trained model of the run, with each of its training seeds, enhances the
cell's mixtures twice with the run's own algorithm settings:

* ``nmf``: exactly as the run did (the run's enhancement API, seed and settings; the check
  prints how far its SI-SDR is from the run's own rows, which should be 0);
* ``oracle-noise``: the same EM with the noise variance fixed to the true noise's periodogram
  ``|N|^2`` (the noise signal the run mixed in, normalised like the mixture): ``W = |N|^2^T``,
  ``H = I`` (rank T), and only the speech gains ``g`` are updated (``EMConfig.update = "g"``);
  the E-step, the decoder and the final Wiener filter are unchanged.

If the oracle noise lifts a noise type from a loss to a gain, the NMF noise model is what fails
there; if the system still loses with the true noise variance, the speech prior itself cannot
separate that noise from speech. The oracle-Wiener baseline of the run (true speech *and* noise
variances) is the ceiling of both. A diagnostic, not a system: it uses the noise signal, which
no enhancement method has.

Composite models (mixture / switching VAEs) are left out (their EM is the switching one; the
check is about one speech prior). Output: one row per (model, training seed, item, arm),
``<run>/analysis/noise_model.csv``; :func:`summarize_check` gives the table of the report
(``benchmark.report``, section "Speech prior or noise model?").
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

RESULT_FILE = Path("analysis") / "noise_model.csv"
ARMS = ("nmf", "oracle-noise")


@dataclass
class NoiseCheckConfig:
    """What to check: model labels of the run (default: the A-VAE), the algorithm (one of the
    run's), and the cell (SNR, video corruption; every noise type and test utterance of it)."""

    models: list[str] = field(default_factory=lambda: ["a-vae"])
    algorithm: str = "ldem"
    snr_db: float = 0.0
    corruption: str = "none"
    jobs: int = 1


def oracle_noise_state(noise_power: "torch.Tensor", mask: "torch.Tensor"):  # noqa: F821
    """NMF factors whose noise variance ``H W^T`` is the true noise periodogram: ``W [B, F, T]``
    = ``noise_power [B, T, F]`` transposed (floored at the NMF's eps), ``H [B, T, T]`` = the
    identity on real frames (0 on padding), ``g`` = 1 (the EM's start). With ``update="g"`` the M-step keeps
    W and H, so the noise variance stays the oracle one throughout."""
    import torch

    from models.enhancement.nmf import EPS, NMFState

    B, T, _ = noise_power.shape
    W = noise_power.transpose(1, 2).clamp_min(EPS).contiguous()
    H = torch.eye(T, dtype=noise_power.dtype, device=noise_power.device).expand(B, T, T) * mask[..., None].to(noise_power.dtype)
    return NMFState(W, H.contiguous(), torch.ones(B, T, dtype=noise_power.dtype, device=noise_power.device))


def _checkpoints(run_dir: Path, label: str) -> list[tuple[Optional[int], Path]]:
    """(training seed, checkpoint folder) of a model label: ``models/<key>/seed-<s>/`` with
    several training seeds, ``models/<key>/`` with one (seed None)."""
    from benchmark.schema import model_key

    root = run_dir / "models" / model_key(label)
    seeded = sorted(root.glob("seed-*/checkpoint.pt"), key=lambda p: int(p.parent.name.split("-", 1)[1]))
    if seeded:
        return [(int(p.parent.name.split("-", 1)[1]), p.parent) for p in seeded]
    if (root / "checkpoint.pt").exists():
        return [(None, root)]
    raise FileNotFoundError(f"{root}: no checkpoint of model {label!r} in this run (trained models: "
                            f"{', '.join(sorted(p.name for p in (run_dir / 'models').glob('*'))) or 'none'})")


def _cell_items(run_dir: Path, cfg: NoiseCheckConfig) -> pd.DataFrame:
    mix = pd.read_parquet(run_dir / "mixtures.parquet")
    sel = mix[np.isclose(mix["snr_db"].astype(float), float(cfg.snr_db)) & (mix["corruption"].astype(str) == cfg.corruption)]
    if sel.empty:
        cells = sorted({(float(s), str(c)) for s, c in zip(mix["snr_db"], mix["corruption"])})
        raise ValueError(f"{run_dir / 'mixtures.parquet'}: no mixture at {cfg.snr_db:g} dB with video {cfg.corruption!r}; "
                         f"the run's cells (snr_db, corruption): {cells}")
    return sel.sort_values(["condition_id", "utt_id"]).reset_index(drop=True)


def _seed_labels(s: pd.Series) -> pd.Series:
    """``train_seed`` as ints, -1 for a model trained once (no seed): a label to pair and resample on."""
    return pd.to_numeric(s, errors="coerce").fillna(-1).astype(int)


def check_one(run_dir: str | Path, label: str, train_seed: Optional[int], ckpt_dir: str | Path, items: pd.DataFrame,
              algorithm: str, params: dict[str, Any], nmf_rank: int, seed: int) -> pd.DataFrame:
    """Both arms for one (model, training seed) on the mixtures ``items`` (rows of the run's
    mixtures table); the NMF arm through the run's enhancement API, one call per condition as
    the run's CPU jobs made them, the oracle arm through :func:`models.enhancement.em.run_em`."""
    import models
    from benchmark.audio_io import read_audio
    from benchmark.metrics.sisdr import si_sdr
    from benchmark.runner.stages.enhance import _load_inputs
    from models.enhancement.api import algorithm_config, enhance
    from models.enhancement.batch import make_batch, prepare_item
    from models.enhancement.em import run_em
    from models.enhancement.registry import ALGORITHMS

    rd = Path(run_dir)
    model = models.load(ckpt_dir)
    model.eval()
    if getattr(model, "is_composite", False) or hasattr(model, "custom_enhance"):
        raise ValueError(f"{label}: a composite model; the noise check is about one speech prior")
    av = bool(getattr(model, "is_audio_visual", False))
    oracle = ALGORITHMS.get(algorithm)(algorithm_config(algorithm, {**dict(params or {}), "update": "g"}))  # W, H fixed
    est: dict[str, dict[str, np.ndarray]] = {arm: {} for arm in ARMS}
    for _, grp in items.groupby("condition_id", sort=True):
        recs = grp.to_dict("records")
        inputs = _load_inputs(rd, recs, audio_visual=av)
        for o in enhance(model, algorithm, inputs, params=params or None, nmf_rank=nmf_rank, seed=seed, progress=False):
            if o.estimate is not None:
                est["nmf"][o.item_id] = o.estimate
        prepared = [prepare_item(inp, i, need_lips=av, need_sources=True, need_level=bool(getattr(model, "uses_level", False)))
                    for i, inp in enumerate(inputs)]
        batch = make_batch(prepared)
        for r in run_em(oracle, model, batch, rank=nmf_rank, seed=seed,
                        nmf_init=oracle_noise_state(batch.noise_power, batch.mask)):
            est["oracle-noise"][r.item_id] = r.estimate
    rows = []
    for m in items.to_dict("records"):  # SI-SDR of each arm's estimate and of the mixture, against the clean speech
        clean = read_audio(rd / m["clean_path"], validate=False)
        inp = si_sdr(clean, read_audio(rd / m["mixture_path"], validate=False))
        for arm in ARMS:
            if m["item_id"] not in est[arm]:
                continue
            out = si_sdr(clean, est[arm][m["item_id"]])
            rows.append({"model": label, "train_seed": train_seed, "algorithm": algorithm, "arm": arm,
                         "item_id": m["item_id"], "utt_id": m["utt_id"], "noise": m["noise"], "snr_db": float(m["snr_db"]),
                         "corruption": m["corruption"], "si_sdr": out, "input_si_sdr": inp, "delta_si_sdr": out - inp})
    return pd.DataFrame(rows).sort_values(["arm", "item_id"], kind="stable").reset_index(drop=True)


def run_noise_check(run_dir: str | Path, cfg: NoiseCheckConfig = NoiseCheckConfig(), *, progress: bool = True) -> pd.DataFrame:
    """Both arms for every (model of ``cfg.models``, training seed) on the cell of ``cfg``; writes
    and returns the rows (:data:`RESULT_FILE` under the run folder). The run's ``run.json`` gives
    the algorithm settings, the NMF rank and the EM seed of each training seed."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from benchmark.runner.stages.enhance import em_seed

    rd = Path(run_dir)
    run_json = rd / "run.json"
    if not run_json.exists():
        raise FileNotFoundError(f"{run_json}: not a run folder (no run.json)")
    spec = json.loads(run_json.read_text())["spec"]
    es, ts = spec["enhance"], spec["training"]
    if cfg.algorithm not in es["algorithms"]:
        raise ValueError(f"{run_json}: algorithm {cfg.algorithm!r} is not one of the run's ({es['algorithms']})")
    items = _cell_items(rd, cfg)
    tasks = [(label, sd, ck) for label in cfg.models for sd, ck in _checkpoints(rd, label)]
    params = dict(es.get("algorithm_params", {}).get(cfg.algorithm, {}))
    log.info("noise check: %d model(s) x seed(s), %d mixture(s) at %g dB (%s video), %s, 2 arms",
             len(tasks), len(items), cfg.snr_db, cfg.corruption, cfg.algorithm)
    jobs = Parallel(n_jobs=max(1, int(cfg.jobs)), return_as="generator")(
        delayed(_check_task)(str(rd), label, sd, str(ck), items, cfg.algorithm, params, int(es["nmf_rank"]),
                             em_seed(int(es["seed"]), sd, int(ts["seed"])))
        for label, sd, ck in tasks)
    parts = list(tqdm(jobs, total=len(tasks), desc="noise check", disable=not progress))
    df = pd.concat(parts, ignore_index=True)
    out = rd / RESULT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return df


def _check_task(*args: Any) -> pd.DataFrame:
    from benchmark.threads import torch_threads

    with torch_threads("AVBENCH_ENHANCE_THREADS"):
        return check_one(*args)


def consistency(df: pd.DataFrame, results: Optional[pd.DataFrame]) -> Optional[float]:
    """Largest |SI-SDR difference| (dB) between the check's ``nmf`` arm and the run's own
    ``results`` rows of the same (model, algorithm, training seed, item); None when nothing matches."""
    if results is None or "si_sdr" not in results or "model_id" not in results:
        return None
    res = results[results["model_id"].isin(df["model"].unique())]
    if res.empty:
        return None
    res = res.assign(model=res["model_id"])
    nmf = df[df["arm"] == "nmf"]
    key = ["model", "algorithm", "item_id"]
    if "train_seed" in res:
        key.append("train_seed")
        nmf, res = nmf.assign(train_seed=_seed_labels(nmf["train_seed"])), res.assign(train_seed=_seed_labels(res["train_seed"]))
    m = nmf.merge(res[key + ["si_sdr"]], on=key, suffixes=("", "_run"))
    if m.empty:
        return None
    return float(np.nanmax(np.abs(m["si_sdr"] - m["si_sdr_run"])))


def load_results(run_dir: str | Path) -> Optional[pd.DataFrame]:
    """The run's ``results.parquet``, or None before it is scored."""
    p = Path(run_dir) / "results.parquet"
    return pd.read_parquet(p) if p.exists() else None


def summarize_check(df: pd.DataFrame, results: Optional[pd.DataFrame] = None, *, n_boot: int = 2000) -> pd.DataFrame:
    """Per (model, noise): mean Δ SI-SDR of each arm and of oracle-noise minus NMF (paired on
    training seed and item), each with its hierarchical bootstrap 95 % CI (training seeds, then
    utterances; :func:`benchmark.report.stats.summarize`), and the oracle-Wiener baseline's mean Δ
    SI-SDR on the same items when the run's ``results`` are given."""
    from benchmark.report.stats import summarize

    d = df.assign(train_seed=_seed_labels(df["train_seed"]))
    wide = d.pivot_table(index=["model", "train_seed", "noise", "utt_id", "item_id"], columns="arm",
                         values="delta_si_sdr", dropna=False).reset_index()
    wide["diff"] = wide["oracle-noise"] - wide["nmf"]
    long = wide.melt(id_vars=["model", "train_seed", "noise", "utt_id", "item_id"], value_vars=[*ARMS, "diff"],
                     var_name="arm", value_name="value")
    s = summarize(long, "value", by=["model", "noise", "arm"], cluster="utt_id", seed_col="train_seed", n_boot=n_boot)
    fmt = lambda r: f"{r['mean']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"  # noqa: E731
    out = []
    for (model, noise), g in s.groupby(["model", "noise"], sort=True):
        by = {r["arm"]: r for r in g.to_dict("records")}
        row = {"model": model, "noise": noise, "seeds": int(by["nmf"]["n_seeds"]), "utterances": int(by["nmf"]["n_utterances"]),
               "Δ SI-SDR, NMF noise (as run)": fmt(by["nmf"]), "Δ SI-SDR, oracle noise": fmt(by["oracle-noise"]),
               "oracle − NMF": fmt(by["diff"])}
        if results is not None and "delta_si_sdr" in results:
            ow = results[(results["algorithm"] == "oracle-wiener") & results["item_id"].isin(d.loc[d["noise"] == noise, "item_id"])]
            row["oracle-Wiener Δ SI-SDR"] = f"{ow['delta_si_sdr'].mean():+.2f}" if len(ow) else ""
        out.append(row)
    return pd.DataFrame(out)


def format_summary(table: pd.DataFrame, cfg_line: str = "") -> str:
    """The summary as a Markdown table (with a heading line)."""
    from benchmark.report.tables import frame_to_markdown

    head = "Speech prior or noise model? (oracle-noise check)" + (f" -- {cfg_line}" if cfg_line else "")
    return frame_to_markdown(table, ".2f", head)


def load_check(run_dir: str | Path) -> Optional[pd.DataFrame]:
    """The check's rows of a run folder, or None when it has not been run."""
    p = Path(run_dir) / RESULT_FILE
    return pd.read_csv(p) if p.exists() else None


def cell_line(df: pd.DataFrame) -> str:
    """"<algorithm>, <snr> dB, <corruption> video" of the check's rows."""
    parts = [", ".join(sorted(map(str, df["algorithm"].unique()))),
             ", ".join(f"{v:g} dB" for v in sorted(df["snr_db"].unique())),
             ", ".join(sorted(map(str, df["corruption"].unique()))) + " video"]
    return "; ".join(parts)
