"""`rnnkit generate RUN --out piece.mid`: music from a trained music run, as MIDI and a PNG."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="generate music (a MIDI file) from a trained music run",
        description="Continue an opening (the first --prompt-steps frames of a test piece of "
                    "the run's data) or a --chord with a model trained by `rnnkit train "
                    "music`: every key of each new frame is drawn from the model's Bernoulli "
                    "and fed back. Writes the MIDI file (prompt + continuation, one frame per "
                    "quarter note) and a piano-roll PNG beside it (same name, .png).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="a music run directory or checkpoint")
    p.add_argument("--out", required=True, metavar="FILE.mid", help="MIDI file to write")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--prompt-steps", type=int, default=0, metavar="N",
                       help="start from the first N frames of a test piece")
    start.add_argument("--chord", default=None, metavar="NOTES",
                       help="start from one chord: note names joined by '-' (C-E-G, "
                            "D3-F#4-A4; no octave: octave 4, C4 = middle C)")
    p.add_argument("--piece", type=int, default=0, help="which test piece the opening is from")
    p.add_argument("--data", default=None,
                   help="piano-roll .mat file (or jsb / nottingham) for the opening "
                        "(default: the run's own data)")
    p.add_argument("--steps", type=int, default=64, help="frames to generate")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divides the logits before each key's Bernoulli draw (0: keys with "
                        "p > 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws")
    p.add_argument("--style", default=None,
                   help="conditional runs: the style (data set name, e.g. jsb, nottingham)")
    p.add_argument("--bpm", type=float, default=100.0, help="tempo: frames per minute")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of the run")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.train.music_generate import generate_piece

    if args.prompt_steps < 0 or args.steps < 1 or args.piece < 0:
        from rnnkit.cli import UserError
        raise UserError(f"--prompt-steps, --piece must be >= 0 and --steps >= 1; got "
                        f"{args.prompt_steps}, {args.piece}, {args.steps}")
    info = generate_piece(args.run_dir, args.out, prompt_steps=args.prompt_steps,
                          chord=args.chord, piece=args.piece, data=args.data,
                          steps=args.steps, temperature=args.temperature, seed=args.seed,
                          style=args.style, bpm=args.bpm, force=args.force,
                          checkpoint=args.checkpoint)
    print(f"wrote {info['midi']} ({info['prompt_frames']} prompt + "
          f"{info['generated_frames']} generated frames, {info['notes_per_frame']:.2f} notes "
          f"per generated frame) and {info['png']}")
    return 0
