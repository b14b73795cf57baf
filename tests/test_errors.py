"""Bad input is refused with a ValueError/TypeError that names function, argument, expectation
and what arrived — never a silent broadcast or a NaN."""

import re

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
        rewards=traj(),
        values=traj(),
        next_values=traj(),
        terminated=flags(),
        truncated=flags(),
        gamma=0.99,
        lam=0.95,
    )
    args.update(override)
    return args


def raises(exc, fn, *fragments, **kwargs):
    with pytest.raises(exc) as info:
        fn(**kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --- the silent [n] · [n, 1] broadcast and other shape mismatches ------------------------------


def test_gae_column_vector_values_are_refused():
    message = raises(
        ValueError,
        rlgrad.gae,
        "gae()",
        "'values'",
        "(128,)",
        "(128, 1)",
        **gae_args(
            rewards=traj((128,)),
            values=traj((128, 1)),
            next_values=traj((128,)),
            terminated=flags((128,)),
            truncated=flags((128,)),
        ),
    )
    assert message == ("gae(): 'values' must have the shape of 'rewards' (128,); got (128, 1)")


@pytest.mark.parametrize("name", ["values", "next_values", "terminated", "truncated"])
def test_gae_every_trajectory_argument_is_shape_checked(name):
    wrong = flags((T,)) if name in ("terminated", "truncated") else traj((T,))
    raises(
        ValueError,
        rlgrad.gae,
        "gae()",
        f"'{name}'",
        f"({T}, {B})",
        f"({T},)",
        **gae_args(**{name: wrong}),
    )


def test_td_errors_and_returns_shape_checked():
    raises(
        ValueError,
        rlgrad.td_errors,
        "td_errors()",
        "'terminated'",
        "(5, 3)",
        "(5,)",
        rewards=traj(),
        values=traj(),
        next_values=traj(),
        terminated=flags((T,)),
        gamma=0.9,
    )
    raises(
        ValueError,
        rlgrad.discounted_returns,
        "discounted_returns()",
        "'next_values'",
        rewards=traj(),
        terminated=flags(),
        truncated=flags(),
        gamma=0.9,
        next_values=traj((T, 1)),
    )


def test_losses_refuse_broadcasting_pairs():
    n = torch.randn(8)
    col = torch.randn(8, 1)
    raises(
        ValueError,
        rlgrad.policy_gradient_loss,
        "policy_gradient_loss()",
        "'advantages'",
        "(8,)",
        "(8, 1)",
        log_probs=n,
        advantages=col,
    )
    raises(
        ValueError,
        rlgrad.ppo_clip_loss,
        "ppo_clip_loss()",
        "'advantages'",
        log_probs=n,
        old_log_probs=n,
        advantages=col,
    )
    raises(
        ValueError,
        rlgrad.ppo_clip_loss,
        "ppo_clip_loss()",
        "'old_log_probs'",
        log_probs=n,
        old_log_probs=col,
        advantages=n,
    )
    raises(
        ValueError,
        rlgrad.ppo_objective,
        "ppo_objective()",
        "'advantages'",
        ratios=n,
        advantages=col,
        clip_eps=0.2,
    )
    raises(ValueError, rlgrad.value_loss, "value_loss()", "'returns'", values=n, returns=col)
    raises(
        ValueError,
        rlgrad.value_loss,
        "value_loss()",
        "'old_values'",
        values=n,
        returns=n,
        old_values=col,
        clip_eps=0.2,
    )
    raises(ValueError, rlgrad.kl_k3, "kl_k3()", "'ref_log_probs'", log_probs=n, ref_log_probs=col)
    raises(
        ValueError,
        rlgrad.approx_kl,
        "approx_kl()",
        "'old_log_probs'",
        log_probs=n,
        old_log_probs=col,
    )


def test_dqn_shapes():
    raises(
        ValueError,
        rlgrad.dqn_targets,
        "dqn_targets()",
        "'next_q_target'",
        "(4, 'A')",
        "(4,)",
        rewards=torch.zeros(4),
        next_q_target=torch.zeros(4),
        terminated=flags((4,)),
        gamma=0.9,
    )
    raises(
        ValueError,
        rlgrad.dqn_targets,
        "dqn_targets()",
        "'next_q_online'",
        rewards=torch.zeros(4),
        next_q_target=torch.zeros(4, 2),
        terminated=flags((4,)),
        gamma=0.9,
        next_q_online=torch.zeros(4, 3),
    )
    raises(
        ValueError,
        rlgrad.dqn_loss,
        "dqn_loss()",
        "'actions'",
        "(4,)",
        "(4, 1)",
        q_values=torch.zeros(4, 2),
        actions=torch.zeros(4, 1, dtype=torch.long),
        targets=torch.zeros(4),
    )
    raises(
        ValueError,
        rlgrad.dqn_loss,
        "dqn_loss()",
        "'targets'",
        q_values=torch.zeros(4, 2),
        actions=torch.zeros(4, dtype=torch.long),
        targets=torch.zeros(4, 1),
    )


def test_dqn_action_range_type_and_kind():
    q = torch.zeros(3, 2)
    raises(
        ValueError,
        rlgrad.dqn_loss,
        "dqn_loss()",
        "'actions'",
        "[0, 2)",
        "got 2",
        q_values=q,
        actions=torch.tensor([0, 1, 2]),
        targets=torch.zeros(3),
    )
    raises(
        ValueError,
        rlgrad.dqn_loss,
        "dqn_loss()",
        "got -1",
        q_values=q,
        actions=torch.tensor([0, -1, 1]),
        targets=torch.zeros(3),
    )
    raises(
        TypeError,
        rlgrad.dqn_loss,
        "dqn_loss()",
        "'actions'",
        "integer",
        "torch.float32",
        q_values=q,
        actions=torch.zeros(3),
        targets=torch.zeros(3),
    )
    raises(
        ValueError,
        rlgrad.dqn_loss,
        "dqn_loss()",
        "'kind'",
        "'l1'",
        q_values=q,
        actions=torch.zeros(3, dtype=torch.long),
        targets=torch.zeros(3),
        kind="l1",
    )


def test_semi_gradient_shapes():
    raises(
        ValueError,
        rlgrad.semi_gradient_td_update,
        "semi_gradient_td_update()",
        "'features'",
        "[*B, 3]",
        weights=torch.zeros(3),
        features=torch.zeros(4, 2),
        next_features=torch.zeros(4, 2),
        rewards=torch.zeros(4),
        terminated=flags((4,)),
        gamma=0.9,
        lr=0.1,
    )
    raises(
        ValueError,
        rlgrad.semi_gradient_td_update,
        "semi_gradient_td_update()",
        "'rewards'",
        "(4,)",
        "(4, 1)",
        weights=torch.zeros(3),
        features=torch.zeros(4, 3),
        next_features=torch.zeros(4, 3),
        rewards=torch.zeros(4, 1),
        terminated=flags((4,)),
        gamma=0.9,
        lr=0.1,
    )


# --- types and dtypes --------------------------------------------------------------------------


def test_non_tensors_and_integer_data_are_type_errors():
    raises(
        TypeError,
        rlgrad.gae,
        "gae()",
        "'rewards'",
        "torch.Tensor",
        "list",
        **gae_args(rewards=[1.0] * T),
    )
    raises(
        TypeError,
        rlgrad.gae,
        "gae()",
        "'rewards'",
        "floating-point",
        "torch.int64",
        **gae_args(rewards=torch.ones(T, B, dtype=torch.long)),
    )
    raises(
        TypeError,
        rlgrad.policy_gradient_loss,
        "'log_probs'",
        "torch.int32",
        log_probs=torch.zeros(3, dtype=torch.int32),
        advantages=torch.zeros(3),
    )
    raises(
        TypeError,
        rlgrad.group_advantages,
        "group_advantages()",
        "'rewards'",
        "ndarray",
        rewards=__import__("numpy").zeros((2, 3)),
    )


def test_mixed_precision_is_a_type_error_with_a_fix():
    raises(
        TypeError,
        rlgrad.gae,
        "gae()",
        "'values'",
        "torch.float32",
        "torch.float64",
        ".to(rewards.dtype)",
        **gae_args(values=traj(dtype=torch.float64)),
    )
    raises(
        TypeError,
        rlgrad.value_loss,
        "value_loss()",
        "'returns'",
        values=torch.zeros(2),
        returns=torch.zeros(2, dtype=torch.float64),
    )


@pytest.mark.parametrize("bad", [0.5, nan, 2.0, -1.0])
def test_flags_other_than_zero_or_one_are_refused(bad):
    terminated = torch.zeros(T, B)
    terminated[2, 1] = bad
    message = raises(
        ValueError,
        rlgrad.gae,
        "gae()",
        "'terminated'",
        "0/1",
        "(2, 1)",
        **gae_args(terminated=terminated),
    )
    assert re.search(r"got (nan|0\.5|2\.0|-1\.0)", message)
    raises(
        ValueError,
        rlgrad.dqn_targets,
        "dqn_targets()",
        "'terminated'",
        rewards=torch.zeros(T, B),
        next_q_target=torch.zeros(T, B, 2),
        terminated=terminated,
        gamma=0.9,
    )


# --- NaN and inf in any input ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["rewards", "values", "next_values"])
@pytest.mark.parametrize("bad", [nan, inf, -inf])
def test_gae_names_the_non_finite_input(name, bad):
    x = traj()
    x[3, 2] = bad
    raises(
        ValueError, rlgrad.gae, "gae()", f"'{name}'", "finite", "(3, 2)", **gae_args(**{name: x})
    )


@pytest.mark.parametrize("bad", [nan, inf])
def test_gae_reference_path_names_the_non_finite_input(bad):
    values = traj().requires_grad_(True)  # autograd takes the reference loop
    x = traj()
    x[0, 0] = bad
    raises(
        ValueError, rlgrad.gae, "gae()", "'next_values'", **gae_args(values=values, next_values=x)
    )


def test_gae_overflow_is_reported_not_returned():
    rewards = torch.full((T, B), 3e38)
    raises(
        ValueError,
        rlgrad.gae,
        "gae()",
        "overflowed",
        **gae_args(rewards=rewards, gamma=1.0, lam=1.0),
    )


def test_returns_and_td_errors_refuse_non_finite():
    r = traj()
    r[1, 1] = nan
    raises(
        ValueError,
        rlgrad.discounted_returns,
        "discounted_returns()",
        "'rewards'",
        rewards=r,
        terminated=flags(),
        truncated=flags(),
        gamma=0.9,
    )
    raises(
        ValueError,
        rlgrad.td_errors,
        "td_errors()",
        "'rewards'",
        rewards=r,
        values=traj(),
        next_values=traj(),
        terminated=flags(),
        gamma=0.9,
    )


@pytest.mark.parametrize(
    ("fn", "kwargs", "name"),
    [
        (rlgrad.policy_gradient_loss, {"log_probs": "bad", "advantages": "ok"}, "log_probs"),
        (rlgrad.policy_gradient_loss, {"log_probs": "ok", "advantages": "bad"}, "advantages"),
        (
            rlgrad.ppo_clip_loss,
            {"log_probs": "ok", "old_log_probs": "bad", "advantages": "ok"},
            "old_log_probs",
        ),
        (rlgrad.ppo_objective, {"ratios": "bad", "advantages": "ok", "clip_eps": 0.2}, "ratios"),
        (rlgrad.value_loss, {"values": "ok", "returns": "bad"}, "returns"),
        (rlgrad.kl_k3, {"log_probs": "ok", "ref_log_probs": "bad"}, "ref_log_probs"),
        (rlgrad.group_advantages, {"rewards": "bad"}, "rewards"),
        (rlgrad.normalize_advantages, {"advantages": "bad"}, "advantages"),
        (rlgrad.clip_fraction, {"ratios": "bad", "clip_eps": 0.2}, "ratios"),
    ],
)
def test_losses_refuse_nan(fn, kwargs, name):
    good = torch.ones(2, 4)
    bad = good.clone()
    bad[1, 2] = nan
    kwargs = {k: bad if v == "bad" else good if v == "ok" else v for k, v in kwargs.items()}
    raises(ValueError, fn, f"{fn.__name__}()", f"'{name}'", "finite", "nan", **kwargs)


def test_entropy_refuses_nan_and_plus_inf_but_accepts_masks():
    raises(
        ValueError,
        rlgrad.categorical_entropy,
        "categorical_entropy()",
        "'logits'",
        "nan",
        logits=torch.tensor([0.0, nan]),
    )
    raises(
        ValueError,
        rlgrad.categorical_entropy,
        "categorical_entropy()",
        "inf",
        logits=torch.tensor([0.0, inf]),
    )
    raises(
        ValueError,
        rlgrad.categorical_entropy,
        "categorical_entropy()",
        "finite entry",
        logits=torch.tensor([-inf, -inf]),
    )
    raises(
        ValueError,
        rlgrad.categorical_entropy,
        "categorical_entropy()",
        "A = 0",
        logits=torch.zeros(2, 0),
    )


def test_calculus_refuses_bad_points_and_functions():
    raises(
        ValueError, rlgrad.gradient, "gradient()", "'x'", "nan", f=lambda x: x, x=torch.tensor(nan)
    )
    raises(
        ValueError,
        rlgrad.gradient,
        "gradient()",
        "'f'",
        "scalar",
        "(3,)",
        f=lambda x: x * 2,
        x=torch.zeros(3),
    )
    raises(
        TypeError, rlgrad.gradient, "gradient()", "'f'", "float", f=lambda x: 1.0, x=torch.zeros(3)
    )
    raises(
        ValueError,
        rlgrad.taylor,
        "taylor()",
        "'order'",
        "3",
        f=lambda x: x.sum(),
        x=torch.zeros(2),
        h=torch.zeros(2),
        order=3,
    )
    raises(
        ValueError,
        rlgrad.taylor,
        "taylor()",
        "'h'",
        "(2,)",
        "(3,)",
        f=lambda x: x.sum(),
        x=torch.zeros(2),
        h=torch.zeros(3),
    )
    raises(
        ValueError,
        rlgrad.gradient_ascent,
        "gradient_ascent()",
        "'lr'",
        "> 0",
        f=lambda x: x.sum(),
        x0=torch.zeros(2),
        lr=0.0,
        steps=3,
    )
    raises(
        ValueError,
        rlgrad.gradient_descent,
        "gradient_descent()",
        "'steps'",
        ">= 0",
        f=lambda x: x.sum(),
        x0=torch.zeros(2),
        lr=0.1,
        steps=-1,
    )
    raises(
        TypeError,
        rlgrad.gradient_descent,
        "gradient_descent()",
        "'steps'",
        "integer",
        f=lambda x: x.sum(),
        x0=torch.zeros(2),
        lr=0.1,
        steps=2.5,
    )
    raises(
        ValueError,
        rlgrad.numerical_gradient,
        "numerical_gradient()",
        "'eps'",
        f=lambda x: x.sum(),
        x=torch.zeros(2),
        eps=-1e-6,
    )


# --- hyperparameters -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gamma", "lam"])
@pytest.mark.parametrize("value", [-0.1, 1.01, nan, inf])
def test_gamma_and_lambda_must_lie_in_unit_interval(name, value):
    raises(ValueError, rlgrad.gae, "gae()", f"'{name}'", **gae_args(**{name: value}))


def test_gamma_must_be_a_number():
    raises(
        TypeError,
        rlgrad.td_errors,
        "td_errors()",
        "'gamma'",
        "str",
        rewards=traj(),
        values=traj(),
        next_values=traj(),
        terminated=flags(),
        gamma="0.9",
    )
    raises(
        TypeError,
        rlgrad.td_errors,
        "td_errors()",
        "'gamma'",
        "bool",
        rewards=traj(),
        values=traj(),
        next_values=traj(),
        terminated=flags(),
        gamma=True,
    )
    raises(
        ValueError,
        rlgrad.dqn_targets,
        "dqn_targets()",
        "'gamma'",
        "1.5",
        rewards=torch.zeros(2),
        next_q_target=torch.zeros(2, 2),
        terminated=flags((2,)),
        gamma=1.5,
    )


@pytest.mark.parametrize("clip_eps", [0.0, -0.2, nan])
def test_clip_eps_must_be_positive(clip_eps):
    raises(
        ValueError,
        rlgrad.ppo_clip_loss,
        "ppo_clip_loss()",
        "'clip_eps'",
        log_probs=torch.zeros(3),
        old_log_probs=torch.zeros(3),
        advantages=torch.zeros(3),
        clip_eps=clip_eps,
    )
    raises(
        ValueError,
        rlgrad.ppo_objective,
        "ppo_objective()",
        "'clip_eps'",
        ratios=torch.ones(3),
        advantages=torch.zeros(3),
        clip_eps=clip_eps,
    )
    raises(
        ValueError,
        rlgrad.clip_fraction,
        "clip_fraction()",
        "'clip_eps'",
        ratios=torch.ones(3),
        clip_eps=clip_eps,
    )
    raises(
        ValueError,
        rlgrad.value_loss,
        "value_loss()",
        "'clip_eps'",
        values=torch.zeros(3),
        returns=torch.zeros(3),
        old_values=torch.zeros(3),
        clip_eps=clip_eps,
    )


def test_value_loss_clip_arguments_go_together():
    raises(
        ValueError,
        rlgrad.value_loss,
        "value_loss()",
        "'old_values' and 'clip_eps'",
        values=torch.zeros(3),
        returns=torch.zeros(3),
        old_values=torch.zeros(3),
    )
    raises(
        ValueError,
        rlgrad.value_loss,
        "value_loss()",
        "'old_values' and 'clip_eps'",
        values=torch.zeros(3),
        returns=torch.zeros(3),
        clip_eps=0.2,
    )


def test_empty_or_too_small_groups():
    raises(
        ValueError,
        rlgrad.group_advantages,
        "group_advantages()",
        "at least 1",
        "(4, 0)",
        rewards=torch.zeros(4, 0),
    )
    raises(
        ValueError,
        rlgrad.group_advantages,
        "group_advantages()",
        "at least 2",
        "unbiased=True",
        rewards=torch.zeros(4, 1),
        unbiased=True,
    )
    raises(
        ValueError,
        rlgrad.group_advantages,
        "group_advantages()",
        "'eps'",
        rewards=torch.zeros(4, 2),
        eps=-1.0,
    )
    raises(
        ValueError,
        rlgrad.group_advantages,
        "group_advantages()",
        "'rewards'",
        "at least 1 dimension",
        rewards=torch.tensor(1.0),
    )
    raises(
        ValueError,
        rlgrad.normalize_advantages,
        "normalize_advantages()",
        "at least 2",
        advantages=torch.zeros(1),
    )


def test_rewards_need_a_time_axis():
    raises(
        ValueError,
        rlgrad.gae,
        "gae()",
        "'rewards'",
        "[T, *B]",
        "()",
        **gae_args(
            rewards=torch.tensor(1.0),
            values=torch.tensor(1.0),
            next_values=torch.tensor(1.0),
            terminated=torch.tensor(False),
            truncated=torch.tensor(False),
        ),
    )
