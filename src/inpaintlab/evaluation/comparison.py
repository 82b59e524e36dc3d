"""The result of comparing methods: scores per method and hole-ratio bin, timings, samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class Comparison:
    """Results of `compare_methods`.

    `results[method][group]` maps "count" and each metric to its value, for the group "all"
    and every hole-ratio bin holding images (FID only where it is defined). `samples` holds
    the first images' columns as (title, N x C x H x W) pairs: masked input, each method,
    original.
    """

    split: str
    metrics: tuple[str, ...]
    results: dict[str, dict[str, dict[str, float]]]
    ms_per_image: dict[str, float]
    samples: list[tuple[str, Tensor]]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """ "all" and the bins that hold images, in bin order."""
        return list(next(iter(self.results.values())))

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per method and group: method, bin, count, metrics, ms_per_image."""
        return [
            {"method": method, "bin": group, **row, "ms_per_image": self.ms_per_image[method]}
            for method, groups in self.results.items()
            for group, row in groups.items()
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: run info, then per method its timing and per-group rows."""
        methods = {
            name: {"ms_per_image": self.ms_per_image[name], "bins": self.results[name]}
            for name in self.results
        }
        return {**self.info, "split": self.split, "metrics": list(self.metrics), "methods": methods}
