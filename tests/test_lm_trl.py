"""GRPO's trainer called as TRL's: a TRL script runs with only its import changed, the model may
be a path, TRL's config names map onto rlgrad's fields (and the ones rlgrad does not implement
are refused by name), TrainerCallbacks and optimizers=(optimizer, scheduler) are honoured, and
the older positional call still works with a DeprecationWarning."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from test_lm_grpo import QUICK  # noqa: E402

from rlgrad.errors import BadInputError  # noqa: E402
from rlgrad.lm import GRPOConfig, GRPOTrainer, demo  # noqa: E402
from rlgrad.lm.config import resolve  # noqa: E402

# A GRPO script written for TRL, with TRL's names only; the test swaps its import for rlgrad's
TRL_SCRIPT = """
from trl import GRPOConfig, GRPOTrainer

dataset = [
    {"prompt": f"{a}+{b}=", "answer": str((a + b) % 10)} for a in range(10) for b in range(10)
]


def correct(completions, answer, **kwargs):
    return [1.0 if c == a else 0.0 for c, a in zip(completions, answer)]


def short(completions, **kwargs):
    return [1.0 if len(c) == 1 else 0.0 for c in completions]


training_args = GRPOConfig(
    output_dir=OUTPUT_DIR,
    learning_rate=1e-3,
    per_device_train_batch_size=8,
    gradient_accumulation_steps=2,
    num_generations=4,
    max_prompt_length=8,
    max_completion_length=3,
    beta=0.04,
    epsilon=0.2,
    epsilon_high=0.28,
    loss_type="dapo",
    temperature=1.0,
    top_p=1.0,
    num_iterations=1,
    logging_steps=1,
    save_steps=2,
    max_steps=2,
    num_train_epochs=1,
    seed=42,
    bf16=False,
    gradient_checkpointing=False,
    report_to="none",
    log_completions=True,
    scale_rewards="group",
    reward_weights=[1.0, 0.5],
    mask_truncated_completions=False,
    adam_beta2=0.99,
    use_vllm=False,
    remove_unused_columns=False,
)
trainer = GRPOTrainer(
    model=MODEL_PATH,
    reward_funcs=[correct, short],
    args=training_args,
    train_dataset=dataset,
)
trainer.train()
trainer.save_model(OUTPUT_DIR + "/final")
"""


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny GPT-2 and its tokenizer, written with save_pretrained (nothing is downloaded)."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = demo.build_tokenizer()
    demo.build_model(tokenizer, 0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_trl_script_runs_with_only_its_import_changed(model_path, tmp_path):
    source = TRL_SCRIPT.replace("from trl import", "from rlgrad.lm import")
    names = {"MODEL_PATH": str(model_path), "OUTPUT_DIR": str(tmp_path / "run")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(source, "trl_script.py", "exec"), names)
    # TRL's call is not the older one
    assert not [w for w in caught if "GRPOTrainer" in str(w.message)], caught
    trainer = names["trainer"]
    # per_device_train_batch_size 8 · 1 process · gradient_accumulation_steps 2 / G 4 = 4
    # prompts a step; max_steps 2 wins over num_train_epochs, as in TRL
    assert trainer.config.prompts_per_step == 4 and trainer.config.max_steps == 2
    assert [row["step"] for row in trainer.history] == [1, 2]
    assert trainer.optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    assert trainer.reward_weights.tolist() == [1.0, 0.5]
    # the weighted reward of every logged completion: correct + 0.5 · short
    lines = (tmp_path / "run" / "completions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2 * 4 * 4  # 2 steps, 4 prompts, G = 4
    for record in records:
        expected = record["rewards"]["correct"] + 0.5 * record["rewards"]["short"]
        assert record["reward"] == pytest.approx(expected, abs=1e-6)
    assert (tmp_path / "run" / "checkpoint-2" / "trainer_state.pt").is_file()
    # save_model writes what from_pretrained loads: the trained weights
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    for name, parameter in trainer.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], parameter, rtol=0, atol=0)
    start = transformers.AutoModelForCausalLM.from_pretrained(model_path).state_dict()
    assert not torch.equal(start["lm_head.weight"], loaded.state_dict()["lm_head.weight"])


def trainer(model=None, config: dict | None = None, **arguments) -> GRPOTrainer:
    """A GRPOTrainer on the demo task, called as TRL's: ``config`` changes QUICK, ``arguments``
    are the trainer's other keywords; the demo's model and tokenizer unless a model is given."""
    if model is None:
        tokenizer = demo.build_tokenizer()
        model = demo.build_model(tokenizer, 0)
        arguments.setdefault("processing_class", tokenizer)
    arguments.setdefault("reward_funcs", [demo.correct, demo.format_reward])
    return GRPOTrainer(
        model=model,
        args=GRPOConfig(**{**QUICK, **(config or {})}),
        train_dataset=demo.dataset(),
        **arguments,
    )


def path_trainer(model, **arguments) -> GRPOTrainer:
    return trainer(model, reward_funcs=[demo.correct], **arguments)


@pytest.mark.parametrize("with_tokenizer", [True, False])
def test_a_model_given_as_a_path_loads_with_or_without_its_tokenizer(model_path, with_tokenizer):
    tokenizer = demo.build_tokenizer()
    arguments = {"processing_class": tokenizer} if with_tokenizer else {}
    grpo = path_trainer(str(model_path), **arguments)
    assert (grpo.tokenizer is tokenizer) == with_tokenizer
    assert (grpo.tokenizer.pad_token_id, grpo.tokenizer.eos_token_id) == (0, 1)
    # the weights are the saved model's
    saved = demo.build_model(demo.build_tokenizer(), 0).state_dict()
    for name, parameter in grpo.model.state_dict().items():
        torch.testing.assert_close(parameter, saved[name], rtol=0, atol=0)
    # and the loaded tokenizer encodes as the one in code
    assert grpo.tokenizer("3+4=").input_ids == tokenizer("3+4=").input_ids == [5, 12, 6, 13]


def test_a_tokenizer_without_a_pad_token_pads_with_eos_as_in_trl(model_path, tmp_path):
    from tokenizers import Tokenizer

    built = demo.build_tokenizer()
    core = Tokenizer.from_str(built.backend_tokenizer.to_str())
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, eos_token=demo.EOS)
    assert tokenizer.pad_token_id is None
    grpo = path_trainer(str(model_path), processing_class=tokenizer)
    assert grpo.tokenizer.pad_token == demo.EOS and grpo.tokenizer.pad_token_id == 1


def test_a_model_built_in_code_needs_its_tokenizer():
    model = demo.build_model(demo.build_tokenizer(), 0)
    with pytest.raises(BadInputError, match="processing_class must be given for a model that was"):
        path_trainer(model)


def characters(prompts, completions, **columns) -> list[float]:
    return [float(len(text)) for text in completions]


def test_model_init_kwargs_load_the_path_and_reach_config_json(model_path, tmp_path):
    changes = {"model_init_kwargs": {"dtype": torch.float64}, "output_dir": str(tmp_path)}
    grpo = path_trainer(str(model_path), config={**changes, "max_steps": 1})
    assert {p.dtype for p in grpo.model.parameters()} == {torch.float64}
    grpo.train()
    written = json.loads((tmp_path / "config.json").read_text())["config"]
    assert written["model_init_kwargs"] == {"dtype": "torch.float64"}  # JSON has no dtype
    model = demo.build_model(demo.build_tokenizer(), 0)
    with pytest.raises(BadInputError, match="model_init_kwargs applies to a model given as a pa"):
        path_trainer(model, config=changes, processing_class=demo.build_tokenizer())


def test_args_must_be_rlgrads_config():
    with pytest.raises(TypeError, match=r"an rlgrad\.lm\.GRPOConfig; got builtins\.dict"):
        GRPOTrainer(
            model=demo.build_model(demo.build_tokenizer(), 0),
            reward_funcs=[demo.correct],
            args={"learning_rate": 1e-3},
            train_dataset=demo.dataset(),
            processing_class=demo.build_tokenizer(),
        )


def test_the_older_positional_call_warns_and_trains_the_same():
    def build(older: bool):
        tokenizer = demo.build_tokenizer()
        model = demo.build_model(tokenizer, 0)
        config = GRPOConfig(**{**QUICK, "max_steps": 2})
        funcs = [demo.correct, characters]
        if older:
            with pytest.warns(DeprecationWarning, match=r"GRPOTrainer\(model, tokenizer, rew"):
                return GRPOTrainer(model, tokenizer, funcs, demo.dataset(), config, [1.0, 2.0])
        return trainer(
            model,
            {"max_steps": 2},
            reward_funcs=funcs,
            processing_class=tokenizer,
            reward_weights=[1.0, 2.0],
        )

    def timeless(rows):
        return [{k: v for k, v in row.items() if k != "step_time"} for row in rows]

    # each trainer seeds torch's global generator when built: build, then train, one at a time
    older = build(True)
    assert older.reward_weights.tolist() == [1.0, 2.0]
    rows = timeless(older.train())
    assert rows == timeless(build(False).train())
    for row in rows:  # the reward weights arrived: correct + 2 · characters
        expected = row["rewards/correct/mean"] + 2 * row["rewards/characters/mean"]
        assert row["rewards/characters/mean"] > 0 and row["reward"] == pytest.approx(expected)


def test_the_older_keywords_warn_and_both_names_of_one_argument_are_refused():
    tokenizer = demo.build_tokenizer()
    model = demo.build_model(tokenizer, 0)
    common = {"reward_funcs": [demo.correct], "train_dataset": demo.dataset()}
    with pytest.warns(DeprecationWarning, match="keyword tokenizer= and config= are deprecated"):
        grpo = GRPOTrainer(model, tokenizer=tokenizer, config=GRPOConfig(**QUICK), **common)
    assert grpo.tokenizer is tokenizer and grpo.config.num_generations == QUICK["num_generations"]
    both = {"args": GRPOConfig(), "config": GRPOConfig(), "processing_class": tokenizer}
    with pytest.raises(BadInputError, match=r"^GRPOTrainer: pass args= or config=, not both"):
        GRPOTrainer(model, **common, **both)
    # the older positional call with the older keyword-only arguments after it
    with pytest.warns(DeprecationWarning):
        grpo = GRPOTrainer(
            model,
            tokenizer,
            [demo.correct],
            demo.dataset(),
            GRPOConfig(**QUICK),
            eval_dataset=demo.dataset()[:2],
        )
    assert len(grpo.eval_dataset) == 2


# ----- GRPOConfig with TRL's names -----


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"use_vllm": True},
            "GRPOConfig: TRL's field 'use_vllm' is not implemented in rlgrad; it accepts only "
            "use_vllm=False (what rlgrad does); got True",
        ),
        (
            {"lr_scheduler_type": "cosine"},
            "TRL's field 'lr_scheduler_type' is not implemented in rlgrad; it accepts only "
            "lr_scheduler_type='constant_with_warmup'",
        ),
        (
            {"vllm_mode": "colocate"},
            "GRPOConfig: TRL's field 'vllm_mode' is not implemented in rlgrad; remove it",
        ),
        (
            {"per_device_eval_batch_size": 4},
            "TRL's field 'per_device_eval_batch_size' is not implemented in rlgrad; remove it",
        ),
        (
            {"eval_strategy": "no", "eval_steps": 5},
            "accepts only eval_strategy='steps' or eval_strategy='no' (what rlgrad does with "
            "eval_steps=0)",
        ),
        ({"learnin_rate": 1e-3}, "GRPOConfig has no field 'learnin_rate'; did you mean 'learni"),
    ],
)
def test_trl_fields_rlgrad_does_not_implement_are_refused_by_name(fields, message):
    with pytest.raises(BadInputError) as error:
        GRPOConfig(**fields)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_fields_go_by_name():
    # TRL's GRPOConfig("out") means output_dir; rlgrad's first field is another
    with pytest.raises(BadInputError, match=r"^GRPOConfig takes its fields by name only"):
        GRPOConfig("out")


def test_trl_fields_at_the_value_rlgrad_follows_are_accepted_and_trl_spellings_are_read():
    config = GRPOConfig(
        use_vllm=False,
        optim="adamw_torch",
        disable_dropout=True,
        eval_strategy="no",
        scale_rewards=False,
        report_to=["tensorboard"],
        reward_weights=[1, 2],
        output_dir="out",
    )
    assert config.scale_rewards == "none" and config.report_to == "tensorboard"
    assert config.reward_weights == (1, 2)
    assert GRPOConfig(scale_rewards=True).scale_rewards == "group"
    assert GRPOConfig(report_to=None).report_to == "none"


def test_trl_batch_size_and_epochs_become_prompts_per_step_and_steps():
    config = GRPOConfig(per_device_train_batch_size=6, num_generations=3, num_train_epochs=2.5)
    # 6 completions · 2 processes · 1 micro-batch / G 3 = 4 prompts a step;
    # ceil(2.5 epochs · 10 rows / 4) = ceil(6.25) = 7 steps
    resolved = resolve(config, world_size=2, rows=10)
    assert (resolved.prompts_per_step, resolved.max_steps) == (4, 7)
    assert resolve(resolved, world_size=2, rows=10) == resolved  # resolving again changes nothing
    assert resolve(GRPOConfig(), 1, 10).max_steps == 100  # neither: rlgrad's 100 steps
    assert resolve(GRPOConfig(max_steps=-1, num_train_epochs=1), 1, 20).max_steps == 3
    with pytest.raises(BadInputError, match="set prompts_per_step or per_device_train_batch_s"):
        resolve(GRPOConfig(per_device_train_batch_size=8, prompts_per_step=3), 1, 10)
    with pytest.raises(BadInputError, match=r"\(5 · 1 · 1 = 5\) must be a multiple of num_gen"):
        resolve(GRPOConfig(per_device_train_batch_size=5, num_generations=2), 1, 10)


def test_max_prompt_length_keeps_the_end_of_each_prompt():
    grpo = trainer(config={"max_prompt_length": 2})
    generation = grpo._generate(["1+2=", "3+4="], num_generations=1, greedy=True)
    assert generation.prompt_length == 2
    assert grpo.tokenizer.batch_decode(generation.input_ids[:, :2]) == ["2=", "4="]
    assert grpo.tokenizer.truncation_side == "right"  # the caller's setting comes back


def test_top_k_1_samples_the_greedy_completion():
    grpo = trainer(config={"top_k": 1})
    prompts = [row["prompt"] for row in demo.dataset()[:8]]
    sampled = grpo._generate(prompts, num_generations=2)
    greedy = grpo._generate(prompts, num_generations=2, greedy=True)
    assert torch.equal(sampled.completion_ids, greedy.completion_ids)
    # without top_k the same seed samples other completions somewhere
    assert not torch.equal(trainer()._generate(prompts, 2).completion_ids, greedy.completion_ids)


def test_reward_weights_come_from_the_config_or_the_trainer_not_both():
    assert trainer(config={"reward_weights": [0.5, 2.0]}).reward_weights.tolist() == [0.5, 2.0]
    with pytest.raises(BadInputError, match=r"GRPOConfig\.reward_weights or as reward_weights="):
        trainer(config={"reward_weights": [1.0, 1.0]}, reward_weights=[1.0, 1.0])


# ----- callbacks and optimizers -----


class Recorder(transformers.TrainerCallback):
    """Records the events, and stops training at step 2."""

    def __init__(self):
        self.events = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.events.append(("train_begin", state.global_step, state.max_steps))

    def on_step_end(self, args, state, control, **kwargs):
        self.events.append(("step_end", state.global_step, len(state.log_history)))
        control.should_training_stop = state.global_step == 2

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.events.append(("log", state.global_step, round(logs["reward"], 6)))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.events.append(("train_end", state.global_step, model is not None))


def test_trainer_callbacks_see_the_steps_and_can_stop_training():
    recorder = Recorder()
    history = trainer(callbacks=[recorder]).train()
    assert len(history) == 2  # stopped after step 2 of max_steps 4
    rewards = [round(row["reward"], 6) for row in history]
    assert recorder.events == [
        ("train_begin", 0, 4),
        ("step_end", 1, 0),  # on_step_end comes before the row is logged
        ("log", 1, rewards[0]),
        ("step_end", 2, 1),
        ("log", 2, rewards[1]),
        ("train_end", 2, True),
    ]


def test_a_callback_the_trainer_would_not_call_is_refused():
    class EveryEpoch(transformers.TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            pass

    with pytest.raises(BadInputError, match=r"callbacks\[0\] \(EveryEpoch\) defines on_epoch_beg"):
        trainer(callbacks=[EveryEpoch])


def test_a_given_optimizer_and_scheduler_are_used():
    tokenizer = demo.build_tokenizer()
    model = demo.build_model(tokenizer, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    grpo = trainer(
        model, {"max_steps": 2}, processing_class=tokenizer, optimizers=(optimizer, scheduler)
    )
    assert grpo.optimizer is optimizer and grpo.scheduler is scheduler
    # one scheduler step per GRPO step: 0.1 · 0.5, then 0.1 · 0.25
    assert [row["learning_rate"] for row in grpo.train()] == pytest.approx([0.05, 0.025])
    stranger = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(BadInputError, match=r"optimizers\[0\] must optimize the model's param"):
        trainer(model, processing_class=tokenizer, optimizers=(stranger, None))
