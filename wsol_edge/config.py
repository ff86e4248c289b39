"""Config files (YAML or JSON) as argparse defaults, so flags given on the command line win."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of option: value")
    return {k.replace("-", "_"): v for k, v in data.items()}


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``--config FILE`` first, use its values as defaults, then parse the full command line."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        cfg = load_config(known.config)
        valid = {a.dest for a in parser._actions}
        unknown = sorted(set(cfg) - valid)
        if unknown:
            parser.error(f"{known.config}: unknown option(s) {', '.join(unknown)}")
        parser.set_defaults(**cfg)
        for action in parser._actions:  # a config value satisfies a required flag
            if action.dest in cfg:
                action.required = False
    return parser.parse_args(argv)
