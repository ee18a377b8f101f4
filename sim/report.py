"""Batch reports: per scenario and controller, mean with a confidence interval over seeds,
change vs fixed time, the headroom curve (delay vs demand scale) and time series.

Input is a batch folder (``signalopt batch --out``): the one-row-per-run Parquet parts, and
the per-run frames (``frames/<key>/totals.parquet``, ``trips.parquet``) when the batch kept
them. Output is ``report.md``, ``report.html`` and PNG plots next to them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from sim.batch import read_results

GROUP = ("scenario", "demand", "scale")
METRICS = ("mean_delay_s", "mean_travel_time_s", "throughput_veh_h", "delay_index")
CONFIDENCE = 0.95
MIN_BIN_S = 60.0


def mean_ci(values: np.ndarray, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (NaN half-width for n < 2)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size < 2:
        return float(values.mean()), float("nan")
    sem = values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean()), float(stats.t.ppf(0.5 + confidence / 2, values.size - 1) * sem)


def label(df: pd.DataFrame) -> pd.Series:
    """Controller name plus its engine parameters, e.g. ``signalopt local_control=fixed``."""
    params = df["params"].fillna("{}") if "params" in df else pd.Series("{}", index=df.index)
    return pd.Series([" ".join([c, *(f"{k}={v}" for k, v in json.loads(p or "{}").items())])
                      for c, p in zip(df["controller"], params, strict=True)], index=df.index)


def _paired_change(g: pd.DataFrame, base: pd.DataFrame, metric: str) -> tuple[float, float]:
    """Percent change vs fixed time, paired by seed (same demand realisation), mean and CI."""
    b = base.set_index("seed")[metric]
    seeds = [s for s in g["seed"] if s in b.index and b[s] > 0]
    if not seeds:
        return float("nan"), float("nan")
    ratio = g.set_index("seed").loc[seeds, metric].to_numpy() / b.loc[seeds].to_numpy()
    m, h = mean_ci(100.0 * (ratio - 1.0))
    return m, h


def summarize(runs: pd.DataFrame, *, baseline: str = "fixed") -> pd.DataFrame:
    """One row per (scenario, demand, scale, controller+params): runs, mean ± CI, vs baseline."""
    ok = runs[runs["status"] == "ok"].copy()
    ok["label"] = label(ok)
    rows = []
    for keys, grp in ok.groupby(list(GROUP), sort=True):
        base = grp[grp["label"] == baseline]
        for lab, g in grp.groupby("label", sort=False):
            row = dict(zip(GROUP, keys, strict=True)) | {"controller": lab, "runs": len(g)}
            for m in METRICS:
                if m in g:
                    row[m], row[f"{m}_ci"] = mean_ci(g[m].to_numpy())
            row["delay_vs_fixed_pct"], row["delay_vs_fixed_ci"] = (
                _paired_change(g, base, "mean_delay_s") if len(base) else (np.nan, np.nan))
            rows.append(row)
    return pd.DataFrame(rows)


def headroom(summary: pd.DataFrame, *, baseline: str = "fixed") -> pd.DataFrame:
    """Largest demand scale at which each controller's delay stays at or below fixed time's
    delay at scale 1 (how much extra demand it absorbs); NaN when only one scale was run."""
    rows = []
    for (sc, dem), g in summary.groupby(["scenario", "demand"]):
        ref = g[(g["controller"] == baseline) & np.isclose(g["scale"], 1.0)]["mean_delay_s"]
        if g["scale"].nunique() < 2 or ref.empty:
            continue
        for ctrl, c in g.groupby("controller"):
            ok = c[c["mean_delay_s"] <= ref.iloc[0] + 1e-9]["scale"]
            best = ok.max() if len(ok) else np.nan
            rows.append({"scenario": sc, "demand": dem, "controller": ctrl,
                         "fixed_delay_at_x1_s": ref.iloc[0], "max_scale_at_that_delay": best,
                         "is_largest_tested": bool(best == c["scale"].max())})
    return pd.DataFrame(rows)


def time_bin(duration: float) -> float:
    """Departure-time bin: about a tenth of the run, whole minutes, at least one minute."""
    return max(MIN_BIN_S, round(duration / 10 / 60) * 60)


def time_series(runs: pd.DataFrame, frames: Path) -> pd.DataFrame:
    """Per run and time bin: in-transit vehicles (ground truth, every scan) and mean delay of
    the vehicles scheduled to depart in each bin (plotted at the bin centre)."""
    out = []
    for r in runs[runs["status"] == "ok"].itertuples():
        folder = frames / r.key
        if (folder / "totals.parquet").is_file():
            tot = pd.read_parquet(folder / "totals.parquet", columns=["t", "in_transit"])
            out.append(tot.assign(key=r.key, what="in_transit", value=tot["in_transit"]))
        if (folder / "trips.parquet").is_file():
            trips = pd.read_parquet(folder / "trips.parquet",
                                    columns=["scheduled_depart", "delay"])
            size = time_bin(float(r.duration))
            trips["t"] = (np.floor(trips["scheduled_depart"] / size) + 0.5) * size
            d = (trips.groupby("t", as_index=False)["delay"].mean()
                 .rename(columns={"delay": "value"}))
            out.append(d.assign(key=r.key, what="delay"))
    if not out:
        return pd.DataFrame(columns=["key", "what", "t", "value"])
    return pd.concat(out, ignore_index=True)[["key", "what", "t", "value"]]


@dataclass
class Report:
    """The report's tables and plot files (what ``write_report`` rendered)."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    headroom: pd.DataFrame
    plots: list[Path] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_headroom(summary: pd.DataFrame, path: Path) -> Path | None:
    """Delay vs demand scale per controller (one panel per scenario), CI as a band."""
    multi = summary.groupby("scenario")["scale"].nunique()
    scenarios = list(multi[multi > 1].index)
    if not scenarios:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4), squeeze=False)
    for ax, sc in zip(axes[0], scenarios, strict=True):
        for ctrl, grp in summary[summary["scenario"] == sc].groupby("controller"):
            g = grp.sort_values("scale")
            ax.plot(g["scale"], g["mean_delay_s"], marker="o", label=ctrl)
            ci = g["mean_delay_s_ci"].fillna(0)
            ax.fill_between(g["scale"], g["mean_delay_s"] - ci, g["mean_delay_s"] + ci, alpha=0.2)
        ax.set(title=f"{sc}: headroom", xlabel="demand scale (x nominal)",
               ylabel="mean delay per scheduled vehicle (s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_time_series(series: pd.DataFrame, runs: pd.DataFrame, path: Path) -> Path | None:
    """In-transit vehicles and delay by departure time, mean over seeds, per controller."""
    if series.empty:
        return None
    meta = runs.assign(label=label(runs)).set_index("key")[["scenario", "demand", "scale", "label"]]
    s = series.join(meta, on="key")
    panels = list(s.groupby(["scenario", "demand", "scale"]).groups)
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 3.5 * len(panels)), squeeze=False)
    for row, (sc, dem, scale) in zip(axes, panels, strict=True):
        g = s[(s["scenario"] == sc) & (s["demand"] == dem) & (s["scale"] == scale)]
        for ax, what, ylab in ((row[0], "in_transit", "vehicles in the network (truth)"),
                               (row[1], "delay", "mean delay (s) by departure time")):
            for ctrl, c in g[g["what"] == what].groupby("label"):
                m = c.groupby("t")["value"].mean()
                ax.plot(m.index, m.to_numpy(), marker=".", label=ctrl)
            ax.set(title=f"{sc} {dem} x{scale:g}", xlabel="simulated time (s)", ylabel=ylab)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: object) -> str:
    if isinstance(v, float | np.floating):
        return "—" if np.isnan(v) else f"{v:.4g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with 'mean ± CI' strings, for reading."""
    view = summary[[*GROUP, "controller", "runs"]].copy()
    for m in ("mean_delay_s", "mean_travel_time_s", "throughput_veh_h"):
        if m in summary:
            view[m] = [f"{_fmt(a)} ± {_fmt(b)}" for a, b in zip(summary[m], summary[f"{m}_ci"],
                                                               strict=True)]
    view["delay vs fixed %"] = [
        "—" if np.isnan(a) else f"{a:+.1f} ± {_fmt(b)}"
        for a, b in zip(summary["delay_vs_fixed_pct"], summary["delay_vs_fixed_ci"], strict=True)]
    return view


