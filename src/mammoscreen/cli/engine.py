"""``--engine local|ray`` and its Ray options, shared by run, predict, crop, centers and convert-dicom."""

from __future__ import annotations

import argparse

from .common import add_quiet_option, add_workers_option, positive_int


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("engine (docs/scale-out.md)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this machine's processes (default); ray: a Ray cluster (pip install "
                        "'mammoscreen[ray]'), same output files")
    g.add_argument("--address", default=None, metavar="ADDRESS",
                   help="with --engine ray: the cluster to use - 'auto' (this machine's 'ray start' cluster), "
                        "HOST:PORT of the head node or ray://HOST:10001; default: start Ray on this machine")
    g.add_argument("--num-workers", type=positive_int, default=None, metavar="N",
                   help="with --engine ray: model workers and concurrent preprocessing tasks (default: one per "
                        "CPU of the cluster, or per GPU with --gpus-per-worker)")
    g.add_argument("--gpus-per-worker", type=_non_negative_float, default=0.0, metavar="G",
                   help="with --engine ray: GPUs each model worker takes (e.g. 1, or 0.5 to share a GPU; default 0)")


def add_execution_options(parser: argparse.ArgumentParser, *, workers: bool = True, engine: bool = True,
                          quiet: bool = True) -> None:
    """How a command's work runs, the same flags everywhere: --workers (processes of a per-image stage), the engine
    group (--engine, --address, --num-workers, --gpus-per-worker) and --quiet (no progress bars)."""
    if workers:
        add_workers_option(parser)
    if engine:
        add_engine_options(parser)
    if quiet:
        add_quiet_option(parser)


def engine_choice(args: argparse.Namespace):
    """The :class:`~mammoscreen.engine.choice.EngineChoice` of the parsed options."""
    from ..engine.choice import EngineChoice

    if args.engine != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--num-workers", args.num_workers),
                                          ("--gpus-per-worker", args.gpus_per_worker or None)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --engine ray")
        return EngineChoice()
    from ..engine.ray.session import RaySettings

    return EngineChoice("ray", RaySettings(args.address, args.num_workers, args.gpus_per_worker))


def print_engine(engine) -> None:
    """Where a Ray run's work ran: nodes and images per node of each stage."""
    for stage, record in engine.stages.items():
        nodes = record.get("nodes", {})
        shown = ", ".join(f"{node[:8]} {count}" for node, count in nodes.items())
        lost = f"; {record['workers_lost']} worker(s) lost and replaced" if record.get("workers_lost") else ""
        print(f"{stage}: ran on {len(nodes)} Ray node(s) ({shown}){lost}")
