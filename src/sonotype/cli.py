"""Command line: a table of subcommands over the library (sonotype.api), each generated from its
config dataclass (sonotype.config): options, defaults, help, allowed values and checks are the fields'."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, SonotypeError

DESCRIPTION = """\
sonotype finds animal vocalisations in hours of underwater and field recordings, groups them into
sound types and lets you look at and listen to them (first of all dolphins; any species, any rate)."""

EPILOG = """\
typical order:
  sonotype demo                                   the whole pipeline on built-in synthetic data (start here)
  sonotype train RECORDINGS --out enc.pt          self-supervised encoder (or: sonotype distill, from BirdNET)
  sonotype train-detector LABELLED --encoder enc.pt --out det.pt
  sonotype detect FIELD --model det.pt --db sqlite:///field.db     regions in long recordings, resumable
  sonotype cluster --db sqlite:///field.db        sound types (DTW + average linkage), maps
  sonotype serve --db sqlite:///field.db          browse, listen, curate at http://127.0.0.1:8000/
  sonotype export / evaluate-events / cluster-eval / report        tables, scores, model reports

`sonotype COMMAND --help` for each command; the README has the details and the real-data figures."""


class _Parser(argparse.ArgumentParser):
    """argparse with sonotype's error style: one line on stderr (the bad value, what was expected), exit 2."""

    def error(self, message: str):
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(2, f"sonotype: error: {where}{' '.join(message.split())} (see `{self.prog} --help`)\n")


#: subcommand -> (its config class in sonotype.config, one line of help), in the order of the pipeline
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("TrainRun", "self-supervised encoder training (next-frame prediction)"),
    "distill": ("DistillRun", "teach the LSTM-V3 encoder a pretrained backend's embeddings on unlabelled audio"),
    "train-detector": ("TrainDetectorRun", "vocalisation-vs-noise detector on a frozen encoder"),
    "fuse-detectors": ("FuseDetectorsRun", "one detector from several: their window scores combined (weighted "
                                           "geometric mean), threshold chosen on out-of-sample scores"),
    "evaluate": ("EvaluateRun", "window-level confusion matrix, precision, recall, F1, PR curve"),
    "detect": ("DetectRun", "find non-silent regions in long recordings into a database (resumable)"),
    "export": ("ExportRun", "regions as Raven/Audacity tables, CSV/Parquet, or joined non-silent WAVs"),
    "runs": ("RunsRun", "list a database's detection runs (model, threshold, recordings, regions)"),
    "evaluate-events": ("EvaluateEventsRun", "event precision/recall/F1, false alarms per hour vs annotations"),
    "cluster": ("ClusterRun", "sound types: cluster and map a detection run's regions (DTW), into the database"),
    "cluster-eval": ("ClusterEvalRun", "agreement of DTW clusters with expert labels, vs two baselines"),
    "search": ("SearchRun", "regions most similar to a region (vector index + DTW re-rank)"),
    "report": ("ReportRun", "a model version's folder: weights, config, figures, README.md + report.html"),
    "demo": ("DemoRun", "synthetic corpus -> encoder -> detector -> evaluation, end to end"),
    "serve": ("ServeRun", "web browser over a database: recordings, regions, sound types, curation"),
    "export-labels": ("ExportLabelsRun", "curated region labels as an annotation CSV for train-detector"),
    "info": ("InfoRun", "what sonotype reads from audio files (rate, channels, length, channel used)"),
}


def config_class(command: str) -> type:
    """The config dataclass of a subcommand (imported on demand: only the command run pays for it)."""
    from . import config
    return getattr(config, COMMANDS[command][0])


# ---------------------------------------------------------------------------- options from fields


def _help(o) -> str:
    text, d = o.spec.help, o.default
    if not (o.required or o.spec.positional or o.spec.negate or "default" in text or d is None or d is False
            or d in ((), {}, "")):
        shown = "on" if d is True else ", ".join(map(str, d)) if isinstance(d, tuple) else d
        text += f" (default: {shown})"
    return text.replace("%", "%%")


def _type(o):
    """An argparse type: one command-line word as the field holds it, else the field's one-line message."""
    from .params import key_value
    check = key_value if o.kind is dict else o.check

    def parse(v: str):
        try:
            return check(v)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = getattr(check, "want", "value")
    return parse if check is not None else None


def _deprecated(new: str):
    class Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"sonotype: warning: {option_string} is deprecated; use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)
    return Deprecated


