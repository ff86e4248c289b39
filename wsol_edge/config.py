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
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text) or {}
    except (ValueError, yaml.YAMLError) as exc:  # JSON, YAML and UTF-8 errors
        raise ValueError(f"{path}: not a readable config file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of option: value")
    return {k.replace("-", "_"): v for k, v in data.items()}


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``--config FILE`` first, use its values as defaults, then parse the full command line."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        try:
            cfg = load_config(known.config)
        except (OSError, ValueError) as exc:  # missing, unreadable, not a mapping, bad JSON/YAML
            parser.error(str(exc).splitlines()[0])
        actions = {a.dest: a for a in parser._actions}
        unknown = sorted(set(cfg) - set(actions))
        if unknown:
            parser.error(f"{known.config}: unknown option(s) {', '.join(unknown)}")
        parser.set_defaults(**{k: _checked(parser, known.config, actions[k], v) for k, v in cfg.items()})
        for action in parser._actions:  # a config value satisfies a required flag
            if action.dest in cfg:
                action.required = False
    return parser.parse_args(argv)


def _checked(parser: argparse.ArgumentParser, path: str, action: argparse.Action, value):
    """A config value through its flag's type and choices, which argparse applies only to values
    typed on the command line (so ``epochs: 0`` in a file is refused like ``--epochs 0``)."""
    many = isinstance(value, list) and action.nargs not in (None, "?")
    checked = []
    for item in value if many else [value]:
        if item is not None and callable(action.type) and not isinstance(item, (list, dict)):
            try:
                item = action.type(str(item))
            except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
                parser.error(f"{path}: {action.dest}: {e}")
        if action.choices is not None and item not in action.choices:
            parser.error(f"{path}: {action.dest}: {item!r} is not one of {', '.join(map(str, action.choices))}")
        checked.append(item)
    return checked if many else checked[0]
