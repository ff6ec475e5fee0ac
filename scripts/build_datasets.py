"""Build the zoo's datasets from Debian packages into data/ (nothing is downloaded).

    .venv/bin/python scripts/build_datasets.py                 # all three tasks -> data/
    .venv/bin/python scripts/build_datasets.py speech --out /tmp/data

Needs (Debian): fluidsynth fluid-soundfont-gm asterisk-core-sounds-{en,es,fr,it,ru}-wav
hydrogen-drumkits sonic-pi-samples. A missing one stops the build with the apt-get line to run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from captum_freqrex.datasets import BUILDERS, DebianPackageMissing  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", metavar="task", help=f"any of {', '.join(BUILDERS)} (default: all)")
    parser.add_argument("--out", default=os.path.join(REPO, "data"), help="output root (default: data/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the instrument phrases / speech padding")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tasks if t not in BUILDERS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(BUILDERS)}")
    torch.set_num_threads(1)
    for task in args.tasks or list(BUILDERS):
        start = time.perf_counter()
        print(f"building {task} -> {os.path.join(args.out, task)}", flush=True)
        kwargs = {"seed": args.seed} if task in ("instruments", "speech") else {}
        try:
            BUILDERS[task](args.out, verbose=True, **kwargs)
        except DebianPackageMissing as error:
            print(f"build_datasets: error: {error}", file=sys.stderr)
            return 2
        print(f"  {task} done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
