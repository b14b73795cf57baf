"""Bad input is refused with a ValueError/TypeError that names function, argument, expectation
and what arrived — never a silent broadcast or a NaN."""

import re

import numpy as np
import pytest
import torch

import rlgrad

T, B = 5, 3
nan, inf = float("nan"), float("inf")


def traj(shape=(T, B), fill=None, dtype=torch.float32):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    return x if fill is None else x.fill_(fill)


def flags(shape=(T, B)):
    return torch.zeros(shape, dtype=torch.bool)


def gae_args(**override):
    args = dict(
        rewards=traj(), values=traj(), next_values=traj(), terminated=flags(),
        truncated=flags(), gamma=0.99, lam=0.95,
    )  # fmt: skip
    args.update(override)
    return args


def raises(exc, fn, *fragments, **kwargs):
    with pytest.raises(exc) as info:
        fn(**kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def nan_at(shape, where):
    x = torch.ones(shape)
    x[where] = nan
    return x


n8, col8 = torch.randn(8), torch.randn(8, 1)
q3, zeros3, long3 = torch.zeros(3, 2), torch.zeros(3), torch.zeros(3, dtype=torch.long)


def one_sum(x):
    return x.sum()


# (id, exception, function, message fragments, keyword arguments). Each row is one bad input;
# the fragments are the function, the argument, and what was expected or received.
CASES = [
    # The silent [n] · [n, 1] broadcast and other shape mismatches.
    ("pg-broadcast", ValueError, rlgrad.policy_gradient_loss,
     ["policy_gradient_loss()", "'advantages'", "(8,)", "(8, 1)"],
     dict(log_probs=n8, advantages=col8)),
    ("ppo-adv-broadcast", ValueError, rlgrad.ppo_clip_loss, ["ppo_clip_loss()", "'advantages'"],
     dict(log_probs=n8, old_log_probs=n8, advantages=col8)),
    ("ppo-old-broadcast", ValueError, rlgrad.ppo_clip_loss,
     ["ppo_clip_loss()", "'old_log_probs'"], dict(log_probs=n8, old_log_probs=col8, advantages=n8)),
    ("objective-broadcast", ValueError, rlgrad.ppo_objective, ["ppo_objective()", "'advantages'"],
     dict(ratios=n8, advantages=col8, clip_eps=0.2)),
    ("value-broadcast", ValueError, rlgrad.value_loss, ["value_loss()", "'returns'"],
     dict(values=n8, returns=col8)),
    ("old-values-broadcast", ValueError, rlgrad.value_loss, ["value_loss()", "'old_values'"],
     dict(values=n8, returns=n8, old_values=col8, clip_eps=0.2)),
    ("kl-broadcast", ValueError, rlgrad.kl_k3, ["kl_k3()", "'ref_log_probs'"],
     dict(log_probs=n8, ref_log_probs=col8)),
    ("approx-kl-broadcast", ValueError, rlgrad.approx_kl, ["approx_kl()", "'old_log_probs'"],
     dict(log_probs=n8, old_log_probs=col8)),
    ("td-flags-shape", ValueError, rlgrad.td_errors,
     ["td_errors()", "'terminated'", "(5, 3)", "(5,)"],
     dict(rewards=traj(), values=traj(), next_values=traj(), terminated=flags((T,)), gamma=0.9)),
    ("returns-bootstrap-shape", ValueError, rlgrad.discounted_returns,
     ["discounted_returns()", "'next_values'"],
     dict(rewards=traj(), terminated=flags(), truncated=flags(), gamma=0.9,
          next_values=traj((T, 1)))),
    ("dqn-no-action-axis", ValueError, rlgrad.dqn_targets,
     ["dqn_targets()", "'next_q_target'", "(4, 'A')", "(4,)"],
     dict(rewards=torch.zeros(4), next_q_target=torch.zeros(4), terminated=flags((4,)),
          gamma=0.9)),
    ("double-dqn-shape", ValueError, rlgrad.dqn_targets, ["dqn_targets()", "'next_q_online'"],
     dict(rewards=torch.zeros(4), next_q_target=torch.zeros(4, 2), terminated=flags((4,)),
          gamma=0.9, next_q_online=torch.zeros(4, 3))),
    ("dqn-actions-shape", ValueError, rlgrad.dqn_loss,
     ["dqn_loss()", "'actions'", "(4,)", "(4, 1)"],
     dict(q_values=torch.zeros(4, 2), actions=torch.zeros(4, 1, dtype=torch.long),
          targets=torch.zeros(4))),
    ("dqn-targets-shape", ValueError, rlgrad.dqn_loss, ["dqn_loss()", "'targets'"],
     dict(q_values=torch.zeros(4, 2), actions=torch.zeros(4, dtype=torch.long),
          targets=torch.zeros(4, 1))),
    ("td-features-width", ValueError, rlgrad.semi_gradient_td_update,
     ["semi_gradient_td_update()", "'features'", "[*B, 3]"],
     dict(weights=torch.zeros(3), features=torch.zeros(4, 2), next_features=torch.zeros(4, 2),
          rewards=torch.zeros(4), terminated=flags((4,)), gamma=0.9, lr=0.1)),
    ("td-rewards-shape", ValueError, rlgrad.semi_gradient_td_update,
     ["semi_gradient_td_update()", "'rewards'", "(4,)", "(4, 1)"],
     dict(weights=torch.zeros(3), features=torch.zeros(4, 3), next_features=torch.zeros(4, 3),
          rewards=torch.zeros(4, 1), terminated=flags((4,)), gamma=0.9, lr=0.1)),
    ("time-axis", ValueError, rlgrad.gae, ["gae()", "'rewards'", "[T, *B]", "()"],
     gae_args(rewards=torch.tensor(1.0), values=torch.tensor(1.0),
              next_values=torch.tensor(1.0), terminated=torch.tensor(False),
              truncated=torch.tensor(False))),
    # Actions and loss kinds.
    ("action-too-large", ValueError, rlgrad.dqn_loss,
     ["dqn_loss()", "'actions'", "[0, 2)", "got 2"],
     dict(q_values=q3, actions=torch.tensor([0, 1, 2]), targets=zeros3)),
    ("action-negative", ValueError, rlgrad.dqn_loss, ["dqn_loss()", "got -1"],
     dict(q_values=q3, actions=torch.tensor([0, -1, 1]), targets=zeros3)),
    ("float-actions", TypeError, rlgrad.dqn_loss,
     ["dqn_loss()", "'actions'", "integer", "torch.float32"],
     dict(q_values=q3, actions=zeros3, targets=zeros3)),
    ("loss-kind", ValueError, rlgrad.dqn_loss, ["dqn_loss()", "'kind'", "'l1'"],
     dict(q_values=q3, actions=long3, targets=zeros3, kind="l1")),
    # Types and dtypes.
    ("list-rewards", TypeError, rlgrad.gae, ["gae()", "'rewards'", "torch.Tensor", "list"],
     gae_args(rewards=[1.0] * T)),
    ("integer-rewards", TypeError, rlgrad.gae,
     ["gae()", "'rewards'", "floating-point", "torch.int64"],
     gae_args(rewards=torch.ones(T, B, dtype=torch.long))),
    ("integer-log-probs", TypeError, rlgrad.policy_gradient_loss, ["'log_probs'", "torch.int32"],
     dict(log_probs=torch.zeros(3, dtype=torch.int32), advantages=zeros3)),
    ("numpy-rewards", TypeError, rlgrad.group_advantages,
     ["group_advantages()", "'rewards'", "ndarray"], dict(rewards=np.zeros((2, 3)))),
    ("sparse-rewards", TypeError, rlgrad.gae,
     ["gae()", "'rewards'", "dense (strided)", "torch.sparse_coo"],
     gae_args(rewards=traj().to_sparse())),
    ("sparse-flags", TypeError, rlgrad.gae,
     ["gae()", "'truncated'", "dense (strided)", "torch.sparse_coo"],
     gae_args(truncated=flags().to_sparse())),
    ("sparse-log-probs", TypeError, rlgrad.policy_gradient_loss,
     ["policy_gradient_loss()", "'log_probs'", "dense (strided)"],
     dict(log_probs=n8.to_sparse(), advantages=n8)),
    ("mixed-precision", TypeError, rlgrad.gae,
     ["gae()", "'values'", "torch.float32", "torch.float64", ".to(rewards.dtype)"],
     gae_args(values=traj(dtype=torch.float64))),
    ("mixed-precision-loss", TypeError, rlgrad.value_loss, ["value_loss()", "'returns'"],
     dict(values=torch.zeros(2), returns=torch.zeros(2, dtype=torch.float64))),
    # The calculus toolbox.
    ("nan-point", ValueError, rlgrad.gradient, ["gradient()", "'x'", "nan"],
     dict(f=lambda x: x, x=torch.tensor(nan))),
    ("vector-f", ValueError, rlgrad.gradient, ["gradient()", "'f'", "scalar", "(3,)"],
     dict(f=lambda x: x * 2, x=torch.zeros(3))),
    ("float-f", TypeError, rlgrad.gradient, ["gradient()", "'f'", "float"],
     dict(f=lambda x: 1.0, x=torch.zeros(3))),
    ("taylor-order", ValueError, rlgrad.taylor, ["taylor()", "'order'", "3"],
     dict(f=one_sum, x=torch.zeros(2), h=torch.zeros(2), order=3)),
    ("taylor-step", ValueError, rlgrad.taylor, ["taylor()", "'h'", "(2,)", "(3,)"],
     dict(f=one_sum, x=torch.zeros(2), h=torch.zeros(3))),
    ("zero-lr", ValueError, rlgrad.gradient_ascent, ["gradient_ascent()", "'lr'", "> 0"],
     dict(f=one_sum, x0=torch.zeros(2), lr=0.0, steps=3)),
    ("negative-steps", ValueError, rlgrad.gradient_descent,
     ["gradient_descent()", "'steps'", ">= 0"],
     dict(f=one_sum, x0=torch.zeros(2), lr=0.1, steps=-1)),
    ("float-steps", TypeError, rlgrad.gradient_descent,
     ["gradient_descent()", "'steps'", "integer"],
     dict(f=one_sum, x0=torch.zeros(2), lr=0.1, steps=2.5)),
    ("negative-eps", ValueError, rlgrad.numerical_gradient, ["numerical_gradient()", "'eps'"],
     dict(f=one_sum, x=torch.zeros(2), eps=-1e-6)),
    # Hyperparameters.
    ("gamma-string", TypeError, rlgrad.td_errors, ["td_errors()", "'gamma'", "str"],
     dict(rewards=traj(), values=traj(), next_values=traj(), terminated=flags(), gamma="0.9")),
    ("gamma-bool", TypeError, rlgrad.td_errors, ["td_errors()", "'gamma'", "bool"],
     dict(rewards=traj(), values=traj(), next_values=traj(), terminated=flags(), gamma=True)),
    ("gamma-large", ValueError, rlgrad.dqn_targets, ["dqn_targets()", "'gamma'", "1.5"],
     dict(rewards=torch.zeros(2), next_q_target=torch.zeros(2, 2), terminated=flags((2,)),
          gamma=1.5)),
    ("discounts-large", ValueError, rlgrad.dqn_targets, ["dqn_targets()", "'gamma'", "1.5"],
     dict(rewards=torch.zeros(2), next_q_target=torch.zeros(2, 2), terminated=flags((2,)),
          gamma=torch.tensor([0.9, 1.5]))),
    ("discounts-shape", ValueError, rlgrad.dqn_targets,
     ["dqn_targets()", "'gamma'", "(2,)", "(3,)"],
     dict(rewards=torch.zeros(2), next_q_target=torch.zeros(2, 2), terminated=flags((2,)),
          gamma=torch.full((3,), 0.9))),
    ("n-step-empty-window", ValueError, rlgrad.n_step_returns,
     ["n_step_returns()", "'rewards'", "at least one step"],
     dict(rewards=torch.zeros(0, 2), terminated=flags((0, 2)), truncated=flags((0, 2)),
          gamma=0.9)),
    ("old-values-alone", ValueError, rlgrad.value_loss,
     ["value_loss()", "'old_values' and 'clip_eps'"],
     dict(values=zeros3, returns=zeros3, old_values=zeros3)),
    ("clip-alone", ValueError, rlgrad.value_loss, ["value_loss()", "'old_values' and 'clip_eps'"],
     dict(values=zeros3, returns=zeros3, clip_eps=0.2)),
    # Groups and batches too small for a statistic.
    ("empty-group", ValueError, rlgrad.group_advantages,
     ["group_advantages()", "at least 1", "(4, 0)"], dict(rewards=torch.zeros(4, 0))),
    ("unbiased-single", ValueError, rlgrad.group_advantages,
     ["group_advantages()", "at least 2", "unbiased=True"],
     dict(rewards=torch.zeros(4, 1), unbiased=True)),
    ("negative-group-eps", ValueError, rlgrad.group_advantages, ["group_advantages()", "'eps'"],
     dict(rewards=torch.zeros(4, 2), eps=-1.0)),
    ("scalar-group", ValueError, rlgrad.group_advantages,
     ["group_advantages()", "'rewards'", "at least 1 dimension"], dict(rewards=torch.tensor(1.0))),
    ("single-advantage", ValueError, rlgrad.normalize_advantages,
     ["normalize_advantages()", "at least 2"], dict(advantages=torch.zeros(1))),
    # Entropy logits: NaN and +inf refused, −inf masks, but not a whole row.
    ("entropy-nan", ValueError, rlgrad.categorical_entropy,
     ["categorical_entropy()", "'logits'", "nan"], dict(logits=torch.tensor([0.0, nan]))),
    ("entropy-inf", ValueError, rlgrad.categorical_entropy, ["categorical_entropy()", "inf"],
     dict(logits=torch.tensor([0.0, inf]))),
    ("entropy-all-masked", ValueError, rlgrad.categorical_entropy,
     ["categorical_entropy()", "finite entry"], dict(logits=torch.tensor([-inf, -inf]))),
    ("entropy-no-actions", ValueError, rlgrad.categorical_entropy,
     ["categorical_entropy()", "A = 0"], dict(logits=torch.zeros(2, 0))),
    # NaN in any loss input, named.
    *[
        (f"nan-{fn.__name__}-{name}", ValueError, fn, [f"{fn.__name__}()", f"'{name}'", "nan"],
         {k: nan_at((2, 4), (1, 2)) if k == name else v for k, v in kwargs.items()})
        for fn, kwargs, name in [
            (rlgrad.policy_gradient_loss, dict(log_probs=0, advantages=torch.ones(2, 4)),
             "log_probs"),
            (rlgrad.policy_gradient_loss, dict(log_probs=torch.ones(2, 4), advantages=0),
             "advantages"),
            (rlgrad.ppo_clip_loss, dict(log_probs=torch.ones(2, 4), old_log_probs=0,
                                        advantages=torch.ones(2, 4)), "old_log_probs"),
            (rlgrad.ppo_objective, dict(ratios=0, advantages=torch.ones(2, 4), clip_eps=0.2),
             "ratios"),
            (rlgrad.value_loss, dict(values=torch.ones(2, 4), returns=0), "returns"),
            (rlgrad.kl_k3, dict(log_probs=torch.ones(2, 4), ref_log_probs=0), "ref_log_probs"),
            (rlgrad.group_advantages, dict(rewards=0), "rewards"),
            (rlgrad.normalize_advantages, dict(advantages=0), "advantages"),
            (rlgrad.clip_fraction, dict(ratios=0, clip_eps=0.2), "ratios"),
        ]
    ],
]  # fmt: skip


@pytest.mark.parametrize(("exc", "fn", "fragments", "kwargs"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_refused_with_a_named_error(exc, fn, fragments, kwargs):
    raises(exc, fn, *fragments, **kwargs)


def test_the_column_vector_message_in_full():
    args = gae_args(rewards=traj((128,)), values=traj((128, 1)), next_values=traj((128,)),
                    terminated=flags((128,)), truncated=flags((128,)))  # fmt: skip
    message = raises(ValueError, rlgrad.gae, **args)
    assert message == "gae(): 'values' must have the shape of 'rewards' (128,); got (128, 1)"


@pytest.mark.parametrize("name", ["values", "next_values", "terminated", "truncated"])
def test_gae_every_trajectory_argument_is_shape_checked(name):
    wrong = flags((T,)) if name in ("terminated", "truncated") else traj((T,))
    raises(ValueError, rlgrad.gae, "gae()", f"'{name}'", f"({T}, {B})", f"({T},)",
           **gae_args(**{name: wrong}))  # fmt: skip


@pytest.mark.parametrize("bad", [0.5, nan, 2.0, -1.0])
def test_flags_other_than_zero_or_one_are_refused(bad):
    terminated = torch.zeros(T, B)
    terminated[2, 1] = bad
    message = raises(ValueError, rlgrad.gae, "gae()", "'terminated'", "0/1", "(2, 1)",
                     **gae_args(terminated=terminated))  # fmt: skip
    assert re.search(r"got (nan|0\.5|2\.0|-1\.0)", message)
    raises(ValueError, rlgrad.dqn_targets, "dqn_targets()", "'terminated'",
           rewards=torch.zeros(T, B), next_q_target=torch.zeros(T, B, 2),
           terminated=terminated, gamma=0.9)  # fmt: skip


@pytest.mark.parametrize("name", ["rewards", "values", "next_values"])
@pytest.mark.parametrize("bad", [nan, inf, -inf])
def test_gae_names_the_non_finite_input(name, bad):
    x = traj()
    x[3, 2] = bad
    raises(ValueError, rlgrad.gae, "gae()", f"'{name}'", "finite", "(3, 2)",
           **gae_args(**{name: x}))  # fmt: skip


@pytest.mark.parametrize("bad", [nan, inf])
def test_gae_reference_path_names_the_non_finite_input(bad):
    values = traj().requires_grad_(True)  # autograd takes the reference loop
    x = traj()
    x[0, 0] = bad
    raises(ValueError, rlgrad.gae, "gae()", "'next_values'",
           **gae_args(values=values, next_values=x))  # fmt: skip


def test_gae_overflow_is_reported_not_returned():
    rewards = torch.full((T, B), 3e38)
    raises(ValueError, rlgrad.gae, "gae()", "overflowed",
           **gae_args(rewards=rewards, gamma=1.0, lam=1.0))  # fmt: skip


@pytest.mark.parametrize("fn", [rlgrad.discounted_returns, rlgrad.td_errors])
def test_returns_and_td_errors_refuse_non_finite(fn):
    r = traj()
    r[1, 1] = nan
    kwargs = dict(rewards=r, terminated=flags(), gamma=0.9)
    if fn is rlgrad.td_errors:
        kwargs.update(values=traj(), next_values=traj())
    else:
        kwargs.update(truncated=flags())
    raises(ValueError, fn, f"{fn.__name__}()", "'rewards'", **kwargs)


@pytest.mark.parametrize("name", ["gamma", "lam"])
@pytest.mark.parametrize("value", [-0.1, 1.01, nan, inf])
def test_gamma_and_lambda_must_lie_in_unit_interval(name, value):
    raises(ValueError, rlgrad.gae, "gae()", f"'{name}'", **gae_args(**{name: value}))


@pytest.mark.parametrize("clip_eps", [0.0, -0.2, nan])
@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (rlgrad.ppo_clip_loss, dict(log_probs=zeros3, old_log_probs=zeros3, advantages=zeros3)),
        (rlgrad.ppo_objective, dict(ratios=torch.ones(3), advantages=zeros3)),
        (rlgrad.clip_fraction, dict(ratios=torch.ones(3))),
        (rlgrad.value_loss, dict(values=zeros3, returns=zeros3, old_values=zeros3)),
    ],
)
def test_clip_eps_must_be_positive(clip_eps, fn, kwargs):
    raises(ValueError, fn, f"{fn.__name__}()", "'clip_eps'", **kwargs, clip_eps=clip_eps)


EMPTY = torch.zeros(0)


@pytest.mark.parametrize(
    "fn, kwargs",
    [
        (rlgrad.policy_gradient_loss, dict(log_probs=EMPTY, advantages=EMPTY)),
        (rlgrad.ppo_clip_loss, dict(log_probs=EMPTY, old_log_probs=EMPTY, advantages=EMPTY)),
        (rlgrad.approx_kl, dict(log_probs=EMPTY, old_log_probs=EMPTY)),
        (rlgrad.value_loss, dict(values=EMPTY, returns=EMPTY)),
        (
            rlgrad.dqn_loss,
            dict(
                q_values=torch.zeros(0, 2), actions=torch.zeros(0, dtype=torch.long), targets=EMPTY
            ),
        ),
        (rlgrad.clip_fraction, dict(ratios=EMPTY, clip_eps=0.2)),
    ],
)
def test_every_loss_refuses_an_empty_batch_instead_of_returning_nan(fn, kwargs):
    raises(ValueError, fn, f"{fn.__name__}()", "at least one sample", "empty batch", **kwargs)


@pytest.mark.parametrize("fn", [rlgrad.grpo_token_loss, rlgrad.gspo_loss])
@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean", "const_norm"])
@pytest.mark.parametrize("shape", [(0, 5), (2, 0)])
def test_grpo_losses_refuse_an_empty_batch_in_every_aggregation(fn, aggregation, shape):
    # No completion, or completions of no token: seq_mean and const_norm gave 0/0 = NaN, and
    # token_mean a silent 0.
    z = torch.zeros(shape)
    kwargs = dict(log_probs=z, old_log_probs=z, advantages=torch.zeros(shape[0]), mask=z)
    message = raises(
        ValueError, fn, f"{fn.__name__}()", "'log_probs'", **kwargs, aggregation=aggregation
    )
    assert f"at least one sample; got an empty batch of shape {shape}" in message


def test_non_finite_input_has_its_own_error_class():
    # a NaN is a NonFiniteError (a ValueError), so a trainer can tell divergence from a bug
    x = traj()
    x[0, 0] = nan
    with pytest.raises(rlgrad.NonFiniteError, match="'rewards' must be finite"):
        rlgrad.gae(**gae_args(rewards=x))
    with pytest.raises(rlgrad.NonFiniteError, match="'logits' must be finite or -inf"):
        rlgrad.categorical_entropy(torch.tensor([nan, 0.0]))
    assert issubclass(rlgrad.NonFiniteError, ValueError)
    # a shape error is a plain ValueError, not a NonFiniteError
    with pytest.raises(ValueError) as shape_error:
        rlgrad.gae(**gae_args(values=torch.zeros(T)))
    assert not isinstance(shape_error.value, rlgrad.NonFiniteError)
