"""``mammoscreen models``: what models are available, what they need, and where their weights come from."""

from __future__ import annotations

import argparse
import json
import textwrap


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list the available models, their inputs, outputs, variants and weights",
        description="List every registered model: name, title, licence of its weights, input, output level, "
                    "prediction columns, variants and where its weight files come from.")
    p.add_argument("names", nargs="*", metavar="MODEL", help="only these models (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_models)


def model_info(spec) -> dict:
    """A model's registry entry as plain data."""
    from ..models.weights import cache_dir

    return {
        "name": spec.name, "title": spec.title, "paper": spec.paper, "license": spec.license,
        "output_level": spec.output_level, "prediction_columns": list(spec.prediction_columns),
        "reported_prediction": spec.extra.get("reported_prediction"),
        "input": spec.input_description, "needs_crop": spec.needs_crop,
        "windows": {k: list(v) for k, v in (spec.center_windows or {}).items()},
        "variants": list(spec.variants), "default_variant": spec.default_variant,
        "weights": {variant: {"file": wf.filename, "url": wf.url, "sha256": wf.sha256, "license": wf.license,
                              "cached": (cache_dir() / spec.name / wf.filename).is_file(), "bundled": wf.bundled}
                    for variant, wf in spec.weights.items()},
        "intended_use": spec.intended_use,
        "preprocessing": _preprocessing(spec.preprocessing),
        "options": list(spec.options.names()),
    }


def inputs_markdown(specs=None) -> str:
    """The table of docs/models/inputs.md: every model's input, generated from its preprocessing record."""
    from ..models.registry import list_models

    rows = ["| model | input (generated from the model's preprocessing record) |", "|---|---|"]
    rows += [f"| `{spec.name}` | {spec.input_description} |" for spec in (specs or list_models())]
    return "\n".join(rows) + "\n"


def _preprocessing(record) -> dict | None:
    """The typed preprocessing record as plain data (None for a model registered without one)."""
    import dataclasses

    if record is None:
        return None
    data = dataclasses.asdict(record)
    data["windows"] = {k: list(v) for k, v in (record.windows or {}).items()} or None
    data["resize"] = list(record.resize) if record.resize else None
    return data


def _download_status(wf: dict) -> str:
    from ..models.weights import url_problem

    if not wf["url"]:
        return "not published"
    if url_problem(wf["url"]) is not None:
        return "published over plain http: not downloaded automatically, fetch it yourself"
    return "downloadable" if wf["sha256"] else "downloadable with --allow-unverified"


def run_models(args: argparse.Namespace) -> int:
    from ..models.registry import get_model_spec, list_models
    from ..models.weights import cache_dir

    try:
        specs = [get_model_spec(n) for n in args.names] if args.names else list_models()
    except KeyError as e:
        raise ValueError(str(e).strip("'\"")) from None
    infos = [model_info(spec) for spec in specs]
    if args.json:
        print(json.dumps(infos, indent=1))
        return 0
    wrap = lambda text: textwrap.fill(text, width=100, initial_indent="    ", subsequent_indent="    ")  # noqa: E731
    for info in infos:
        print(f"{info['name']}: {info['title']}")
        print(wrap(f"paper: {info['paper']}"))
        print(wrap(f"licence of the weights: {info['license']}"))
        print(wrap(f"input: {info['input']}"))
        reported = f", reported prediction {info['reported_prediction']}" if info["reported_prediction"] else ""
        print(wrap(f"output: {info['output_level']}-level, columns {', '.join(info['prediction_columns'])}{reported}"))
        variants = ", ".join(v + (" (default)" if v == info["default_variant"] else "") for v in info["variants"])
        print(wrap(f"variants: {variants or '-'}"))
        print(wrap(f"intended use: {info['intended_use']}"))
        if any(wf["bundled"] for wf in info["weights"].values()):
            print("    weights (shipped inside mammoscreen; no --weights or 'official' uses them, sha256-verified):")
        else:
            print("    weights (--weights DIR looks for these file names; 'official' uses "
                  f"{cache_dir() / info['name']}):")
        for variant, wf in info["weights"].items():
            status = ("bundled with mammoscreen, used when no --weights is given" if wf["bundled"] else
                      "cached" if wf["cached"] else _download_status(wf))
            checksum = f"sha256 {wf['sha256'][:12]}..." if wf["sha256"] else "no published sha256"
            print(f"      {variant}: {wf['file']}  [{status}; {checksum}]")
            if wf["url"]:
                print(f"        {wf['url']}")
        print()
    return 0
