"""The part of transformers' ``TrainerCallback`` protocol that GRPO's trainer honours.

``GRPOTrainer(..., callbacks=[...])`` takes ``TrainerCallback`` objects (or classes, made with no
arguments) as TRL does. The trainer calls, with ``(args, state, control, model=...,
processing_class=..., optimizer=..., lr_scheduler=...)`` as transformers' Trainer does:

* ``on_init_end``: at the end of the trainer's construction;
* ``on_train_begin``: when ``train()`` starts (after a checkpoint was loaded);
* ``on_step_begin``: before each step samples;
* ``on_step_end``: after each step's update (``state.global_step`` counts it);
* ``on_evaluate``: after each evaluation, with ``metrics=`` (the eval_* values);
* ``on_log``: after every step, with ``logs=`` that step's row of metrics;
* ``on_save``: after each checkpoint is written;
* ``on_train_end``: when ``train()`` ends.

``args`` is the run's :class:`~rlgrad.lm.config.GRPOConfig`; ``state`` is a transformers
``TrainerState`` whose ``global_step``, ``epoch``, ``max_steps`` and ``log_history`` (the
trainer's rows, every step) are kept current. Of ``control`` (a ``TrainerControl``),
``should_training_stop`` ends training after the step, ``should_evaluate`` evaluates after the
step (on eval_dataset) and ``should_save`` writes a checkpoint after it; ``should_log`` and
``should_epoch_stop`` ask for nothing more (every step is logged, and epochs are not a unit of
this loop). A callback that defines any other ``on_*`` method (``on_epoch_begin``,
``on_substep_end``, ``on_optimizer_step``, ...) is refused when the trainer is built: it would
never be called.
"""

from __future__ import annotations

from rlgrad.errors import BadInputError

EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_step_begin",
    "on_step_end",
    "on_evaluate",
    "on_log",
    "on_save",
    "on_train_end",
)


def defined_events(callback) -> set[str]:
    """The ``on_*`` methods ``callback`` defines itself (TrainerCallback's own, which do
    nothing, left out)."""
    from transformers import TrainerCallback

    names = {name for name in dir(type(callback)) if name.startswith("on_")}
    return {
        name
        for name in names
        if getattr(type(callback), name) is not getattr(TrainerCallback, name, None)
    }


def checked_callbacks(callbacks) -> list:
    """The callbacks as objects (a class is made with no arguments), after refusing one that
    defines no event the trainer calls, or one that the trainer does not call."""
    objects = []
    for index, callback in enumerate(callbacks or []):
        callback = callback() if isinstance(callback, type) else callback
        where = f"GRPOTrainer: callbacks[{index}] ({type(callback).__name__})"
        events = defined_events(callback)
        unsupported = sorted(events - set(EVENTS))
        if unsupported:
            raise BadInputError(
                f"{where} defines {unsupported[0]}, which rlgrad's GRPO trainer never calls; it "
                f"calls {', '.join(EVENTS)}"
            )
        if not events:
            raise BadInputError(
                f"{where} must be a transformers TrainerCallback with one of {', '.join(EVENTS)}; "
                "it defines none (a function(trainer, row) goes to train(callbacks=...))"
            )
        objects.append(callback)
    return objects


class Callbacks:
    """The trainer's callbacks with the ``TrainerState`` and ``TrainerControl`` they share."""

    def __init__(self, callbacks, trainer):
        self.callbacks = checked_callbacks(callbacks)
        self.trainer = trainer
        self.state = self.control = None
        if not self.callbacks:  # nothing to call, nothing to share
            return
        from transformers import TrainerControl, TrainerState

        config = trainer.config
        self.state = TrainerState(
            max_steps=config.max_steps,
            logging_steps=config.logging_steps,
            eval_steps=config.eval_steps,
            save_steps=config.save_steps,
            num_train_epochs=config.num_train_epochs or 0,
            is_local_process_zero=trainer.rank == 0,
            is_world_process_zero=trainer.rank == 0,
        )
        self.control = TrainerControl()

    def __call__(self, event: str, **extra) -> None:
        """Call ``event`` on every callback that has it, with the state brought up to date; a
        callback that returns a TrainerControl replaces the shared one, as in transformers."""
        if not self.callbacks:
            return
        trainer, state = self.trainer, self.state
        state.global_step, state.epoch = trainer.step, trainer.epoch
        state.log_history = trainer.history
        arguments = {
            "model": trainer.model,
            "processing_class": trainer.tokenizer,
            "optimizer": trainer.optimizer,
            "lr_scheduler": trainer.scheduler,
            **extra,
        }
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method is None:
                continue
            returned = method(trainer.config, state, self.control, **arguments)
            if returned is not None:
                self.control = returned

    def take(self, flag: str) -> bool:
        """Whether a callback set ``control.<flag>`` since it was last taken; clears it."""
        if self.control is None:
            return False
        value = bool(getattr(self.control, flag))
        setattr(self.control, flag, False)
        return value
