"""What GRPO's language-model trainer hands to reward functions, as TRL users expect: chat prompts
rendered with the tokenizer's template and completions as messages, completion_ids and
trainer_state, functions written before those arguments existed, and sequence-classification
reward models scored on prompt and completion."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from test_lm_grpo import QUICK  # noqa: E402

from rlgrad.lm import GRPOConfig, GRPOTrainer, TrainerState, data, demo  # noqa: E402

# one character a token: the role's initial, a colon, the content, a bar; then the assistant's
# turn opened. "u:1+2=|a:" is 9 tokens, within the demo model's 16 positions with a completion
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }}|{% endfor %}"
    "{% if add_generation_prompt %}a:{% endif %}"
)


def chat_tokenizer(
    template: str | None = CHAT_TEMPLATE, characters: str = demo.DIGITS + "+=" + "usa:|"
):
    """The demo's character tokenizer with the template's characters added, and the template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocabulary = {demo.PAD: 0, demo.EOS: 1, **{c: i + 2 for i, c in enumerate(characters)}}
    core = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=demo.PAD))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=demo.PAD, eos_token=demo.EOS
    )
    tokenizer.chat_template = template
    return tokenizer


def chat_rows() -> list[dict]:
    """Eight addition prompts as one user message each, with the answer column."""
    return [
        {"prompt": [{"role": "user", "content": f"{a}+{b}="}], "answer": str((a + b) % 10)}
        for a in range(4)
        for b in range(2)
    ]


def chat_trainer(reward_funcs, rows=None, tokenizer=None, **changes) -> GRPOTrainer:
    tokenizer = tokenizer or chat_tokenizer()
    model = demo.build_model(tokenizer, 0)
    config = GRPOConfig(**{**QUICK, **changes})
    return GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=rows or chat_rows(),
        processing_class=tokenizer,
    )


# ----- chat prompts -----


def test_chat_prompts_are_rendered_with_the_tokenizers_template():
    tokenizer = chat_tokenizer()
    messages = [{"role": "system", "content": "9"}, {"role": "user", "content": "1+2="}]
    assert data.render_prompt(tokenizer, messages) == "s:9|u:1+2=|a:"
    assert data.render_prompt(tokenizer, "1+2=") == "1+2="  # a string stays as it is


def test_reward_functions_get_the_chat_prompts_and_completions_as_messages():
    calls = []

    def record(prompts, completions, completion_ids, answer, **columns):
        calls.append((prompts, completions, completion_ids, answer))
        return [float(len(c[0]["content"])) for c in completions]

    grpo = chat_trainer([record], max_completion_length=4)
    batch, _ = grpo.sample()
    ((prompts, completions, completion_ids, answers),) = calls
    tokenizer, rows = grpo.tokenizer, chat_rows()
    # the policy continued the rendered text (left padding dropped)
    continued = tokenizer.batch_decode(
        batch.input_ids[:, : batch.prompt_length], skip_special_tokens=True
    )
    answer_of = {row["prompt"][0]["content"]: row["answer"] for row in rows}
    assert len(prompts) == len(completions) == len(completion_ids) == 16
    for index, (prompt, completion, ids) in enumerate(
        zip(prompts, completions, completion_ids, strict=True)
    ):
        assert prompt in [row["prompt"] for row in rows]  # the original messages
        assert prompt == prompts[index - index % 4]  # a group's G completions side by side
        assert continued[index] == f"u:{prompt[0]['content']}|a:"
        text = tokenizer.decode(ids, skip_special_tokens=True)
        assert completion == [{"role": "assistant", "content": text}]
        # the generated tokens through the first EOS, no padding after it
        mask = batch.completion_mask[index]
        assert ids == batch.completion_ids[index, : int(mask.sum())].tolist()
        assert tokenizer.eos_token_id not in ids[:-1]
        assert answers[index] == answer_of[prompt[0]["content"]]


def test_chat_prompts_and_a_tokenizer_without_a_chat_template_are_refused():
    with pytest.raises(ValueError) as error:
        chat_trainer([demo.format_reward], tokenizer=chat_tokenizer(template=None))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "GRPOTrainer: train_dataset holds chat-message prompts but the tokenizer has no chat "
        "template (its chat_template is None); set its chat_template to a Jinja template string"
    )


@pytest.mark.parametrize(
    "rows, error, message",
    [
        ([{"question": "1+2="}], ValueError, "train_dataset[0] must have a 'prompt' column"),
        (
            [{"prompt": "1+2="}, {"prompt": 7}],
            TypeError,
            "train_dataset[1]['prompt'] must be a string or a list of chat messages",
        ),
        (
            [{"prompt": "1+2="}, {"prompt": [{"role": "user", "content": "1+2="}]}],
            ValueError,
            "train_dataset must hold prompts of one form; got plain strings and chat messages",
        ),
        (
            [{"prompt": "1+2=", "trainer_state": 0}],
            ValueError,
            "train_dataset's column 'trainer_state' would reach the reward functions twice",
        ),
    ],
)
def test_bad_prompts_are_refused_with_the_row_named(rows, error, message):
    with pytest.raises(error) as raised:
        chat_trainer([demo.format_reward], rows=rows)
    assert message in str(raised.value)


# ----- completion_ids, trainer_state, and functions written before them -----


