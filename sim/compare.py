"""Compare controllers on one scenario over seeds: table (mean, min-max, change vs fixed) + plot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.registry import resolve_scenario
from sim.pool import RunKey, RunTask, run_pool

HEADLINE = ("mean_delay_s", "mean_travel_time_s", "throughput_veh_h", "teleports", "not_inserted")


def plan_tasks(
    scenario: str,
    controllers: list[str],
    seeds: list[int],
    *,
    demand: str | None = None,
    duration: float | None = None,
    scale: float = 1.0,
    backend: str = "libsumo",
    out_dir: Path | None = None,
    layout: Any = None,
) -> list[RunTask]:
    """Resolve (and generate, once, in this process) the scenario files for every run
    (``layout``: the ``DetectorLayout`` the site has; None = every kind)."""
    tasks = []
    for seed in seeds:
        spec = resolve_scenario(scenario, demand=demand, seed=seed, duration=duration, scale=scale)
        for ctrl in controllers:
            name, params = parse_controller(ctrl)
            key = RunKey(scenario=spec.name, controller=name, seed=seed, demand=spec.demand,
                         scale=scale, duration=spec.duration, params=params)
            tasks.append(RunTask(key=key, scenario=spec, backend=backend, out_dir=out_dir,
                                 layout=layout))
    return tasks


def parse_controller(text: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``name`` or ``name[key=value+key=value]`` -> (name, params); numbers become floats."""
    name, _, rest = text.partition("[")
    params = []
    for item in filter(None, rest.rstrip("]").split("+")):
        key, sep, value = item.partition("=")
        if not sep:
            msg = f"controller parameter {item!r} in {text!r} must be key=value"
            raise ValueError(msg)
        try:
            params.append((key, float(value)))
        except ValueError:
            params.append((key, value))
    return name, tuple(params)


