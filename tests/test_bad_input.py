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

from cnnlab.checks import compose
from cnnlab.checks.fields import OptionError
from cnnlab.checks.train import check_train
from cnnlab.errors import CnnlabError
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
    (["model.tta=[translate,crops]"], ["translate and crops"]),
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
        ["+callbacks.lookahead._target_=cnnlab.averaging.Lookahead", "+callbacks.lookahead.decay=1"],
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


HYDRA = [  # Hydra's own errors at composition (exit code 1 on the command line), each naming what exists
    (["arch=nope"], "Could not find 'arch/nope'"),
    (["optim=adamx"], "Could not find 'optim/adamx'"),
    (["data.batch_sized=3"], "data.batch_sized"),
    (["data=svhn"], "Could not find 'data/svhn'"),
    (["trainer=tpu"], "Could not find 'trainer/tpu'"),
    (["logger=tensorbord"], "Could not find 'logger/tensorbord'"),
    (["trainer.max_epoch=3"], "trainer.max_epoch"),
]


@pytest.mark.parametrize("overrides, fragment", HYDRA, ids=[" ".join(h[0]) for h in HYDRA])
def test_unknown_names_are_refused_when_the_config_is_composed(overrides, fragment):
    with pytest.raises(Exception, match=fragment.replace(".", r"\.")):
        compose_train(*overrides)


def _groups():
    """Every option group declared in cnnlab.checks, with its config path."""
    from cnnlab.checks import arch, callbacks, data, deploy, eval, model, prepare, search, train, trainer
    from cnnlab.data.family import families

    classes = [
        arch.ArchOptions,
        model.ModelOptions,
        model.Mixing,
        data.AugmentOptions,
        *(family.Options for family in families().values()),
        trainer.TrainerOptions,
        callbacks.AveragingOptions,
        train.RunOptions,
        eval.EvalOptions,
        deploy.PredictOptions,
        deploy.ExportOptions,
        prepare.PrepareOptions,
        search.SearchOptions,
        search.TemplateSpaceOptions,
        search.SequentialSpaceOptions,
        search.QLearningOptions,
        search.AgentOptions,
    ]
    return [
        (cls, name, field) for cls in classes for name, field in cls.fields().items() if getattr(field.check, "bad", ())
    ]


@pytest.mark.parametrize("cls, name, field", _groups(), ids=[f"{c.__name__}.{n}" for c, n, _ in _groups()])
def test_every_declared_option_refuses_a_bad_value_by_name(cls, name, field):
    """A maintainer who declares an option gets this test for it: one of its checker's bad values, refused with a
    sentence that names the option and the value."""
    bad = field.check.bad[0]
    required = {n: f.default for n, f in cls.fields().items() if f.required}
    values = {**_valid_required(cls, required), name: bad}
    with pytest.raises(OptionError) as caught:
        cls.read(values, "x.")
    message = str(caught.value)  # a nested group names itself by its own path (model.mixup, data.augment)
    assert f"{name} = {bad!r}" in message or f"x.{name}" in message, message


def _valid_required(cls, required: dict) -> dict:
    """Values that pass for the required options: a file that exists for a path, the first good value otherwise."""
    if cls.__name__ == "TemplateSpaceOptions":
        return {name: 1 if name == "epochs" else [1] for name in required}
    good = {"epochs": 1, "max_depth": 3, "max_fc": 1, "fc_max_size": 4, "lr": 0.1, "reg": 0.0, "batch_size": 8}
    return {name: good.get(name, str(ROOT / "README.md")) for name in required}


def test_options_are_frozen_and_typed():
    from cnnlab.checks.model import ModelOptions

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


def test_full_traceback_on_request(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(
        [sys.executable, "src/train.py", "data.batch_size=0", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "OptionError" in proc.stderr


def test_unwritable_output_folder_and_a_broken_config_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "src/train.py", "hydra.run.dir=/proc/cnnlab-cannot-write-here"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write the output folder /proc/cnnlab-cannot-write-here" in proc.stderr
    from cnnlab import cli

    broken = tmp_path / "conf" / "search" / "mine.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("blocks: [1, 2\nwidth: 3\n")
    with pytest.raises(SystemExit) as stop:
        cli.check_config_files(tmp_path / "conf")
    assert stop.value.code == 2


def test_a_broken_config_file_is_one_sentence_on_the_command_line(tmp_path, capsys):
    from cnnlab import cli

    broken = tmp_path / "conf" / "search" / "mine.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("blocks: [1, 2\nwidth: 3\n")
    with pytest.raises(SystemExit):
        cli.check_config_files(tmp_path / "conf")
    err = capsys.readouterr().err
    assert err.startswith("error: conf/search/mine.yaml is not valid YAML at line") and len(err.splitlines()) == 1


def test_group_null_means_no_entry_of_that_group():
    from cnnlab.cli import null_group

    assert null_group("logger=null") == "~logger" and null_group("scheduler=none") == "~scheduler"
    assert null_group("model.tta=null") == "model.tta=null" and null_group("seed=null") == "seed=null"
    assert "logger" not in compose_train(null_group("logger=null"))
    # a group whose entry is named none keeps it: removed, pruner.* beside it would rebuild the default (median)
    assert null_group("pruner=none") == "pruner=none"
    from cnnlab.checks.search import check_search

    plan = check_search(compose_config("search", null_group("pruner=none"), "pruner.reduction_factor=2"))
    assert plan.pruner.name == "none"
    no_entry = check_search(compose_config("search", null_group("pruner=null"), "pruner.reduction_factor=2"))
    assert no_entry.pruner.name == "none"  # no pruner entry: no pruning, not the median pruner


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
    from cnnlab.checks.deploy import check_export, check_predict
    from cnnlab.checks.prepare import check_prepare

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

    from cnnlab.checks.search import read_space
    from cnnlab.checks.train import plain
    from cnnlab.search.template import TemplateSpace

    space = plain(compose("search").search)
    space = TemplateSpace(read_space({**space, "width_multiplier": [2.0], "blocks": [1], "width": [16],
                                      "fc_layers": [0]}))
    layers, _ = space.sample(
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
                "lr": 1e-3,
                "reg": 1e-4,
                "batch_size": 32,
            }
        )
    )
    assert layers[0]["num_output"] == 32 and layers[-1]["type"] == "T"


def test_the_readmes_option_reference_and_layer_table_are_the_declarations():
    """The README's generated blocks equal what the declarations give today: a new option or layer type without
    `python -m cnnlab.checks.reference --write` fails here."""
    from cnnlab.checks.reference import blocks, framed, in_readme

    readme = (ROOT / "README.md").read_text()
    for name, body in blocks().items():
        assert in_readme(readme, name) == framed(name, body), f"README.md's {name} is stale"
