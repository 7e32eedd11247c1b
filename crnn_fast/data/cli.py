"""``python -m crnn_fast.data``: render a synthetic set into a cache."""

import argparse
import time
from typing import Optional

from .cache import SPLIT_SEEDS, generate, generate_distributed
from .styles import _int_at_least, add_style_arguments, style_of


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crnn_fast.data",
        description="Render a reproducible synthetic CAPTCHA set into a memory-mappable cache directory.",
    )
    # --size: the same, for torchrun, whose own parser rejects "--n" as ambiguous
    parser.add_argument("--n", "--size", dest="n", type=_int_at_least(1), required=True, help="size of the whole set")
    parser.add_argument("--seed", type=_int_at_least(0), required=True, help=f"set seed; the splits use {SPLIT_SEEDS}")
    parser.add_argument("--out", required=True, help="cache directory to create")
    parser.add_argument("--workers", type=_int_at_least(1), help="processes (default: all CPUs)")
    add_style_arguments(parser)
    parser.add_argument("--start", type=_int_at_least(0), default=0, help="first index to render (for sharding)")
    parser.add_argument("--stop", type=_int_at_least(1), help="index to stop before (default: n)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        style = style_of(args)
    except (ValueError, TypeError) as err:
        parser.error(str(err))

    began = time.perf_counter()
    from .. import distributed

    if distributed.launched():  # torchrun: the processes share the work
        if args.start != 0 or args.stop is not None:
            parser.error("--start/--stop shard by hand; under torchrun the processes share the range themselves")
        ctx, _ = distributed.init("cpu")
        try:
            out = generate_distributed(args.n, args.seed, args.out, style=style, workers=args.workers,
                                       progress=not args.no_progress)
        except (ValueError, FileExistsError) as err:
            parser.error(str(err))
        finally:
            distributed.close()
        if ctx.main:
            print(f"wrote {args.n} images to {out} in {time.perf_counter() - began:.1f} s ({ctx.world} processes)")
        return
    try:
        out = generate(
            args.n, args.seed, args.out, style=style, workers=args.workers,
            progress=not args.no_progress, start=args.start, stop=args.stop,
        )
    except (ValueError, FileExistsError) as err:
        parser.error(str(err))
    count = (args.n if args.stop is None else args.stop) - args.start
    print(f"wrote {count} images to {out} in {time.perf_counter() - began:.1f} s")