def summarize_runs(runs: pd.DataFrame, *, baseline: str = "fixed") -> pd.DataFrame:
    """Per controller: mean and min-max of the headline metrics over seeds, change vs baseline."""
    ok = runs[runs["error"] == ""].copy()
    if "variant" in ok:  # controllers run with parameters are reported apart
        named = ok["variant"].notna() & (ok["variant"] != "")
        ok["controller"] = ok["variant"].where(named, ok["controller"])
    rows = []
    base = ok.loc[ok["controller"] == baseline, "mean_delay_s"].mean() if baseline in set(ok["controller"]) else None
    base_tt = ok.loc[ok["controller"] == baseline, "mean_travel_time_s"].mean() if base is not None else None
    for ctrl, g in ok.groupby("controller", sort=False):
        row: dict[str, Any] = {"controller": ctrl, "runs": len(g)}
        for m in HEADLINE:
            row[m] = g[m].mean()
            row[f"{m}_min"], row[f"{m}_max"] = g[m].min(), g[m].max()
        row["delay_vs_fixed_pct"] = 100 * (row["mean_delay_s"] / base - 1) if base else float("nan")
        row["travel_time_vs_fixed_pct"] = (
            100 * (row["mean_travel_time_s"] / base_tt - 1) if base_tt else float("nan")
        )
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame) -> str:
    """The comparison as a markdown table: delay mean [min-max], change vs fixed, travel time."""
    lines = [
        "| controller | delay s/veh (mean [min–max]) | vs fixed | travel time s | throughput veh/h | teleports |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        vs = "—" if r.controller == "fixed" or pd.isna(r.delay_vs_fixed_pct) else f"{r.delay_vs_fixed_pct:+.1f} %"
        lines.append(
            f"| {r.controller} | {r.mean_delay_s:.1f} [{r.mean_delay_s_min:.1f}–{r.mean_delay_s_max:.1f}] "
            f"| {vs} | {r.mean_travel_time_s:.1f} | {r.throughput_veh_h:.0f} | {r.teleports:.1f} |"
        )
    return "\n".join(lines)


def plot_summary(summary: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Bar chart of mean delay per controller with min-max whiskers."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    y = summary["mean_delay_s"].to_numpy()
    err = [y - summary["mean_delay_s_min"].to_numpy(), summary["mean_delay_s_max"].to_numpy() - y]
    colors = ["#d62728" if c == "signalopt" else "#7f7f7f" for c in summary["controller"]]
    ax.bar(summary["controller"], y, yerr=err, capsize=4, color=colors)
    for k, v in enumerate(y):
        ax.text(k, v, f"{v:.0f}", ha="center", va="bottom")
    ax.set_ylabel("mean delay per scheduled vehicle (s)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_compare(
    tasks: list[RunTask],
    out: Path,
    *,
    workers: int = 2,
    on_progress: Callable[[str, float], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the tasks, write compare.csv (per run), compare.md and compare.png; return both tables."""
    out.mkdir(parents=True, exist_ok=True)
    results = run_pool(tasks, workers=workers, on_progress=on_progress, on_done=on_done)
    order = {t.key.slug: k for k, t in enumerate(tasks)}
    runs = pd.DataFrame(results)
    runs["_o"] = runs["key"].map(order)
    runs = runs.sort_values("_o").drop(columns="_o").reset_index(drop=True)
    runs.drop(columns=[c for c in ("traceback",) if c in runs]).to_csv(out / "compare.csv", index=False)
    summary = summarize_runs(runs)
    first = tasks[0].scenario
    title = f"{first.name} {first.demand}, {first.duration:g} s, seeds {sorted({t.key.seed for t in tasks})}"
    (out / "compare.md").write_text(f"# {title}\n\n{markdown_table(summary)}\n")
    summary.to_csv(out / "compare_summary.csv", index=False)
    if len(summary):
        plot_summary(summary, out / "compare.png", title=title)
    return runs, summary


def paired_change(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per (case, controller): the change in mean delay between two sets of runs of the same
    seeds (e.g. before and after an engine change), paired seed by seed.

    Closed-loop delay moves a few per cent with any perturbation of the plans, so a change is
    judged against the spread of its per-seed differences: mean, standard error and a 95 %
    t interval, and how many seeds got worse or better (by more than 0.05 s/veh).
    """
    from scipy import stats  # noqa: PLC0415

    keys = ["case", "controller", "seed"]
    cols = [*keys, "mean_delay_s"]
    ok_b, ok_a = (d[d["error"].fillna("") == ""][cols] for d in (before, after))
    pairs = ok_b.merge(ok_a, on=keys, suffixes=("_before", "_after"))
    if pairs.empty:
        msg = "no (case, controller, seed) was run successfully in both sets"
        raise ValueError(msg)
    rows = []
    for (case, ctrl), g in pairs.groupby(["case", "controller"], sort=False):
        diff = (g["mean_delay_s_after"] - g["mean_delay_s_before"]).to_numpy()
        n = len(diff)
        se = float(diff.std(ddof=1) / n**0.5) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * se) if n > 1 else float("nan")
        base = float(g["mean_delay_s_before"].mean())
        rows.append({"case": case, "controller": ctrl, "seeds": n, "before_s": base,
                     "after_s": float(g["mean_delay_s_after"].mean()), "change_s": float(diff.mean()),
                     "se_s": se, "ci95_lo_s": float(diff.mean()) - half,
                     "ci95_hi_s": float(diff.mean()) + half,
                     "change_pct": 100 * float(diff.mean()) / base if base else float("nan"),
                     "worse": int((diff > 0.05).sum()), "better": int((diff < -0.05).sum())})
    return pd.DataFrame(rows)


def paired_markdown(table: pd.DataFrame) -> str:
    """``paired_change`` as a markdown table."""
    lines = ["| case | controller | seeds | before s/veh | after s/veh | change [95 % CI] | change % "
             "| seeds worse / better |", "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.case} | {r.controller} | {r.seeds} | {r.before_s:.1f} | {r.after_s:.1f} | "
                     f"{r.change_s:+.2f} [{r.ci95_lo_s:+.2f}, {r.ci95_hi_s:+.2f}] | "
                     f"{r.change_pct:+.1f} % | {r.worse} / {r.better} |")
    return "\n".join(lines)