def test_reward_functions_see_the_step_and_the_epoch():
    # 8 rows, 4 prompts a step: each step starts half an epoch later than the one before
    states = []

    def record(prompts, completions, trainer_state, **columns):
        states.append(trainer_state)
        return [0.0] * len(completions)

    grpo = chat_trainer([record], max_steps=4)
    grpo.train()
    assert [(s.step, s.epoch) for s in states] == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5)]
    assert all(isinstance(s, TrainerState) and s.global_step == s.step for s in states)


def test_functions_without_kwargs_get_only_the_arguments_they_name():
    def plain(prompts, completions, answer):  # written for the older call
        return [1.0 if c == a else 0.0 for c, a in zip(completions, answer, strict=True)]

    def lengths(prompts, completions, completion_ids, answer):
        return [float(len(ids)) for ids in completion_ids]

    grpo = chat_trainer([plain, lengths], rows=demo.dataset()[:2])
    ids = [[9], [3, 4, 1], [1], [5, 1]] * 2
    scores = grpo._rewards(grpo.dataset, ["0", "12", "", "1"] * 2, ids)
    # rows "0+0=" (answer 0) and "0+1=" (answer 1): the first group's "0", the second's "1"
    assert scores[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert scores[:, 1].tolist() == [1.0, 3.0, 1.0, 2.0] * 2


def test_a_reward_of_the_wrong_length_is_refused():
    grpo = chat_trainer([lambda prompts, completions, **kw: [1.0]], rows=demo.dataset()[:1])
    with pytest.raises(ValueError, match="returned 1 rewards for 2 completions"):
        grpo._rewards(grpo.dataset, ["1", "2"], [[3], [4]])


# ----- reward models -----


def reward_model(tokenizer, num_labels: int = 1, pad_token_id: int | None = 0):
    """A one-layer GPT-2 sequence classifier with fresh weights (and its default dropout)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        num_labels=num_labels,
        pad_token_id=pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(1)
    return GPT2ForSequenceClassification(config)


def direct_scores(model, tokenizer, texts: list[str], add_special_tokens: bool) -> list[float]:
    encoded = tokenizer(
        texts,
        return_tensors="pt",
        padding=True,
        padding_side="right",
        add_special_tokens=add_special_tokens,
    )
    with torch.no_grad():
        return model.eval()(**encoded).logits[:, 0].tolist()


def zero(prompts, completions, **columns):
    return [0.0] * len(completions)


@pytest.mark.parametrize("form", ["plain", "chat"])
def test_a_reward_model_scores_prompt_and_completion_with_its_logit(form):
    # the reward model reads with its own tokenizer: for chat, its own template, which keeps
    # only the contents ("1+2=|3|"), not the policy's "u:1+2=|a:"
    reward_tokenizer = chat_tokenizer("{% for m in messages %}{{ m['content'] }}|{% endfor %}")
    model = reward_model(reward_tokenizer)
    rows = chat_rows()[:2] if form == "chat" else demo.dataset()[:2]
    tokenizer = chat_tokenizer() if form == "chat" else demo.build_tokenizer()
    grpo = GRPOTrainer(
        model=demo.build_model(tokenizer, 0),
        reward_funcs=[zero, model],
        args=GRPOConfig(**QUICK),
        train_dataset=rows,
        processing_class=tokenizer,
        reward_processing_classes=[None, reward_tokenizer],
    )
    assert not model.training  # no dropout in the scores
    completions = ["7", "12", "", "3"] * 2
    scores = grpo._rewards(grpo.dataset, completions, [[1]] * 8)
    prompts = [row["prompt"] for row in rows for _ in range(4)]
    if form == "chat":
        texts = [f"{p[0]['content']}|{c}|" for p, c in zip(prompts, completions, strict=True)]
    else:
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
    expected = direct_scores(model, reward_tokenizer, texts, add_special_tokens=form == "plain")
    torch.testing.assert_close(scores[:, 1], torch.tensor(expected))
    assert len(set(expected)) > 1  # the texts do score differently
    _, info = grpo.sample()
    assert "rewards/GPT2ForSequenceClassification/mean" in info


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"tokenizers": None}, ValueError, "reward_funcs[0] is a model and needs its tokenizer"),
        (
            {"num_labels": 2},
            ValueError,
            "reward_funcs[0] must score with one logit (config.num_labels = 1",
        ),
        (
            {"pad_token_id": 5},
            ValueError,
            "reward_funcs[0].config.pad_token_id must be its tokenizer's pad_token_id (0); got 5",
        ),
        ({"model": "some/reward-model"}, TypeError, "models are not loaded by name"),
        ({"model": 3}, TypeError, "reward_funcs[0] must be a function or a sequence-class"),
        ({"tokenizers": []}, ValueError, "reward_processing_classes must have one entry per"),
    ],
)
def test_bad_reward_models_are_refused(changes, error, message):
    tokenizer = demo.build_tokenizer()
    options = {k: changes[k] for k in ("num_labels", "pad_token_id") if k in changes}
    model = changes.get("model", reward_model(tokenizer, **options))
    tokenizers = changes.get("tokenizers", [tokenizer])
    with pytest.raises(error) as raised:
        GRPOTrainer(
            model=demo.build_model(tokenizer, 0),
            reward_funcs=[model],
            args=GRPOConfig(**QUICK),
            train_dataset=demo.dataset(),
            processing_class=tokenizer,
            reward_processing_classes=tokenizers,
        )
    assert message in str(raised.value)
