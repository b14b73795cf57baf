"""How :class:`~rlgrad.lm.grpo.GRPOTrainer`'s arguments arrive: TRL's call, the older call, and
a model given as a path.

* **TRL's call** is the trainer's own signature: ``GRPOTrainer(model, reward_funcs, args,
  train_dataset, eval_dataset, processing_class, reward_processing_classes, callbacks,
  optimizers, peft_config)``, every one also by keyword.
* **The older call** ``GRPOTrainer(model, tokenizer, reward_funcs, train_dataset, config,
  reward_weights, peft_config)`` still works, with a DeprecationWarning: it is recognised by its
  second positional argument, a tokenizer (a reward is a function, a model, a list or a name,
  never a tokenizer). The keywords ``config=`` and ``tokenizer=`` are read as ``args=`` and
  ``processing_class=``, with the same warning; a call that gives both names of one argument is
  refused.
* **A model given as a path** (a local directory written by ``save_pretrained``) is loaded with
  ``AutoModelForCausalLM.from_pretrained(path, **args.model_init_kwargs)``, and, when no
  ``processing_class`` is given, the tokenizer with ``AutoTokenizer.from_pretrained`` of the
  model's path. A tokenizer without a pad token pads with its EOS token, as in TRL.
"""

from __future__ import annotations

import functools
import warnings

from rlgrad.errors import BadInputError

# the older call's positional arguments, in order
OLDER_POSITIONAL = (
    "model",
    "tokenizer",
    "reward_funcs",
    "train_dataset",
    "config",
    "reward_weights",
    "peft_config",
)
# the older keywords and the TRL names they now go by, with the TRL name's position
RENAMED = {"tokenizer": ("processing_class", 5), "config": ("args", 2)}
NEW_CALL = (
    "GRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=..., "
    "processing_class=tokenizer)"
)


def is_tokenizer(value) -> bool:
    """Whether ``value`` is a tokenizer (or a processor holding one), not a reward function, a
    reward model, a list of them or a name."""
    try:
        from transformers import PreTrainedTokenizerBase, ProcessorMixin

        if isinstance(value, (PreTrainedTokenizerBase, ProcessorMixin)):
            return True
    except ImportError:
        pass
    # a tokenizer of another class still decodes and knows its EOS token; a reward does neither
    return hasattr(value, "batch_decode") and hasattr(value, "eos_token_id")


def older_call_as_trl_call(positional: tuple, keywords: dict) -> tuple[tuple, dict]:
    """The positional and keyword arguments of a call written in the older form, or with the older
    keywords, as TRL's call; a call in TRL's form comes back as it was. Warns once per call."""
    older = len(positional) >= 2 and is_tokenizer(positional[1])
    renamed = [name for name in RENAMED if name in keywords]
    if not older and not renamed:
        return positional, keywords
    if older:
        if len(positional) > len(OLDER_POSITIONAL):
            raise TypeError(
                f"GRPOTrainer(model, tokenizer, ...) takes at most {len(OLDER_POSITIONAL)} "
                f"positional arguments; got {len(positional)}"
            )
        keywords = dict(keywords)
        for name, value in zip(OLDER_POSITIONAL, positional, strict=False):
            if name in keywords:
                raise TypeError(f"GRPOTrainer: got two values for the argument {name!r}")
            keywords[name] = value
        positional = ()
        what = "GRPOTrainer(model, tokenizer, reward_funcs, train_dataset, config, ...) is"
    else:
        what = "GRPOTrainer's keyword " + " and ".join(f"{name}=" for name in renamed)
        what += " are" if len(renamed) > 1 else " is"
    for old, (new, position) in RENAMED.items():
        if old not in keywords:
            continue
        if new in keywords or len(positional) > position:
            raise BadInputError(
                f"GRPOTrainer: pass {new}= or {old}=, not both ({old}= is its older name)"
            )
        keywords[new] = keywords.pop(old)
    warnings.warn(f"{what} deprecated; call {NEW_CALL}", DeprecationWarning, stacklevel=3)
    return positional, keywords


def accepts_the_older_call(init):
    """``GRPOTrainer.__init__`` that also takes the older call (see the module's docstring),
    translated to TRL's before the arguments are bound."""

    @functools.wraps(init)
    def __init__(self, *positional, **keywords):
        positional, keywords = older_call_as_trl_call(positional, keywords)
        init(self, *positional, **keywords)

    return __init__


def load_model(model, processing_class, model_init_kwargs: dict | None):
    """The model and its tokenizer: a path (a local ``save_pretrained`` directory) loaded with
    ``AutoModelForCausalLM``, and, when ``processing_class`` is none, ``AutoTokenizer`` of the
    model's path. A tokenizer without a pad token pads with its EOS token, as in TRL."""
    if isinstance(model, str):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model, **(model_init_kwargs or {}))
    elif model_init_kwargs:
        raise BadInputError(
            "GRPOTrainer: GRPOConfig.model_init_kwargs applies to a model given as a path; got "
            f"a {type(model).__name__} object (set its options when you load it)"
        )
    if processing_class is None:
        processing_class = tokenizer_of(model)
    tokenizer = getattr(processing_class, "tokenizer", processing_class)  # a processor's own
    if tokenizer.eos_token_id is None:
        raise BadInputError("GRPOTrainer: processing_class needs an eos_token; got none")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def tokenizer_of(model):
    """``AutoTokenizer.from_pretrained`` of the path the model was loaded from."""
    from transformers import AutoTokenizer

    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    if not path:
        raise BadInputError(
            "GRPOTrainer: processing_class must be given for a model that was not loaded from a "
            f"path; got processing_class=None and a {type(model).__name__} built in code"
        )
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise BadInputError(
            f"GRPOTrainer: processing_class=None, and the model's path {path!r} holds no "
            f"tokenizer ({type(error).__name__}); pass processing_class"
        ) from None
