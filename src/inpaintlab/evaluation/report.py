"""The evaluation's result files and console tables: methods x hole-ratio bins.

Files written in the output folder (never over earlier results): metrics.csv (one row per
method and bin), metrics.json (the same plus run details), metrics.md (tables for humans),
samples.png and per_bin.png (see `figures`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table as RichTable

from inpaintlab.evaluation.comparison import Comparison
from inpaintlab.evaluation.figures import save_per_bin_plot, save_sample_sheet
from inpaintlab.runs.folders import RESULT_FILES, refuse_existing_results

TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "hole_l1x100": "hole L1 x100",
    "lpips": "LPIPS",
    "fid": "FID",
}
FORMATS = {"psnr": ".2f", "ssim": ".4f", "hole_l1x100": ".3f", "lpips": ".4f", "fid": ".2f"}
CONSOLE_WIDTH = 120
CONSOLE_BY_BIN = ("psnr", "ssim")  # per-bin tables printed to the console (metrics.md has all)
FID_NOTE = (
    "FID is given where a group holds at least 2 images; from few images it is biased "
    "upwards, so compare methods on the same images only."
)


class Table(NamedTuple):
    title: str
    header: list[str]
    rows: list[list[str]]


def write_report(comparison: Comparison, folder: Path) -> list[Path]:
    """Write every result file into `folder` and return their paths."""
    refuse_existing_results(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[Comparison, Path], object]] = {
        "metrics.csv": write_csv,
        "metrics.json": write_json,
        "metrics.md": write_markdown,
        "samples.png": lambda c, path: save_sample_sheet(c.samples, path),
        "per_bin.png": lambda c, path: save_per_bin_plot(c.results, path),
    }
    for name, write in writers.items():
        write(comparison, folder / name)
    return [folder / name for name in RESULT_FILES]


def write_csv(comparison: Comparison, path: Path) -> None:
    """One row per method and group: method, bin, count, each metric, ms_per_image."""
    columns = ["method", "bin", "count", *comparison.metrics, "ms_per_image"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        for row in comparison.rows():
            writer.writerow({**row, "count": int(row["count"])})


def write_json(comparison: Comparison, path: Path) -> None:
    path.write_text(json.dumps(comparison.as_dict(), indent=2, default=str))


def write_markdown(comparison: Comparison, path: Path) -> None:
    """Overall table, one methods x bins table per metric, and notes."""
    counts = first_method_counts(comparison)
    images = ", ".join(f"{group_title(group)}: {count}" for group, count in counts.items())
    lines = [f"# Evaluation on the {comparison.split} split", "", f"Images per group: {images}."]
    for table in report_tables(comparison, by_bin=comparison.metrics):
        lines += ["", f"## {table.title}", "", *markdown_table(table)]
    lines += ["", *notes(comparison)]
    path.write_text("\n".join(lines) + "\n")


def print_comparison(comparison: Comparison, console: Console | None = None) -> None:
    """The overall table and the PSNR and SSIM tables by hole ratio, as rich tables."""
    # wide enough for every column even when the output is a log file (rich's default is 80)
    console = console or Console(width=max(Console().width, CONSOLE_WIDTH))
    longest = max(len(method) for method in comparison.results)
    for table in report_tables(comparison, by_bin=CONSOLE_BY_BIN):
        view = RichTable(title=table.title)
        view.add_column(table.header[0], min_width=longest, no_wrap=True)
        for column in table.header[1:]:
            view.add_column(column, justify="right")
        for row in table.rows:
            view.add_row(*row)
        console.print(view)
    for note in notes(comparison):
        console.print(note, soft_wrap=True)


def report_tables(comparison: Comparison, by_bin: tuple[str, ...]) -> list[Table]:
    """The overall table, then a methods x groups table for each metric of `by_bin`."""
    tables = [overall_table(comparison)]
    groups = comparison.groups
    for metric in (m for m in by_bin if m in comparison.metrics):
        rows = [
            [method, *(cell(results.get(g, {}), metric) for g in groups)]
            for method, results in comparison.results.items()
        ]
        tables.append(Table(f"{TITLES[metric]} by hole ratio (%)", ["method", *groups], rows))
    return tables


def overall_table(comparison: Comparison) -> Table:
    """Methods x every metric over all images, with the time per image."""
    header = ["method", "images", *(TITLES[m] for m in comparison.metrics), "ms / image"]
    rows = [
        [
            method,
            str(int(groups["all"]["count"])),
            *(cell(groups["all"], m) for m in comparison.metrics),
            f"{comparison.ms_per_image[method]:.1f}",
        ]
        for method, groups in comparison.results.items()
    ]
    return Table(f"{comparison.split} split, all images", header, rows)


def cell(row: dict[str, float], metric: str) -> str:
    """A formatted value, or "-" where it is not defined."""
    value = row.get(metric)
    if value is None or math.isnan(value):
        return "-"
    return format(value, FORMATS[metric])


def group_title(group: str) -> str:
    """ "all", or a bin name with its unit, e.g. "10-20 %"."""
    return group if group == "all" else f"{group} %"


def markdown_table(table: Table) -> list[str]:
    aligns = [":---", *(["---:"] * (len(table.header) - 1))]
    return ["| " + " | ".join(cells) + " |" for cells in (table.header, aligns, *table.rows)]


def first_method_counts(comparison: Comparison) -> dict[str, int]:
    """Images per group (the same for every method)."""
    groups = next(iter(comparison.results.values()))
    return {group: int(row["count"]) for group, row in groups.items()}


def notes(comparison: Comparison) -> list[str]:
    """Lines about metrics that were not computed, FID's sample sizes and timing."""
    missing = [TITLES[m] for m in ("lpips", "fid") if m not in comparison.metrics]
    lines = []
    if missing:
        lines.append(
            f"Not computed: {', '.join(missing)} (switched off, or weights unavailable: see "
            "the warning above the table and metrics.lpips / metrics.fid)."
        )
    if "fid" in comparison.metrics:
        lines.append(FID_NOTE)
    lines.append(
        "Timing: wall time of each method's call per image, after the first batch; "
        "all metrics are on composites (known pixels copied from the input)."
    )
    return lines
