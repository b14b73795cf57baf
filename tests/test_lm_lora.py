"""GRPO with PEFT's LoRA adapters: only the adapters train, the reference policy is the model with
its adapters switched off (no copy), checkpoints hold the adapters and resume exactly, and the
saved adapter loads back with PEFT."""

from __future__ import annotations

import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
transformers.logging.set_verbosity_error()
# PEFT asks transformers 5 for the old name of a flag; nothing to do with what is tested here
pytestmark = pytest.mark.filterwarnings("ignore:.is_gradient_checkpointing. is deprecated")

from test_lm_grpo import (  # noqa: E402
    QUICK,
    StopWhenAccurate,
    fixed_batch,
    gradients,
    without_time,
)

from rlgrad.lm import GRPOConfig, GRPOTrainer, demo  # noqa: E402

# GPT-2's attention and MLP input projections are Conv1D layers: weights stored (in, out)
LORA = dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)


def lora_trainer(model_seed: int = 0, **changes) -> GRPOTrainer:
    tokenizer = demo.build_tokenizer()
    model = demo.build_model(tokenizer, model_seed)
    return GRPOTrainer(
        model=model,
        reward_funcs=[demo.correct, demo.format_reward],
        args=GRPOConfig(**{**QUICK, **changes}),
        train_dataset=demo.dataset(),
        processing_class=tokenizer,
        peft_config=peft.LoraConfig(**LORA, task_type="CAUSAL_LM"),
    )


def base_model(model_seed: int = 0):
    """A separate copy of the model the trainer started from (the same seed)."""
    return demo.build_model(demo.build_tokenizer(), model_seed).eval()


def is_adapter(name: str) -> bool:
    return "lora_" in name


def test_only_the_adapters_train_and_the_base_weights_stay_bit_identical():
    grpo = lora_trainer(beta=0.05, learning_rate=1e-2)
    assert isinstance(grpo.model, peft.PeftModel) and grpo.ref_model is None  # no second copy
    adapters = {n: p.detach().clone() for n, p in grpo.model.named_parameters() if is_adapter(n)}
    optimized = {id(p) for group in grpo.optimizer.param_groups for p in group["params"]}
    trainable = {n for n, p in grpo.model.named_parameters() if id(p) in optimized}
    assert trainable == set(adapters) and len(adapters) == 8  # A and B of 2 layers × 2 blocks
    history = grpo.train()
    assert all(row["kl"] >= 0 for row in history) and history[-1]["kl"] > 0
    start = base_model().state_dict()
    trained = grpo.model.get_base_model().state_dict()
    base = {k: v for k, v in trained.items() if not is_adapter(k)}
    # PEFT moves each wrapped layer's weight under ``base_layer``
    assert len(base) == len(start)
    assert all(torch.equal(start[k.replace(".base_layer", "")], v) for k, v in base.items())
    # B starts at 0, so A has no gradient in the first step; both move in the later ones
    unchanged = [n for n in adapters if torch.equal(adapters[n], grpo.model.get_parameter(n))]
    assert not unchanged, unchanged


def test_the_reference_log_probs_are_those_of_the_model_without_its_adapters():
    grpo = lora_trainer(beta=0.1, max_steps=2, learning_rate=1e-2)
    grpo.train()  # the adapters now change the outputs
    batch, _ = grpo.sample()
    base = base_model()
    with torch.no_grad():
        expected, _ = grpo._token_log_probs(base, batch)
        policy, _ = grpo._token_log_probs(grpo.model, batch)
    assert torch.equal(batch.ref_log_probs, expected)
    assert (policy - expected).abs().max() > 1e-3  # the policy itself did move away


def test_resuming_from_a_checkpoint_continues_exactly(tmp_path):
    options = dict(max_steps=4, beta=0.05, learning_rate=1e-2, num_iterations=2)
    whole = lora_trainer(**options, save_steps=2, output_dir=str(tmp_path / "whole"))
    rows = whole.train()
    checkpoint = tmp_path / "whole" / "checkpoint-2"
    assert (checkpoint / "adapter_config.json").exists()  # save_pretrained of the adapters
    assert not (checkpoint / "config.json").exists()  # not of the whole model
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    assert all(is_adapter(name) for name in state["model"])  # no base weights in the state
    # another seed for the adapters' initialization and the prompt order: both come back
    resumed = lora_trainer(**options, output_dir=str(tmp_path / "resumed"), seed=7)
    again = resumed.train(resume_from_checkpoint=checkpoint)
    assert without_time(again) == without_time(rows)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_full_fine_tuning_is_refused(tmp_path):
    config = GRPOConfig(**{**QUICK, "output_dir": str(tmp_path), "max_steps": 1})
    GRPOTrainer(
        model=base_model(),
        reward_funcs=[demo.correct],
        args=config,
        train_dataset=demo.dataset(),
        processing_class=demo.build_tokenizer(),
    ).train()
    with pytest.raises(ValueError, match="trainable parameters are not this model's"):
        lora_trainer().load_checkpoint(tmp_path / "checkpoint-1")


def test_the_saved_adapter_loads_back_with_peft_and_gives_the_same_outputs(tmp_path):
    grpo = lora_trainer(max_steps=2, learning_rate=1e-2, output_dir=str(tmp_path))
    grpo.train()
    loaded = peft.PeftModel.from_pretrained(base_model(), tmp_path / "checkpoint-2").eval()
    batch = fixed_batch(grpo)
    with torch.no_grad():
        expected = grpo.model(input_ids=batch.input_ids).logits
        logits = loaded(input_ids=batch.input_ids).logits
    assert torch.equal(logits, expected)
    assert not torch.equal(logits, base_model()(input_ids=batch.input_ids).logits)


def test_gradient_checkpointing_reaches_the_adapters_with_the_same_gradients():
    # the embeddings are frozen, so no input of a checkpointed layer needs a gradient: the
    # non-reentrant checkpoint still sends the adapters theirs
    plain, checkpointed = lora_trainer(), lora_trainer(gradient_checkpointing=True)
    for grpo in (plain, checkpointed):
        grpo.update(fixed_batch(grpo))
    whole, recomputed = gradients(plain.model), gradients(checkpointed.model)
    assert whole.keys() == recomputed.keys() and all(is_adapter(n) for n in whole)
    assert any(value.abs().max() > 0 for value in whole.values())
    for name, value in whole.items():
        torch.testing.assert_close(recomputed[name], value, rtol=1e-5, atol=1e-7)


def test_without_peft_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # ``import peft`` now raises ImportError
    tokenizer = demo.build_tokenizer()
    with pytest.raises(
        ImportError, match=r"^peft_config needs PEFT: pip install 'rlgrad\[peft\]'$"
    ):
        GRPOTrainer(
            model=demo.build_model(tokenizer, 0),
            reward_funcs=[demo.correct],
            args=GRPOConfig(**QUICK),
            train_dataset=demo.dataset(),
            processing_class=tokenizer,
            peft_config=object(),
        )


@pytest.mark.slow
def test_the_lora_demo_learns_addition_with_the_base_weights_frozen():
    # `rlgrad grpo-demo --lora`; its learning rate was chosen on seeds 100 and 101, this is seed 0
    learned = demo.run(seed=0, lora=True, callbacks=[StopWhenAccurate()])
    assert learned["accuracy_before"] <= 0.2
    assert learned["accuracy_after"] >= 0.85, learned["accuracy_after"]
