"""Bad input: one sentence naming the key, the value and what is allowed, before anything is built or read.

Checked in-process through the front door (`check_train` and the other entry points' checks), as the command line
checks it; one real subprocess per entry point keeps the contract of the command line itself: exit code 2, one
`error:` line, no traceback."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from cnnlab.checks.errors import CnnlabError
from cnnlab.checks.fields import OptionError
from cnnlab.compose import compose
from cnnlab.run.plans import check_train
from tests.conftest import ROOT, compose_config, compose_train, run_script

BAD = [
    # (overrides, fragments of the message)
    (["arch.layers.1.kernel_size=[0,3]"], ["layer 1 (C)", "'kernel_size'", "[0, 3]"]),
    (["arch.layers.0.type=Q"], ["layer 0", "unknown type 'Q'"]),
    (["+arch.layers.0.kernal_size=3"], ["unknown field 'kernal_size'", "kernel_size"]),
    (["arch=file", "arch.path=nowhere.json"], ["nowhere.json does not exist"]),
    (["arch=file"], ["arch=file needs arch.path=FILE"]),
    (["arch.layers.9.activation=relu"], ["layer 9 (T)", "'activation'", "'softmax'"]),
    (["arch.layers.1.drop_out=100"], ["layer 1 (C)", "'drop_out'", "100", "percentage"]),
    (["arch.layers.0.activation=relu6"], ["layer 0 (C)", "'relu6'", "'leaky_relu'"]),
    (["arch.layers.3.type=T"], ["layer 3 (T)", "unknown field 'num_output'"]),
    (["arch.layers=[]"], ["non-empty list of layers"]),
    (["+arch.layers.0._target_=os.system"], ["'_target_' is not allowed", "never code"]),
    (["arch.width=0"], ["arch.width = 0", "a number > 0"]),
    (["arch.depth=2"], ["arch.depth = 2", "no REPEAT block"]),
    (["data.batch_size=0"], ["data.batch_size = 0", "positive integer"]),
    (["data.batch_size=true"], ["data.batch_size = True", "positive integer"]),
    (["data.classes=[3,12]"], ["data.classes", "0..9"]),
    (["data.classes=[]"], ["data.classes = []"]),
    (["data.protocol=random"], ["data.protocol", "'official'"]),
    (["data.on_device=maybe"], ["data.on_device = 'maybe'", "auto"]),
    (["+data.augment.rotate=10"], ["data.augment.rotate is not an option", "crop_padding"]),
    (["data.eval_batch_size=-3"], ["data.eval_batch_size = -3"]),
    (["data.mean=[0.1,0.2]"], ["data.mean has 2 values", "one per channel (1)"]),
    (["data=folder"], ["data=folder needs data.root=PATH"]),
    (["data=folder", "data.root=/no/such/folder"], ["data.root=/no/such/folder does not exist"]),
    (["data=folder", "data.root=.", "data.image_size=100000"], ["data.image_size = 100000", "up to 4096"]),
    (["data=stream", "data.root=/no/such/shards"], ["data.root=/no/such/shards does not exist", "prepare.py"]),
    (["ckpt_path=missing.ckpt"], ["ckpt_path = 'missing.ckpt'", "missing.ckpt does not exist", "last.ckpt"]),
    (["ckpt_path=/tmp"], ["ckpt_path = '/tmp'", "/tmp is a folder"]),
    (["optim.lr=-1"], ["optim.lr = -1", "a number >= 0"]),
    (["+optim.momentum=0.9"], ["optim.momentum is not an argument of torch.optim.Adam", "lr, betas"]),
    (["+optim.learnig_rate=0.01"], ["optim.learnig_rate is not an argument", "Did you mean 'lr'?"]),
    (["optim=muon", "optim.momentum=2"], ["optim.momentum = 2", "0 <= x < 1"]),
    (["optim=muon", "optim.ns_steps=0"], ["optim.ns_steps = 0", "a positive integer"]),
    (["optim=muon", "optim.other.lr=-1"], ["optim.other.lr = -1"]),
    (["optim=sgd", "optim.momentum=0"], ["optim.nesterov = true needs optim.momentum > 0"]),
    (["optim=sgd", "+optim.weight_decay=0.1"], ["both model.reg and optim.weight_decay are set"]),
    (["optim=muon", "arch.layers=[{type:GAP},{type:T}]"], ["optim=muon", "this layer list has none"]),
    (["optim=muon", "scheduler=onecycle"], ["scheduler=onecycle", "optim=muon use scheduler=warmup_linear"]),
    (["scheduler=step", "scheduler.step_size=0"], ["scheduler.step_size = 0", "a positive integer"]),
    (["scheduler=cosine", "scheduler.T_max=abc"], ["scheduler.T_max = 'abc'"]),
    (["scheduler=cosine", "+scheduler.warm=3"], ["scheduler.warm is not an argument", "T_max"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs = 'abc'"]),
    (["trainer.max_epochs=0"], ["trainer.max_epochs = 0 trains nothing"]),
    (["trainer.limit_train_batches=0"], ["trainer.limit_train_batches = 0 trains nothing"]),
    (["trainer.precision=64-true"], ["trainer.precision = '64-true'", "32-true"]),
    (["trainer.val_check_interval=0"], ["trainer.val_check_interval = 0", "fraction of the epoch"]),
    (["trainer.accelerator=gpu"], ["trainer.accelerator = 'gpu'", "no CUDA GPU"]),
    (["+trainer.max_epoch=3"], ["trainer.max_epoch is not an argument of Lightning's Trainer", "max_epochs"]),
    (["+trainer.logger=true"], ["trainer.logger is set by cnnlab", "logger=<name>"]),
    (["model.compile=tpu_magic"], ["model.compile = 'tpu_magic'", "inductor", "aot_eager"]),
    (["model.compile=true", "model.compile_mode=fastest"], ["model.compile_mode = 'fastest'", "reduce-overhead"]),
    (
        ["model.compile_mode=reduce-overhead"],
        ["model.compile_mode = 'reduce-overhead' is inductor's", "model.compile=true"],
    ),
    (["model.reg=-1"], ["model.reg = -1", "a number >= 0"]),
    (["model.label_smoothing=2"], ["model.label_smoothing = 2", "0 <= x < 1"]),
    (["model.mixup.share=1.5"], ["model.mixup.share = 1.5"]),
    (["model.cutmix.alpha=-1"], ["model.cutmix.alpha = -1"]),
    (["model.mixup.share=0.75", "model.cutmix.share=0.75"], ["model.mixup.share + model.cutmix.share = 1.5"]),
    (["model.tta=[translate,crops]"], ["model.tta = ['translate', 'crops']", "one kind of shift at most"]),
    (["model.tta=[rotate]"], ["model.tta = ['rotate']"]),
    (["seed=abc"], ["seed = 'abc'; expected an integer"]),
    (["seed=-1"], ["seed = -1", "0 <= x <= 4294967295"]),
    (["seed=4294967296"], ["seed = 4294967296"]),
    (["checkpoint_every_n_steps=0"], ["checkpoint_every_n_steps = 0"]),
    (["master_timeout_s=abc"], ["master_timeout_s = 'abc'", "a number > 0"]),
    (["master_timeout_s=-5"], ["master_timeout_s = -5", "a number > 0"]),
    (
        ["logger=tensorboard", "logger.tensorboard.save_dir=/proc/cnnlab-not-here"],
        ["logger.tensorboard.save_dir=/proc/cnnlab-not-here cannot be written"],
    ),
    (
        ["logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9"],
        ["logger.mlflow.tracking_uri = http://127.0.0.1:9 cannot be reached", "start the MLflow server"],
    ),
    (
        ["+callbacks.lookahead._target_=cnnlab.averaging.lookahead", "+callbacks.lookahead.decay=1"],
        ["callbacks.lookahead.decay = 1"],
    ),
]


@pytest.mark.parametrize("overrides, fragments", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_sentence_before_anything_is_built(tmp_path, overrides, fragments):
    with pytest.raises(CnnlabError) as caught:
        check_train(compose_train(*overrides, f"paths.output_dir={tmp_path / 'run'}"))
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert "\n" not in message and not (tmp_path / "run" / "checkpoints").exists()


HYDRA = [  # Hydra's refusals at composition, said by the one compose, each naming what exists
    (["arch=nope"], "arch=nope: there is no conf/arch/nope.yaml; choose one of cifar_fast, "),
    (["optim=adamx"], "optim=adamx: there is no conf/optim/adamx.yaml; choose one of adam, gd, muon, rmsprop, sgd. Did "
                      "you mean 'adam'?"),
    (["data.batch_sized=3"], "data.batch_sized is not among the data options. Did you mean 'batch_size'?"),
    (["data=svhn"], "data=svhn: there is no conf/data/svhn.yaml"),
    (["trainer=tpu"], "trainer=tpu: there is no conf/trainer/tpu.yaml"),
    (["logger=tensorbord"], "logger=tensorbord: there is no conf/logger/tensorbord.yaml; choose one of csv, mlflow, "
                            "tensorboard, wandb. Did you mean 'tensorboard'?"),
    (["trainer.max_epoch=3"], "trainer.max_epoch is not an argument of pytorch_lightning.Trainer. Did you mean "
                              "'max_epochs'?"),
    (["data.classes=[1,2"], "data.classes=[1,2: Hydra cannot read this value (no viable alternative at input "
                            "'[1,2'); a list is [a,b] and a mapping {k: v}, their brackets closed."),
    (["trainer.default_root_dir=/tmp/a?b=c"], "trainer.default_root_dir=/tmp/a?b=c: Hydra cannot read this value "
     "(mismatched input '=' expecting <EOF>); a value holding '=', ',', spaces or brackets goes in Hydra's quotes, "
     "inside the shell's: \"trainer.default_root_dir='/tmp/a?b=c'\""),
    (["debug=true"], "debug=true: debug is a config group, not a switch; choose one of fast (conf/debug/), or "
                     "debug=null for none."),
]


@pytest.mark.parametrize("overrides, fragment", HYDRA, ids=[" ".join(h[0]) for h in HYDRA])
def test_unknown_names_are_refused_when_the_config_is_composed(overrides, fragment):
    with pytest.raises(OptionError) as caught:
        compose_train(*overrides)
    assert str(caught.value).startswith(fragment), str(caught.value)


def _groups():
    """Every options class of every command, from the catalog the schemas, --help and the README use (a group inside
    a group too): nothing is listed by hand, so a new options class is tested without a line here."""
    from cnnlab.schemas import ENTRY_POINTS, catalog

    classes, todo = {}, [g.options for e in ENTRY_POINTS for g in catalog(e)]
    while todo:
        cls = todo.pop()
        classes[cls] = None
        inner = (getattr(f.check, "group", None) for f in cls.fields().values())
        todo += [group for group in inner if group not in (None, *classes)]
    return [(c, n, f) for c in classes for n, f in c.fields().items() if getattr(f.check, "bad", ())]


@pytest.mark.parametrize("cls, name, field", _groups(), ids=[f"{c.__qualname__}.{n}" for c, n, _ in _groups()])
def test_every_declared_option_refuses_a_bad_value_by_name(cls, name, field):
    """A maintainer who declares an option gets this test for it: each of its checker's bad values, refused with the
    sentence that names the option and that value."""
    required = {n: f.default for n, f in cls.fields().items() if f.required or "${" in str(f.default)}  # resolved
    for bad in field.check.bad:
        values = {**_valid_required(cls, required), name: bad}
        with pytest.raises(OptionError) as caught:
            cls.read(values, "x.")
        message = str(caught.value)  # a nested group names itself by its own path (model.mixup, data.augment)
        assert f"{name} = {bad!r}; expected" in message and "\n" not in message, message


def _valid_required(cls, required: dict) -> dict:
    """Values that pass for the required options: a file that exists for a path, the first good value otherwise."""
    if cls.__name__ == "TemplateOptions":
        return {name: 1 if name == "epochs" else [1] for name in required}
    good = {"epochs": 1, "max_depth": 3, "max_fc": 1, "fc_max_size": 4, "lr": 0.1, "reg": 0.0, "batch_size": 8,
            "kind": "x", "name": "x", "study_name": "x", "base": None, "params": {"optim.lr": [0.1]}}
    return {name: good.get(name, str(ROOT / "README.md")) for name in required}


def test_options_are_frozen_and_typed():
    from cnnlab.model.options import ModelOptions

    options = ModelOptions.read({"reg": 0, "tta": ["flip"]})
    assert options.tta == ("flip",) and options.mixup.share == 0.0 and isinstance(options.reg, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.reg = 1.0


# --- the command line: one real run per entry point ----------------------------------------------------------
ENTRY_POINTS = [
    ("train.py", ["data.batch_size=0"], "data.batch_size = 0"),
    ("eval.py", ["ckpt_path=/no/such.ckpt"], "/no/such.ckpt does not exist"),
    ("predict.py", ["ckpt_path=README.md", "input=/no/such/photos"], "/no/such/photos does not exist"),
    ("export.py", ["ckpt_path=README.md", "format=tflite"], "format = 'tflite'"),
    ("prepare.py", ["out=/proc/cnnlab-shards", "seed=-1"], "seed = -1"),
    ("search.py", ["n_trials=0"], "n_trials = 0"),
]


@pytest.mark.parametrize("script, overrides, fragment", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_each_command_exits_2_with_one_error_line(tmp_path, script, overrides, fragment):
    run = run_script(script, tmp_path / "run", *overrides)
    assert run.returncode == 2, run.output[-2000:]
    assert run.stderr.strip().startswith("error:") and fragment in run.stderr and "Traceback" not in run.output
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_a_refusal_comes_before_lightning_is_imported_with_its_traceback_on_request(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONPROFILEIMPORTTIME": "1"}  # -X importtime: every import
    proc = subprocess.run(
        [sys.executable, "src/train.py", "data.batch_size=0", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "OptionError" in proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "torch" in imported and "pytorch_lightning" not in imported  # seconds that a mistake should not cost


def test_unwritable_output_folder_is_one_sentence():
    proc = subprocess.run(
        [sys.executable, "src/train.py", "hydra.run.dir=/proc/cnnlab-cannot-write-here"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write the output folder /proc/cnnlab-cannot-write-here" in proc.stderr


def test_a_broken_config_file_on_the_users_search_path_is_one_sentence_naming_it(tmp_path):
    """Hydra stumbles on a file that is not YAML, or a group's file that is a list, with a parser's or an int()'s
    message; the one compose names the file and what is wrong with it."""
    folder = tmp_path / "confs" / "search"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("blocks: [1, 2\nwidth: 3\n")
    (folder / "listy.yaml").write_text("- a\n- b\n")
    path = f"hydra.searchpath=[file://{tmp_path / 'confs'}]"
    with pytest.raises(OptionError, match="listy.yaml holds a YAML list, not a mapping of options"):
        compose_config("search", path, "search=listy", "search.epochs=1")
    proc = run_script("search.py", tmp_path / "study", path, "search=mine")
    assert proc.returncode == 2 and "Traceback" not in proc.output, proc.output[-2000:]
    assert proc.stderr.startswith(f"error: {folder / 'mine.yaml'} is not valid YAML at line 2, column 6")
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "study").exists()


def test_callbacks_that_are_not_a_mapping_name_every_entry_of_the_group():
    from cnnlab.targets import read_callbacks

    with pytest.raises(OptionError, match="expected callbacks=<name>") as caught:
        read_callbacks("early_stop")  # an experiment file's `callbacks: early_stop` under its _global_ package
    assert all(f"{p.stem}" in str(caught.value) for p in (ROOT / "conf" / "callbacks").glob("*.yaml"))
    with pytest.raises(OptionError, match=r"callbacks=5: callbacks is a config group"):
        compose_train("~callbacks", "+callbacks=5")


def test_group_null_means_no_entry_of_that_group():
    from cnnlab.cli import null_group

    assert null_group("logger=null") == "~logger" and null_group("scheduler=none") == "~scheduler"
    assert null_group("model.tta=null") == "model.tta=null" and null_group("seed=null") == "seed=null"
    assert "logger" not in compose_train(null_group("logger=null"))
    # a group whose entry is named none keeps it; its options are its own, so another pruner's is refused
    assert null_group("pruner=none") == "pruner=none"
    from cnnlab.search.plan import check_search

    assert check_search(compose_config("search", null_group("pruner=none"))).pruner.name == "none"
    assert check_search(compose_config("search", null_group("pruner=null"))).pruner.name == "none"  # no entry
    with pytest.raises(OptionError, match="pruner.reduction_factor is not among the pruner options"):
        compose_config("search", null_group("pruner=none"), "pruner.reduction_factor=2")
    with pytest.raises(OptionError, match="agent = None; expected one of evolution, qlearning, random, tpe"):
        check_search(compose_config("search", null_group("agent=null")))


def test_a_worker_processes_error_is_its_own_sentence():
    from cnnlab.cli import own_message

    wrapped = RuntimeError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1\ncnnlab.errors.DataError: shards/cnnlab.json names 1 '
        "class"
    )
    assert own_message(wrapped) == "shards/cnnlab.json names 1 class"
    assert own_message(KeyError("x")) is None


def test_sweep_launcher_settings_are_checked(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "src/train.py",
            "-m",
            "hydra/launcher=parallel",
            "hydra.launcher.n_jobs=0",
            "seed=1,2",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "hydra.launcher.n_jobs = 0" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_predict_export_and_prepare_check_their_own_options(tmp_path):
    from cnnlab.deploy import check_export, check_predict
    from cnnlab.prepare import check_prepare

    out = f"paths.output_dir={tmp_path}"
    with pytest.raises(OptionError, match="batch_size = 0"):
        check_predict(compose("predict", "ckpt_path=README.md", "input=README.md", "batch_size=0", out))
    (tmp_path / "taken.csv").write_text("mine")
    with pytest.raises(OptionError, match="taken.csv exists and would be replaced"):
        check_predict(compose("predict", "ckpt_path=README.md", "input=README.md", f"output={tmp_path}/taken.csv", out))
    with pytest.raises(OptionError, match="is a folder"):
        check_predict(compose("predict", "ckpt_path=README.md", "input=README.md", f"output={tmp_path}", out))
    with pytest.raises(OptionError, match="README.md is a file, not a folder"):
        check_export(compose("export", "ckpt_path=README.md", "output=README.md/model.onnx", out))
    with pytest.raises(OptionError, match="chunk_mb = 0"):
        check_prepare(compose("prepare", f"out={tmp_path / 'shards'}", "chunk_mb=0", out))
    with pytest.raises(OptionError, match="data=stream reads shards"):
        check_prepare(compose("prepare", f"out={tmp_path / 'shards'}", "data=stream", "data.root=.", out))


def test_a_run_folder_that_holds_an_earlier_run_is_never_written_into(tmp_path, fit):
    """hydra.run.dir pointing at an earlier run is refused, before Hydra writes its .hydra/ there, with the command
    that continues it; continuing it in place (its own checkpoint) is allowed."""
    earlier = fit("trainer.max_epochs=1")
    before = {p.name: p.stat().st_mtime_ns for p in earlier.dir.rglob("*") if p.is_file()}
    with pytest.raises(OptionError, match="holds an earlier run .*continue it with ckpt_path=.*last.ckpt"):
        check_train(compose_train(f"paths.output_dir={earlier.dir}"))
    run = run_script("train.py", earlier.dir, "trainer.max_epochs=1")
    assert run.returncode == 2 and "holds an earlier run" in run.stderr and "Traceback" not in run.output
    assert {p.name: p.stat().st_mtime_ns for p in earlier.dir.rglob("*") if p.is_file()} == before  # untouched
    last = earlier.dir / "checkpoints" / "last.ckpt"
    check_train(compose_train(f"paths.output_dir={earlier.dir}", f"ckpt_path={last}", "trainer.max_epochs=2"))


def test_a_search_space_can_scale_its_widths():
    import optuna

    from cnnlab.compose import plain
    from cnnlab.search.spaces.template import TemplateOptions, sample_layers

    space = plain(compose("search").search)
    space = TemplateOptions.read({**space, "width_multiplier": [2.0], "blocks": [1], "width": [16], "fc_layers": [0]})
    layers = sample_layers(
        optuna.trial.FixedTrial(
            {
                "activation": "relu",
                "blocks": 1,
                "width_0": 16,
                "kernel_0": 3,
                "stride_0": 1,
                "batch_norm_0": False,
                "pool_0": "none",
                "drop_out_0": 0.0,
                "fc_layers": 0,
                "width_multiplier": 2.0,
            }
        ),
        space,
    )
    assert layers[0]["num_output"] == 32 and layers[-1]["type"] == "T"


def test_the_readmes_option_reference_and_layer_table_are_the_declarations():
    """The README's generated blocks equal what the declarations give today: a new option or layer type without
    `python -m cnnlab.reference --write` fails here."""
    from cnnlab.reference import blocks, framed, in_readme

    readme = (ROOT / "README.md").read_text()
    for name, body in blocks().items():
        assert in_readme(readme, name) == framed(name, body), f"README.md's {name} is stale"


def _readme_trainer_arguments() -> list[str]:
    """Every trainer.<name> the README shows a user, and the two that escaped (issue 38)."""
    import re

    from cnnlab.run.trainer import lightning_arguments

    shown = set(re.findall(r"trainer\.([a-z_]+)", (ROOT / "README.md").read_text()))
    return sorted((shown & set(lightning_arguments())) | {"accumulate_grad_batches", "gradient_clip_val"})


TRAINER_BAD = {"accelerator": "tpu9", "strategy": "no_such_strategy", "devices": 0, "num_nodes": 0,
               "precision": "64-true", "max_epochs": -2, "max_steps": -5, "limit_train_batches": -1,
               "limit_val_batches": 1.5, "limit_test_batches": "all", "val_check_interval": 0, "log_every_n_steps": 0,
               "enable_progress_bar": "yes", "enable_checkpointing": "maybe", "deterministic": "maybe",
               "accumulate_grad_batches": 0, "gradient_clip_val": -1, "gradient_clip_algorithm": "median",
               "num_sanity_val_steps": -3}


@pytest.mark.parametrize("name", _readme_trainer_arguments())
def test_every_trainer_argument_the_readme_shows_refuses_a_bad_value_in_one_sentence(tmp_path, name):
    """cnnlab checks what Lightning does not refuse itself; where Lightning refuses, its refusal is one sentence when
    the Trainer is made, before any data is read. Either way this test has seen the refusal."""
    from cnnlab.run.build import build

    with pytest.raises(CnnlabError) as caught:
        build(check_train(compose_train(f"trainer.{name}={TRAINER_BAD[name]}", f"paths.output_dir={tmp_path}")))
    message = str(caught.value)
    assert name in message and "\n" not in message and "Traceback" not in message, message
    assert not (tmp_path / "checkpoints").exists()