def add_options(p: argparse.ArgumentParser, cls: type) -> None:
    """One argument per field of config ``cls`` (nested configs as argument groups), named by the field;
    every default is left out of the namespace, so what is there was given on the command line."""
    from .params import options
    groups: dict[str, Any] = {}
    for o in options(cls, cli=True):
        g = p if o.group is None else groups.get(o.group) or groups.setdefault(o.group, p.add_argument_group(o.group))
        kw: dict[str, Any] = {"help": _help(o)}
        if o.kind is bool and o.spec.check is None:
            kw["action"] = "store_false" if o.spec.negate else \
                argparse.BooleanOptionalAction if o.default else "store_true"
        else:
            metavar = o.spec.metavar or (None if o.spec.choices else o.flag.lstrip("-").replace("-", "_").upper())
            kw.update({k: v for k, v in (("type", _type(o)), ("choices", o.spec.choices), ("metavar", metavar))
                       if v is not None})
            if o.spec.positional:
                kw["nargs"] = "*" if o.kind in (tuple, list) else "?"
            elif o.kind is dict or o.spec.repeat:
                kw["action"] = "append"
            elif o.spec.nargs or o.kind in (tuple, list):
                kw["nargs"] = o.spec.nargs or "+"
        if o.spec.positional:
            g.add_argument(o.dest, **kw)
            continue
        g.add_argument(o.flag, dest=o.dest, **kw)
        for alias in o.spec.aliases:
            assert "action" not in kw, f"{alias}: aliases are for options with one value"
            g.add_argument(alias, dest=o.dest, action=_deprecated(o.flag), help=argparse.SUPPRESS,
                           **{k: v for k, v in kw.items() if k in ("type", "choices", "metavar")})


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``sonotype`` parser; ``only``: fill in that subcommand's options alone (the others stay empty)."""
    top = _Parser(prog="sonotype", description=DESCRIPTION, epilog=EPILOG,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"sonotype {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    for name, (_, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help, argument_default=argparse.SUPPRESS)
        p.set_defaults(_parser=p)
        if only is None or only == name:
            add_options(p, config_class(name))
            p.add_argument("--config", dest="_config", metavar="FILE.toml",
                           help="read the options from this TOML file (e.g. the <out>.config.toml a run wrote "
                                "beside its outputs); options given here override it")
    return top


def parse(argv: list[str]) -> tuple[str, Any]:
    """(subcommand, its config) from the command line and the ``--config`` file it names, or exit 2
    with one line on stderr."""
    from .params import build, load_toml, options
    name = next((a for a in argv if not a.startswith("-")), None)
    ns = vars(build_parser(only=name if name in COMMANDS else "").parse_args(argv))
    name, p, file = ns.pop("command"), ns.pop("_parser"), ns.pop("_config", None)
    cls = config_class(name)
    given = {tuple(k.split(".")): v for k, v in ns.items()}
    try:
        values = {**(load_toml(cls, file) if file else {}), **given}
        missing = [o.spec.metavar if o.spec.positional else o.flag for o in options(cls, cli=True)
                   if o.required and o.path not in values]
        if missing:
            p.error(f"the following arguments are required: {', '.join(missing)}")
        return name, build(cls, values)
    except ConfigError as e:
        p.error(str(e))


# ---------------------------------------------------------------------------- running a command


def run(name: str, c: Any) -> Any:
    """Subcommand ``name`` with config ``c``: the library call."""
    if name == "demo":
        from .demo import run_demo
        return run_demo(c.out, seed=c.seed, quick=c.quick, progress=c.progress)
    if name == "serve":
        from .web import Limits, serve
        return serve(c.db, host=c.host, port=c.port, edit_token=c.edit_token, audio_root=c.audio_root,
                     allowed_hosts=c.allowed_hosts or None, any_host=c.any_host,
                     limits=Limits(renders=c.max_renders) if c.max_renders else None)
    from . import api
    return getattr(api, name.replace("-", "_"))(config=c)


def _sqlite_file(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def config_path(name: str, c: Any, result: Any) -> Path | None:
    """Where a run of ``name`` keeps its configuration: beside its outputs (None: it has none to keep)."""
    if name in ("train", "distill", "train-detector", "export-labels"):
        return Path(c.out).with_suffix(".config.toml")
    if name in ("detect", "cluster") and _sqlite_file(c.db):
        db = _sqlite_file(c.db)
        return db.with_name(f"{db.stem}.run{result.run_id}.{name}.config.toml")
    if name == "export":
        out = Path(c.out)
        return out.with_suffix(".config.toml") if c.fmt in ("csv", "parquet") and out.suffix else \
            out.with_name(out.name + ".config.toml")
    if name == "report":
        return Path(result).parent / "report.config.toml"
    if getattr(c, "json_out", None):
        return Path(c.json_out).with_suffix(".config.toml")
    return None


def save_config(name: str, c: Any, path: Path) -> Path:
    from .params import to_toml
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path.write_text(to_toml(c, header=f"sonotype {name} --config {path.name}\n"
                                      f"written by sonotype {__version__} at {stamp}; relative paths are from "
                                      f"{os.getcwd()}"), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    name, c = parse(sys.argv[1:] if argv is None else list(argv))
    try:
        result = run(name, c)
        where = config_path(name, c, result)
        if where is not None:
            try:
                save_config(name, c, where)
            except OSError as e:
                print(f"sonotype: warning: could not write the run's configuration to {where}: {e}", file=sys.stderr)
        return 1 if name == "detect" and result.failed else 0
    except SonotypeError as e:
        print(f"sonotype: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sonotype: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
