"""Time the synthetic mammogram generator: rendering alone and rendering plus writing the files.

    python benchmarks/synth_speed.py [--scale 1.0] [--exams 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mammoscreen.data.synth import SynthOptions, generate_exams, render_exam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--exams", type=int, default=3)
    args = parser.parse_args()
    options = SynthOptions(scale=args.scale)
    render_exam(0, 0, options)  # warm-up (imports, FFT plans)
    start, cpu = time.perf_counter(), time.process_time()
    for index in range(args.exams):
        render_exam(0, index, options)
    render = (time.perf_counter() - start) / args.exams
    render_cpu = (time.process_time() - cpu) / args.exams
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        generate_exams(args.exams, directory, seed=1, options=options, progress=False)
        total = (time.perf_counter() - start) / args.exams
    height, width = options.size
    print(f"scale {args.scale} ({height}x{width}): render {render:.2f} s/exam ({render_cpu:.2f} s CPU), "
          f"render + write PNGs and masks "
          f"{total:.2f} s/exam (4 views, one process)")


if __name__ == "__main__":
    main()
