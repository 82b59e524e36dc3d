"""The `inpaintlab` command: `train` and `eval` run the Hydra tasks (the same overrides as a
checkout's train.py and eval.py), `masks` previews a mask config, `inpaint` fills the holes of
your own photos with a checkpoint or release file, `export` saves a checkpoint as a
torch.export program or an ONNX model, `release` keeps a checkpoint's generator weights for
inference (.safetensors), `app` serves a page where you paint the damage. Each command imports
what it needs when it runs, so `--help` answers at once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inpaintlab import __version__
from inpaintlab.conf import CONFIG_DIR
from inpaintlab.errors import InpaintlabError, one_line
from inpaintlab.inference import STRATEGIES

# Hydra tasks: they parse their own overrides
TASKS = {"train": "run_train", "eval": "run_eval"}
# the task a DDP process that Lightning starts again (`inpaintlab <overrides>`) belongs to
TASK_ENV = "INPAINTLAB_TASK"


def find_config_dir(explicit: str | None) -> Path:
    """The config folder given on the command line, else the package's own."""
    candidates = [Path(explicit)] if explicit else [CONFIG_DIR]
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return candidate.resolve()
    raise InpaintlabError(
        f"no Hydra config folder in {', '.join(map(str, candidates))}: pass --config-dir"
    )


def preview_masks(args: argparse.Namespace) -> int:
    """Render a grid of masks drawn from a mask config."""
    import hydra
    from hydra import compose, initialize_config_dir

    from inpaintlab.apps.masks_preview import render_mask_preview

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InpaintlabError(f"the mask preview is a PNG: give --out a .png name, not {out.name}")
    with initialize_config_dir(str(find_config_dir(args.config_dir)), version_base="1.3"):
        cfg = compose("train", overrides=[f"mask={args.config}", *args.overrides])
    generator = hydra.utils.instantiate(cfg.mask)
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


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def threshold(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def run_inpaint(args: argparse.Namespace) -> int:
    """Fill the holes of one photo or a folder of photos with a trained checkpoint."""
    from inpaintlab.apps.photo_files import inpaint_photos, plan_jobs

    jobs = plan_jobs(args.image, args.mask, args.out, compare=args.compare)
    return inpaint_photos(jobs, args)


def new_output(args: argparse.Namespace) -> Path:
    """`--out`, refused when it exists and `--overwrite` was not given."""
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InpaintlabError(f"{out} already exists: pass --overwrite or choose another --out")
    return out


def run_export(args: argparse.Namespace) -> int:
    """Export a checkpoint as a torch.export program or an ONNX model."""
    from inpaintlab.apps.export import export_checkpoint

    out = new_output(args)
    done = export_checkpoint(args.ckpt, out, tuple(args.size) if args.size else None)
    print(
        f"wrote {done.path}: images of {done.height}x{done.width} (height x width), any batch "
        f"size; largest difference from the checkpoint on a test batch: {done.max_difference:.1e}"
    )
    return 0


def run_release(args: argparse.Namespace) -> int:
    """Write a checkpoint's release file."""
    from inpaintlab.models.release import write_release

    out = new_output(args)
    written = write_release(args.ckpt, out, args.dtype)
    size = written.stat().st_size / 2**20
    print(f"wrote {written} ({size:.1f} MiB, {args.dtype}): load it with Inpainter.from_pretrained")
    return 0


def run_app(args: argparse.Namespace) -> int:
    """Serve the page where you paint the damage and get the photo restored."""
    from inpaintlab.errors import require_extra

    require_extra("app", "inpaintlab app")
    from inpaintlab.apps.web import serve

    serve(args.model, host=args.host, port=args.port, device=args.device)
    return 0


def add_app_parser(commands: argparse._SubParsersAction) -> None:
    app = commands.add_parser(
        "app",
        help="a page in your browser: paint over the damage of a photo, get it restored",
        description="Upload a photo, paint the holes with a brush, press Inpaint, download the "
        "result at the photo's full size. Needs the [app] extra (gradio).",
    )
    app.add_argument("--model", required=True, help="a release file, checkpoint or model name")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default: local)")
    app.add_argument(
        "--port", type=positive_int, default=None, help="default: 7860 or the next free"
    )
    app.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    app.set_defaults(handler=run_app)


def add_masks_parser(commands: argparse._SubParsersAction) -> None:
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
    masks.add_argument(
        "--force", "--overwrite", action="store_true", help="overwrite --out if it exists"
    )
    masks.add_argument(
        "--config-dir", default=None, help="Hydra config folder (default: the package's own)"
    )
    masks.set_defaults(handler=preview_masks)


INPAINT_HELP = """\
Fill the holes of a photo (or of every photo in a folder) with a model trained by train.py.
The model type, its size rule and channels are read from the checkpoint. Any image size
works; the result keeps the image's size (after EXIF rotation) and its known pixels exactly
(bit for bit in PNG; JPEG output is lossy). Images may be RGB, greyscale (kept grey), RGBA
(alpha ignored unless --mask alpha) or 16-bit (written as 8-bit); files of several frames
(animated GIF) are refused. Masks are read by their brightest channel, so a red stroke counts
like a white one: with --mask-hole white (default) pixels brighter than --threshold (default
0.5, so anti-aliased greys go to the nearer side) are holes; with black, darker ones. A mask
with transparent pixels (a paint tool's layer) marks its holes by opacity instead: painted
pixels are holes, whatever their colour. No output ever replaces an input photo or mask."""


