"""`rnnkit export RUN --onnx FILE`: the model of a training run as an ONNX file."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a trained model to ONNX",
        description="Write the run's model as ONNX, with dynamic batch and time axes and the "
                    "sequences' lengths as an input (a seq2seq run gives NAME.encoder.onnx and "
                    "NAME.decoder.onnx, one decoder step). See docs/export.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="a run directory or checkpoint directory")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli import UserError
    from rnnkit.export.runs import export_run

    if not 14 <= args.opset <= 20:
        raise UserError(f"--opset must be in [14, 20] (the opsets this export is checked "
                        f"with), got {args.opset}")
    for g in export_run(args.run_dir, args.onnx, args.checkpoint, args.overwrite, args.opset):
        print(f"{g.path}: {g.what}")
        print(f"  inputs:  {', '.join(g.inputs)}")
        print(f"  outputs: {', '.join(g.outputs)}")
    return 0
