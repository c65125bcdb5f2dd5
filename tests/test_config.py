"""Each parameter is defined once, by a config dataclass field (sonotype.config, sonotype.params): how each
subcommand's command line reaches the library, one definition per option, TOML files in and out."""

from __future__ import annotations

import ast
import functools
import inspect
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import placeholder_model, tone_with_gaps

from sonotype import api, cli, config
from sonotype.config import DEFAULT_DB
from sonotype.detection.detector import DetectorConfig
from sonotype.discovery.discover import DiscoverConfig
from sonotype.errors import ConfigError
from sonotype.features.frontend import PRESETS
from sonotype.params import build, index, load_toml, make, options, param, to_toml
from sonotype.training.train import TrainConfig

SRC = Path(cli.__file__).parent


def record(monkeypatch, owner, name: str, result=None) -> list:
    """Replace ``owner.name`` by a function of the same signature that records its arguments."""
    calls = []
    real = getattr(owner, name)

    @functools.wraps(real)
    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        return result
    monkeypatch.setattr(owner, name, fake)
    return calls


def the_config(calls) -> object:
    [(_, kwargs)] = calls
    return kwargs["config"]


# ---------------------------------------------------------------------------- one test per subcommand

#: subcommand, its arguments, and the fields they must set (every other field keeps its default)
CASES = [
    ("train", ["a.wav", "b/", "--out", "e.pt", "--epochs", "3", "--preset", "narw", "--window-stride", "8",
               "--train-stride", "4", "--max-windows", "100", "--batch-norm", "--channel", "1", "--quiet"],
     dict(paths=("a.wav", "b/"), out="e.pt", epochs=3, preset="narw", window_stride=8, stride=4,
          max_windows_per_epoch=100, batch_norm=True, channel=1, progress=False)),
    ("distill", ["a.wav", "--out", "s.pt", "--student-stride", "8", "--hop", "0.5", "--speedup", "4",
                 "--init", "e.pt", "--device", "cpu"],
     dict(paths=("a.wav",), out="s.pt", stride=8, hop=0.5, speedup=4.0, init="e.pt", device="cpu")),
    ("train-detector", ["a/", "--encoder", "e.pt", "--out", "d.pt", "--train-stride", "4", "--hidden", "64",
                        "--min-overlap", "0.3", "--no-balance", "--finetune", "--negative-pattern", "bg*",
                        "--threshold-level", "window", "--report-dir", ""],
     dict(paths=("a/",), encoder="e.pt", out="d.pt", stride=4, hidden=64, min_overlap=0.3, balance=False,
          finetune=True, negative_patterns=("bg*",), threshold_level="window", report_dir="")),
    ("evaluate", ["a/", "--model", "d.pt", "--annotations", "ev.csv", "--json", "r.json", "--allow-unmatched"],
     dict(paths=("a/",), model="d.pt", annotations="ev.csv", json_out="r.json", allow_unmatched=True)),
    ("detect", ["x/", "--model", "d.pt", "--db", "sqlite:///f.db", "--threshold", "0.7", "--merge-gap", "0.2",
                "--min-duration", "0.05", "--meta", "site=A", "--meta", "date = 2020", "--metadata", "m.csv",
                "--batch", "32", "--channel", "2"],
     dict(paths=("x/",), model="d.pt", db="sqlite:///f.db", threshold=0.7, merge_gap=0.2, min_duration=0.05,
          metadata={"site": "A", "date": "2020"}, metadata_table="m.csv", batch=32, channel=2)),
    ("export", ["--format", "raven", "--out", "tables", "--run", "2", "--gap", "0.5"],
     dict(fmt="raven", out="tables", run=2, gap_s=0.5)),
    ("runs", ["--db", "sqlite:///f.db", "--json", "runs.json"], dict(db="sqlite:///f.db", json_out="runs.json")),
    ("evaluate-events", ["--annotations", "ev.csv", "--tolerance", "2", "--run", "3"],
     dict(annotations="ev.csv", tolerance_s=2.0, run=3)),
    ("cluster", ["--algorithm", "hdbscan", "--algorithm", "kmeans", "--map", "tsne", "--sequence-stride", "0",
                 "--k", "5", "--percentile", "40", "--model", "e.pt", "--backend", "birdnet"],
     dict(algorithms=("hdbscan", "kmeans"), maps=("tsne",), stride=None, k=5, percentile=40.0, model="e.pt",
          backend="birdnet")),
    ("cluster-eval", ["clips/", "--model", "e.pt", "--backend", "birdnet", "--select-on", "v1/", "v2/",
                      "--sequence-stride", "8", "--pooling", "mean", "--bootstrap", "100", "--channel", "1"],
     dict(paths=("clips/",), model="e.pt", backends=("birdnet",), select_on=("v1/", "v2/"), stride=8,
          pooling="mean", bootstrap=100, channel=1)),
    ("search", ["7", "--k", "3"], dict(region=7, k=3)),
    ("report", ["--model", "e.pt", "--catalog", "c1/", "c2/", "--evaluation", "ev.json", "--db", "sqlite:///f.db"],
     dict(model="e.pt", catalog=("c1/", "c2/"), evaluation_json="ev.json", db="sqlite:///f.db")),
    ("export-labels", ["--out", "labels.csv", "--run", "4", "--only-reviewed"],
     dict(out="labels.csv", run=4, only_reviewed=True)),
    ("info", ["a.wav", "b.flac"], dict(paths=("a.wav", "b.flac"))),
]