def add_inpaint_parser(commands: argparse._SubParsersAction) -> None:
    inpaint = commands.add_parser(
        "inpaint",
        help="fill the holes of your own photos with a trained checkpoint",
        description=INPAINT_HELP,
    )
    inpaint.add_argument(
        "--ckpt",
        required=True,
        help="a checkpoint written by train.py, or a release file (inpaintlab release)",
    )
    inpaint.add_argument(
        "--image", required=True, help="a photo, or a folder of photos (paired with masks by name)"
    )
    inpaint.add_argument(
        "--mask",
        required=True,
        help="the mask file; a folder of masks named like the photos (photo.jpg pairs with "
        "photo.png) when --image is a folder; or 'alpha': transparent pixels are holes",
    )
    inpaint.add_argument(
        "--out",
        required=True,
        help="the result file (.png or .jpg), or a folder for <photo name>.png results",
    )
    inpaint.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    inpaint.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="how a photo larger than the training size meets the model: crop (a window "
        "around each group of holes), resize (the whole photo shrunk to the training size), "
        "full (the whole photo at its resolution); auto: full up to 4x the training size, "
        "else crop (default: %(default)s)",
    )
    inpaint.add_argument(
        "--mask-hole",
        choices=("white", "black"),
        default="white",
        help="which mask colour marks the holes (default: %(default)s)",
    )
    inpaint.add_argument(
        "--threshold",
        type=threshold,
        default=0.5,
        help="grey level in [0, 1) that separates hole from known pixels in non-binary masks "
        "(default: %(default)s)",
    )
    inpaint.add_argument(
        "--dilate", type=non_negative_int, default=0, help="grow the holes by N pixels (square)"
    )
    inpaint.add_argument(
        "--resize-mask",
        action="store_true",
        help="resize a mask of another size to the photo's (nearest); without it that is an error",
    )
    inpaint.add_argument(
        "--compare",
        action="store_true",
        help="also write input | mask | result side by side to <out name>_compare.png",
    )
    inpaint.add_argument(
        "--overwrite", action="store_true", help="replace existing results (never by default)"
    )
    inpaint.set_defaults(handler=run_inpaint)


def add_checkpoint_command(
    commands: argparse._SubParsersAction, name: str, help: str, description: str, out: str
) -> argparse.ArgumentParser:
    """A sub-command that turns a checkpoint into a file: --ckpt, --out, --overwrite."""
    command = commands.add_parser(name, help=help, description=description)
    command.add_argument("--ckpt", required=True, help="a checkpoint written by train.py")
    command.add_argument("--out", required=True, help=f"the file to write, e.g. {out}")
    command.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return command


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    export = add_checkpoint_command(
        commands,
        "export",
        help="export a checkpoint as a torch.export program (.pt2) or an ONNX model (.onnx)",
        description="Save a graph mapping (image, mask 1 = hole) at one size, any batch, to "
        "the composite, as `inpaint` computes it: --out *.pt2 for torch.export.load(path)"
        ".module(), --out *.onnx for ONNX Runtime (inputs `image` and `mask`; the [onnx] "
        "extra). The written file is checked against the checkpoint on a test batch.",
        out="model.pt2",
    )
    export.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        help="input size of the program (default: the training image size)",
    )
    export.set_defaults(handler=run_export)


def add_release_parser(commands: argparse._SubParsersAction) -> None:
    release = add_checkpoint_command(
        commands,
        "release",
        help="write a checkpoint's generator weights as a release file (.safetensors)",
        description="Keep what inference needs: the generators' weights (their moving average "
        "where the run kept one), the model's settings and the inpaintlab version.",
        out="model.safetensors",
    )
    release.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32")
    release.set_defaults(handler=run_release)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per tool."""
    parser = argparse.ArgumentParser(prog="inpaintlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"inpaintlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train a model (Hydra overrides: model=pconv mask=...)")
    commands.add_parser("eval", help="evaluate checkpoints and classical methods (overrides)")
    add_masks_parser(commands)
    add_inpaint_parser(commands)
    add_export_parser(commands)
    add_release_parser(commands)
    add_app_parser(commands)
    return parser


def run_hydra_task(task: str, overrides: list[str]) -> int:
    """`inpaintlab train|eval <overrides>`: the Hydra task with the package's configs."""
    from inpaintlab.apps import tasks

    os.environ[TASK_ENV] = task
    getattr(tasks, TASKS[task])([sys.argv[0], *overrides])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `inpaintlab` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TASKS:
        return run_hydra_task(argv[0], argv[1:])
    if os.environ.get(TASK_ENV) in TASKS and os.environ.get("LOCAL_RANK"):
        return run_hydra_task(os.environ[TASK_ENV], argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:
        from inpaintlab.runs.task import as_user_error

        user_error = as_user_error(error)
        if user_error is None:
            raise
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