def markdown(df: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _sections(rep: Report) -> list[tuple[str, pd.DataFrame | None, str]]:
    failed = rep.runs[rep.runs["status"] != "ok"][["key", "error"]]
    ci = f"{CONFIDENCE:.0%} Student-t interval over seeds; change vs fixed paired by seed"
    return [
        ("Summary", _summary_view(rep.summary), f"mean ± half-width of the {ci}."),
        ("Headroom", rep.headroom if len(rep.headroom) else None,
         "largest demand scale at which the controller's delay stays at or below fixed time's "
         "delay at scale 1 (needs several scales)."),
        ("Failed runs", failed if len(failed) else None, f"{len(failed)} failed run(s)."),
    ]


def render_markdown(rep: Report, title: str) -> str:
    n_ok = int((rep.runs["status"] == "ok").sum())
    parts = [f"# {title}", "", f"{len(rep.runs)} runs, {n_ok} ok."]
    for head, table, note in _sections(rep):
        parts += ["", f"## {head}", "", note]
        if table is not None:
            parts += ["", markdown(table)]
    parts += ["", *(f"![{p.stem}]({p.name})" for p in rep.plots)]
    return "\n".join(parts) + "\n"


def render_html(rep: Report, title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>{len(rep.runs)} runs, {int((rep.runs['status'] == 'ok').sum())} ok.</p>"]
    for head, table, note in _sections(rep):
        body += [f"<h2>{html.escape(head)}</h2>", f"<p>{html.escape(note)}</p>"]
        if table is not None:
            body.append(table.to_html(index=False, float_format=_fmt, na_rep="—", border=0))
    body += [f'<p><img src="{p.name}" alt="{p.stem}"></p>' for p in rep.plots]
    style = "body{font-family:sans-serif;max-width:1200px}td,th{padding:2px 8px;text-align:right}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(results: Path, out: Path | None = None) -> Report:
    """Read a batch folder, write report.md, report.html, summary.csv and plots into ``out``."""
    runs = read_results(results)
    out = out or results / "report"
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs)
    rep = Report(runs=runs, summary=summary, headroom=headroom(summary) if len(summary) else
                 pd.DataFrame())
    if len(summary):
        series = time_series(runs, results / "frames")
        plots = [plot_headroom(summary, out / "headroom.png"),
                 plot_time_series(series, runs, out / "time_series.png")]
        rep.plots = [p for p in plots if p is not None]
    title = f"Batch report: {results}"
    rep.files = {"md": out / "report.md", "html": out / "report.html",
                 "csv": out / "summary.csv"}
    rep.files["md"].write_text(render_markdown(rep, title))
    rep.files["html"].write_text(render_html(rep, title))
    summary.to_csv(rep.files["csv"], index=False)
    return rep