@pytest.mark.parametrize("command,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_each_subcommand_gives_the_library_its_config(command, argv, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a run writes its config beside its outputs: keep them here
    calls = record(monkeypatch, api, command.replace("-", "_"), result=SimpleNamespace(failed=[], run_id=1))
    monkeypatch.setattr(cli, "config_path", lambda *a: None)
    assert cli.main([command, *argv]) == 0
    got = the_config(calls)
    cls = cli.config_class(command)
    assert type(got) is cls
    assert got == make(cls, **expected)  # the named fields as given, every other field its default
    for name, value in expected.items():  # and each really differs from its default, or the test shows nothing
        o = next(o for o in options(cls) if o.name == name)
        assert o.required or value != o.default, name


def test_demo_gets_its_options(monkeypatch):
    import sonotype.demo as demo
    calls = record(monkeypatch, demo, "run_demo", result={})
    assert cli.main(["demo", "--out", "d", "--seed", "3", "--quick", "--quiet"]) == 0
    assert calls == [(("d",), {"seed": 3, "quick": True, "progress": False})]


def test_serve_gets_its_options_and_its_limits(monkeypatch):
    import sonotype.web as web
    calls = record(monkeypatch, web, "serve")
    assert cli.main(["serve", "--port", "8123", "--allowed-host", "a.example", "--allowed-host", "b.example",
                     "--max-renders", "2"]) == 0
    assert cli.main(["serve"]) == 0
    (args, kw), (args0, kw0) = calls
    assert args == (DEFAULT_DB,) and kw["port"] == 8123 and kw["allowed_hosts"] == ("a.example", "b.example")
    assert kw["limits"] == web.Limits(renders=2) and kw0["limits"] is None  # None: the server's own limits
    assert kw0["port"] == config.ServeRun.port and kw0["host"] == config.ServeRun.host


def test_train_maps_front_end_training_and_encoder_options(monkeypatch, tmp_path):
    wav = tone_with_gaps(tmp_path / "a.wav", seconds=2)
    calls = record(monkeypatch, api, "train_encoder", result={})
    out = tmp_path / "e.pt"
    assert cli.main(["train", str(wav), "--out", str(out), "--preset", "narw", "--window-stride", "8",
                     "--fmax", "300", "--epochs", "3", "--train-stride", "4", "--batch-norm", "--report-dir", "",
                     "--quiet"]) == 0
    [(_, kw)] = calls
    assert kw["frontend"] == replace(PRESETS["narw"], stride=8, fmax=300.0)
    assert kw["config"] == TrainConfig(epochs=3, stride=4)
    assert kw["encoder_config"].batch_norm and kw["progress"] is False and kw["out"] == str(out)


def test_train_detector_maps_detector_options_and_the_old_stride_spelling(monkeypatch, tmp_path, capsys):
    wav = tone_with_gaps(tmp_path / "a.wav", seconds=2)
    calls = record(monkeypatch, api, "_train_detector", result={})
    base = ["train-detector", str(wav), "--encoder", "e.pt", "--out", str(tmp_path / "d.pt"), "--report-dir", "",
            "--epochs", "2", "--hidden", "8", "--min-overlap", "0.3", "--no-balance"]
    assert cli.main([*base, "--train-stride", "4"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert cli.main([*base, "--stride", "4"]) == 0
    assert "--stride is deprecated; use --train-stride" in capsys.readouterr().err
    (a1, k1), (a2, k2) = calls
    want = DetectorConfig(epochs=2, hidden=8, min_overlap=0.3, balance=False, stride=4)
    assert k1["config"] == k2["config"] == want and a1[0] == a2[0] == "e.pt"
    assert [it.path for it in a1[1]] == [str(wav)]


def test_evaluate_min_overlap_defaults_to_the_models(monkeypatch, tmp_path):
    model = placeholder_model(tmp_path / "d.pt")
    wav = tone_with_gaps(tmp_path / "a.wav", seconds=2)
    calls = record(monkeypatch, api, "evaluate_detector", result={})
    monkeypatch.setattr(api, "format_report", lambda r: "")
    assert cli.main(["evaluate", str(wav), "--model", str(model), "--quiet"]) == 0
    assert cli.main(["evaluate", str(wav), "--model", str(model), "--min-overlap", "0.25", "--threshold", "0.6"]) == 0
    (_, k1), (_, k2) = calls
    assert k1["min_overlap"] is None and k1["threshold"] is None  # evaluate_detector then uses the model's
    assert k2["min_overlap"] == 0.25 and k2["threshold"] == 0.6


def test_detect_passes_what_the_batch_runner_takes(monkeypatch, tmp_path):
    import sonotype.runner.batch as batch

    class Summary:
        failed, run_id = [], 1
    calls = record(monkeypatch, batch, "detect_many", result=Summary())
    db = f"sqlite:///{tmp_path / 'f.db'}"
    assert cli.main(["detect", "x/", "--model", "d.pt", "--db", db, "--merge-gap", "0.3", "--meta", "site=A"]) == 0
    (args, kw), = calls
    takes = inspect.signature(batch.detect_many).parameters
    assert args == (("x/",),) and kw["model"] == "d.pt" and kw["db"] == db and kw["merge_gap"] == 0.3
    assert kw["metadata"] == {"site": "A"} and kw["progress"] is True
    assert "batch" not in kw or takes["batch"].default is None  # not given: the runner's own default
    assert (tmp_path / "f.run1.detect.config.toml").is_file()
    assert kw["executor"] is None  # one process: files detected in this one
    assert cli.main(["detect", "x/", "--model", "d.pt", "--db", db, "--workers", "2", "--device", "cpu"]) == 0
    kw = calls[-1][1]
    assert kw["executor"].__qualname__.startswith("process_pool") and kw["device"] == "cpu"


def test_export_labels_takes_run_and_the_old_run_id(monkeypatch, tmp_path, capsys):
    import sonotype.discovery.curation as curation
    calls = record(monkeypatch, curation, "export_labels")
    out = str(tmp_path / "l.csv")
    assert cli.main(["export-labels", "--out", out, "--run", "3"]) == 0
    assert cli.main(["export-labels", "--out", out, "--run-id", "3"]) == 0
    assert "--run-id is deprecated; use --run" in capsys.readouterr().err
    (args, kw), = {(a, tuple((k, v) for k, v in kw.items() if k != "log")) for a, kw in calls[:2]}
    assert args == () and dict(kw) == {"db": DEFAULT_DB, "out": out, "run_id": 3, "only_reviewed": False}
    assert calls[0][1]["log"] is calls[1][1]["log"]  # (print; a local Ray may have replaced the builtin)


def test_cluster_sequence_stride_old_spelling_and_zero(monkeypatch, capsys):
    calls = record(monkeypatch, api, "cluster")
    monkeypatch.setattr(cli, "config_path", lambda *a: None)
    for argv in (["--sequence-stride", "8"], ["--stride", "8"], ["--sequence-stride", "0"], []):
        assert cli.main(["cluster", *argv]) == 0
    assert [the_config([c]).discover.stride for c in calls] == [8, 8, None, DiscoverConfig.stride]
    assert capsys.readouterr().err.count("deprecated") == 1


# ---------------------------------------------------------------------------- one definition per option


def test_each_option_is_one_field_and_each_field_name_is_unique():
    for name in cli.COMMANDS:
        cls = cli.config_class(name)
        opts = options(cls, cli=True)
        flags = [o.flag for o in opts] + [a for o in opts for a in o.spec.aliases]
        assert len(flags) == len(set(flags)), name
        names = [o.name for o in options(cls)] + sorted({o.path[0] for o in options(cls) if len(o.path) > 1})
        assert len(names) == len(set(names)) == len(index(cls)), (name, sorted({n for n in names
                                                                                if names.count(n) > 1}))
        parser = cli.build_parser(only=name)
        sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
        p = sub.choices[name]
        dests = [a.dest for a in p._actions if a.dest not in ("help", "_config") and a.help != "==SUPPRESS=="]
        assert sorted(dests) == sorted(o.dest for o in opts), name  # every argument is a field, and back


def test_cli_and_api_write_no_option_names_or_defaults():
    """cli.py adds no argument of its own but --version and --config, and neither cli.py nor api.py
    writes a default of any option (a function default or a keyword value equal to one)."""
    defaults = set()
    for name in cli.COMMANDS:
        for o in options(cli.config_class(name)):
            d = o.default
            if isinstance(d, (int, float, str)) and not isinstance(d, bool) and d not in (0, 1, "", "auto"):
                defaults.add(d)
    assert {"sqlite:///sonotype.db", 64, 45.0, 0.1, 1.5, 10, 24, 3000} <= defaults  # the test sees them
    for module in ("cli.py", "api.py"):
        tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
        literal_flags, written = [], []
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                literal_flags.append(node.args[0].value)
            if isinstance(node, ast.arguments):
                written += [d.value for d in node.defaults + node.kw_defaults if isinstance(d, ast.Constant)]
            if isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant):
                written.append(node.value.value)
        assert sorted(literal_flags) == (["--config", "--version"] if module == "cli.py" else [])
        clash = [v for v in written if not isinstance(v, bool) and v in defaults]
        assert clash == [], (module, clash)


@dataclass(frozen=True)
class Stage:
    """A stage config whose fields carry no metadata, like a field just added to DetectorConfig."""

    gain_db: float = 6.0
    taps: int = 3
    mode: str = "fast"
    on: bool = False
    seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True, kw_only=True)
class Run:
    stage: Stage = param(default_factory=Stage, help="stage")


def test_a_field_added_to_a_stage_config_becomes_an_option():
    p = cli._Parser(prog="sonotype x", argument_default=__import__("argparse").SUPPRESS)
    cli.add_options(p, Run)
    ns = vars(p.parse_args(["--gain-db", "-3", "--taps", "5", "--on", "--seeds", "1", "2"]))
    assert build(Run, {tuple(k.split(".")): v for k, v in ns.items()}) == \
        Run(stage=Stage(-3.0, 5, "fast", True, (1, 2)))
    for bad in (["--taps", "1.5"], ["--seeds", "x"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


# ---------------------------------------------------------------------------- TOML files


def _filled(cls):
    """The defaults of ``cls`` with its required fields given."""
    fill = {tuple: ("a.wav",), str: "x.pt", int: 1}
    return make(cls, **{o.name: o.spec.choices[0] if o.spec.choices else fill[o.kind]
                        for o in options(cls) if o.required})


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_toml_round_trip_of_each_command(name, tmp_path):
    cls = cli.config_class(name)
    for c in (_filled(cls), ):
        path = tmp_path / "c.toml"
        path.write_text(to_toml(c, header="test"), encoding="utf-8")
        assert build(cls, load_toml(cls, path)) == c


def test_toml_round_trip_of_changed_values(tmp_path):
    cases = [
        make(config.TrainRun, paths=("a b.wav", 'q"uote\\.wav'), out="e.pt", epochs=3, window_stride=8, fmax=300.0,
             stride=4, batch_norm=True, progress=False, report_dir=""),
        make(config.DetectRun, paths=("x/",), model="d.pt", metadata={"site": "A B", "date": "2020"}, threshold=0.25,
             channel=1, batch=16),
        make(config.ClusterRun, algorithms=("hdbscan",), maps=(), stride=None, band=0.3, percentile=40.0),
        make(config.TrainDetectorRun, paths=("a/",), encoder="e.pt", out="d.pt", balance=False, lr=5e-4,
             target_precision=0.9, negative_dirs=("bg",)),
    ]
    for c in cases:
        path = tmp_path / "c.toml"
        path.write_text(to_toml(c), encoding="utf-8")
        back = build(type(c), load_toml(type(c), path))
        assert back == c and back != _filled(type(c))


def test_run_writes_its_config_and_config_file_reruns_it_with_flags_on_top(monkeypatch, tmp_path):
    calls = record(monkeypatch, api, "train")
    out = tmp_path / "e.pt"
    assert cli.main(["train", "a.wav", "--out", str(out), "--epochs", "3", "--preset", "orca", "--quiet"]) == 0
    saved = tmp_path / "e.config.toml"
    assert saved.is_file() and "sonotype train --config" in saved.read_text()
    assert cli.main(["train", "--config", str(saved)]) == 0
    assert cli.main(["train", "--config", str(saved), "--epochs", "7"]) == 0
    first, again, changed = (the_config([c]) for c in calls)
    assert again == first and first.training.epochs == 3 and first.frontend.preset == "orca"
    assert changed == replace(first, training=replace(first.training, epochs=7))


def test_unknown_key_is_an_error_naming_it_and_the_valid_ones(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('paths = ["a.wav"]\nout = "e.pt"\n[training]\nepoch = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_toml(config.TrainRun, path)
    assert "'training.epoch'" in str(e.value) and "epochs" in str(e.value) and "batch_size" in str(e.value)
    path.write_text('out = "e.pt"\nouts = 3\n', encoding="utf-8")
    with pytest.raises(SystemExit) as ex:
        cli.main(["train", "a.wav", "--config", str(path)])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and "'outs'" in err and "report_dir" in err and len(err.strip().splitlines()) == 1
    path.write_text('out = "e.pt"\n[training]\nepochs = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"training\.epochs: got 0, expected an integer >= 1"):
        load_toml(config.TrainRun, path)
    with pytest.raises(ConfigError, match="epoch"):
        make(config.TrainRun, epoch=3)
    with pytest.raises(ConfigError, match=r"training\.epochs: got 0"):
        api.train(["a.wav"], out="e.pt", epochs=0)
