"""The `inpaintlab` command: tools around training (`inpaintlab masks` previews a mask config)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir

from inpaintlab.errors import InpaintlabError
from inpaintlab.runtime import as_user_error, one_line


def find_config_dir(explicit: str | None) -> Path:
    """conf/ given on the command line, in the current folder, or beside the package source."""
    candidates = (
        [Path(explicit)] if explicit else [Path.cwd() / "conf", Path(__file__).parents[2] / "conf"]
    )
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return candidate.resolve()
    raise InpaintlabError(
        f"no Hydra config folder in {', '.join(map(str, candidates))}: pass --config-dir"
    )


def preview_masks(args: argparse.Namespace) -> int:
    """Render a grid of masks drawn from a mask config."""
    from inpaintlab.masks_preview import render_mask_preview

    with initialize_config_dir(str(find_config_dir(args.config_dir)), version_base="1.3"):
        cfg = compose("train", overrides=[f"mask={args.config}", *args.overrides])
    generator = hydra.utils.instantiate(cfg.mask)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise InpaintlabError(
            f"{out} already exists: pass --force to replace it or choose another --out"
        )
    path = render_mask_preview(
        generator, out, rows=args.rows, cols=args.cols, size=args.size, seed=args.seed
    )
    print(f"wrote {path}")
    return 0


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per tool."""
    parser = argparse.ArgumentParser(prog="inpaintlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    masks = commands.add_parser("masks", help="render a preview grid of a mask config to PNG")
    masks.add_argument(
        "config", help="a conf/mask/ name: center, boxes, freeform, irregular_thin, ..."
    )
    masks.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. mask.min_ratio=0.2")
    masks.add_argument(
        "--out", default="masks_preview.png", help="PNG to write (default: %(default)s)"
    )
    masks.add_argument(
        "--size", type=positive_int, default=256, help="mask height and width in pixels"
    )
    masks.add_argument("--rows", type=positive_int, default=4)
    masks.add_argument("--cols", type=positive_int, default=8)
    masks.add_argument("--seed", type=int, default=0)
    masks.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    masks.add_argument("--config-dir", default=None, help="Hydra config folder (default: ./conf)")
    masks.set_defaults(handler=preview_masks)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `inpaintlab` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is None:
            raise
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
