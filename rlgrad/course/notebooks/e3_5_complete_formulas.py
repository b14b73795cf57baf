import marimo

__generated_with = "0.25.2"
app = marimo.App(
    width="medium",
    app_title="E.3.5 Complete formulas: policy gradient theorem, DQN, GAE, PPO, GRPO",
)


@app.cell
def _():
    import marimo as mo
    import matplotlib.pyplot as plt
    import torch

    import rlgrad
    import rlgrad.tabular
    from rlgrad.course import page

    def f64(values):
        return torch.as_tensor(values, dtype=torch.float64)

    example = page.worked_example
    num = page.number_span
    read_rewards = page.read_rewards

    return example, f64, mo, num, plt, read_rewards, rlgrad, torch


@app.cell
def _(mo):
    mo.md(r"""
    <h1 id="e3-5-title">E.3.5 Complete formulas: the policy gradient theorem, DQN, GAE, PPO and
    GRPO</h1>

    This page of the course module E.3 (calculus and optimization for RL) collects the results of
    the previous pages into the formulas that algorithms actually use, and adds two more: the loss
    of a value network (DQN) and generalized advantage estimation (GAE). Treat it as a reference
    you can play with: every number is computed by [rlgrad](https://github.com/rlgrad/rlgrad)'s
    own functions when the page runs, and every control recomputes what depends on it.

    *Before this page:* E.3.1 to E.3.4.
    """)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 1. The policy gradient theorem

    One sample gives $\nabla_\theta J \approx G_t\,\nabla_\theta\log\pi_\theta(a_t\mid s_t)$.
    The theorem behind it sums over every state and action:

    $$
    \nabla_\theta J(\theta) = \sum_s d^\pi(s) \sum_a q_\pi(s,a)\,\nabla_\theta\pi_\theta(a\mid s).
    $$

    | symbol | meaning |
    |---|---|
    | $d^\pi(s)$ | how often the policy is in state $s$ (discounted visits) |
    | $q_\pi(s,a)$ | the average return after taking $a$ in $s$, then following $\pi$ |
    | $\nabla_\theta\pi_\theta(a\mid s)$ | how the probability of $a$ in $s$ moves with $\theta$ |

    With the log-derivative trick of E.3.4, $\nabla\pi = \pi\,\nabla\log\pi$, the inner sum
    becomes an expectation under the policy, which is what makes it estimable from samples;
    replacing $q_\pi$ by the advantage $A_\pi = q_\pi - V_\pi$ changes nothing in expectation
    (since $\sum_a \pi\,\nabla\log\pi = \nabla \sum_a \pi = 0$) but lowers the variance:

    $$
    \nabla_\theta J(\theta)
    = \mathbb{E}_{s\sim d^\pi,\,a\sim\pi}\!\left[
    q_\pi(s,a)\,\nabla_\theta\log\pi_\theta(a\mid s)\right]
    = \mathbb{E}\!\left[A_\pi(s,a)\,\nabla_\theta\log\pi_\theta(a\mid s)\right].
    $$

    On the two-state MDP of E.3.4 every term is exact: `rlgrad.tabular` solves for $d^\pi$ and
    $q_\pi$, and `rlgrad.gradient` differentiates $\pi$ and $\log\pi$
    (`rlgrad.categorical_log_prob`). Set the policy with the two logits below, each the
    preference for *right* in one state ($\pi(\text{right}\mid s) = \sigma(\theta_s)$).
    """)
    return


@app.cell
def _(mo):
    theta_left = mo.ui.slider(
        start=-3.0, stop=3.0, step=0.1, value=0.0, label="θ in state left", show_value=True
    )
    theta_right = mo.ui.slider(
        start=-3.0, stop=3.0, step=0.1, value=0.0, label="θ in state right", show_value=True
    )
    return theta_left, theta_right


@app.cell
def _(f64, rlgrad, theta_left, theta_right, torch):
    mdp = rlgrad.tabular.two_state()

    def two_state_logits(left, right):
        """θ [S, A]: the preference for right in each state, with 0 for left."""
        return f64([[0.0, left], [0.0, right]])

    pg_logits = two_state_logits(theta_left.value, theta_right.value)
    pg_probs = rlgrad.tabular.policy(pg_logits)  # [S, A]
    pg_values, pg_q = rlgrad.tabular.evaluate(mdp, pg_probs)  # V [S], q [S, A]
    pg_visits = rlgrad.tabular.state_visitation(mdp, pg_probs)  # d [S]

    def _jacobian(function):  # [S, A, S, A]: ∇_θ of function(θ)[s, a]
        def entry(s, a):
            return rlgrad.gradient(lambda t: function(t)[s, a], pg_logits)

        return torch.stack([torch.stack([entry(s, a) for a in (0, 1)]) for s in (0, 1)])

    _states = torch.arange(2).view(2, 1).expand(2, 2)
    _actions = torch.arange(2).view(1, 2).expand(2, 2)
    _grad_probs = _jacobian(rlgrad.tabular.policy)  # ∇π(a|s)
    _scores = _jacobian(lambda t: rlgrad.categorical_log_prob(t[_states], _actions))  # ∇log π
    _advantages = pg_q - pg_values.unsqueeze(-1)
    # the three forms of the theorem, each summed over s and a
    pg_theorem = torch.einsum("s,sa,saij->ij", pg_visits, pg_q, _grad_probs)
    pg_log_form = torch.einsum("s,sa,sa,saij->ij", pg_visits, pg_probs, pg_q, _scores)
    pg_advantage_form = torch.einsum("s,sa,sa,saij->ij", pg_visits, pg_probs, _advantages, _scores)
    pg_reference = rlgrad.tabular.policy_gradient(mdp, pg_logits)
    pg_autograd = rlgrad.gradient(lambda t: rlgrad.tabular.objective(mdp, t), pg_logits)
    return (
        mdp,
        pg_advantage_form,
        pg_autograd,
        pg_log_form,
        pg_logits,
        pg_probs,
        pg_q,
        pg_reference,
        pg_theorem,
        pg_visits,
        two_state_logits,
    )


@app.cell
def _(
    mdp,
    mo,
    num,
    pg_advantage_form,
    pg_autograd,
    pg_log_form,
    pg_logits,
    pg_probs,
    pg_q,
    pg_reference,
    pg_theorem,
    pg_visits,
    plt,
    rlgrad,
    theta_left,
    theta_right,
    torch,
    two_state_logits,
):
    _names = ("left", "right")
    _state_rows = "\n".join(
        f"| *{name}* | {num(f'pgt-d-{name}', pg_visits[s], 4)} "
        f"| {num(f'pgt-pi-{name}', pg_probs[s, 1], 4)} "
        f"| {num(f'pgt-q-{name}-left', pg_q[s, 0], 4)} "
        f"| {num(f'pgt-q-{name}-right', pg_q[s, 1], 4)} |"
        for s, name in enumerate(_names)
    )
    _forms = [
        ("theorem: $\\sum_s d \\sum_a q\\,\\nabla\\pi$", "sum", pg_theorem),
        ("log form: $\\sum_s d \\sum_a \\pi\\, q\\,\\nabla\\log\\pi$", "log", pg_log_form),
        ("advantage form: $q \\to A = q - V$", "adv", pg_advantage_form),
        ("`rlgrad.tabular.policy_gradient`", "lib", pg_reference),
        ("autograd of $J(\\theta)$", "auto", pg_autograd),
    ]
    _gradient_rows = "\n".join(
        f"| {label} | {num(f'pgt-{key}-left', value[0, 1])} "
        f"| {num(f'pgt-{key}-right', value[1, 1])} |"
        for label, key, value in _forms
    )
    # J along the first slider, with the tangent whose slope the theorem gives
    _grid = torch.linspace(-3.0, 3.0, 31, dtype=torch.float64)
    _curve = torch.stack(
        [rlgrad.tabular.objective(mdp, two_state_logits(x, theta_right.value)) for x in _grid]
    )
    _here = rlgrad.tabular.objective(mdp, pg_logits)
    _slope = pg_theorem[0, 1]
    _fig, _ax = plt.subplots(figsize=(6, 3))
    _ax.plot(_grid, _curve, label="J(θ) as θ in left varies")
    _ax.plot(
        _grid,
        _here + _slope * (_grid - theta_left.value),
        "--",
        label="tangent with the theorem's slope",
    )
    _ax.plot([theta_left.value], [_here], "ko")
    _ax.set_ylim(float(_curve.min()) - 0.5, float(_curve.max()) + 0.5)
    _ax.set_xlabel("θ in state left")
    _ax.set_ylabel("J(θ)")
    _ax.legend(fontsize=8)
    _fig.tight_layout()
    mo.vstack(
        [
            mo.hstack([theta_left, theta_right], justify="start"),
            mo.md(
                f"""
$J(\\theta)$ = {num("pgt-J", _here, 4)}

| state $s$ | $d^\\pi(s)$ | $\\pi(\\text{{right}}\\mid s)$ | $q(s, \\text{{left}})$ \
| $q(s, \\text{{right}})$ |
|---|---|---|---|---|
{_state_rows}

| $\\partial J/\\partial\\theta$ for *right* in state | *left* | *right* |
|---|---|---|
{_gradient_rows}

All five rows agree. rlgrad's $d^\\pi$ counts *discounted* visits, so it sums to
$1/(1-\\gamma) = 10$ rather than 1: the course's "frequency" times that constant, which only
rescales the gradient. Moving a logit changes $d$, $q$ and $\\pi$ at once; the gradient still
comes out of the same three factors.
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 2. The loss of a value network (DQN)

    The advantage in a policy gradient is only as good as the value estimate behind it, so a
    second model learns values: the critic, or in DQN the Q-network itself. It learns by making
    its prediction match a target. For a sample $(s_t, a_t, r_{t+1}, s_{t+1})$, DQN's target uses
    a slowly updated copy of the network, with parameters $\theta^-$:

    $$
    y_t = r_{t+1} + \gamma \max_{a'} Q_{\theta^-}(s_{t+1}, a'),
    \qquad
    L(\theta) = \tfrac12\left(Q_\theta(s_t, a_t) - y_t\right)^2 .
    $$

    The target counts as a constant, so the gradient is the prediction error times the
    gradient of the prediction,
    $\nabla_\theta L = (Q_\theta(s_t,a_t) - y_t)\,\nabla_\theta Q_\theta(s_t,a_t)$, and the
    error with the opposite sign is the TD error $\delta_t = y_t - Q_\theta(s_t,a_t)$.
    Below, `rlgrad.dqn_targets`, `rlgrad.dqn_loss` and `rlgrad.td_errors` compute these, and
    autograd gives $\partial L/\partial Q$. The defaults are the DQN example that
    `rlgrad examples` prints.
    """)
    return


@app.cell
def _(example, mo):
    _dqn = example("DQN target, loss and gradient").inputs
    dqn_reward = mo.ui.slider(
        start=-2.0, stop=2.0, step=0.1, value=_dqn["reward"], label="reward r", show_value=True
    )
    dqn_gamma = mo.ui.slider(
        start=0.0, stop=1.0, step=0.01, value=_dqn["gamma"], label="DQN discount γ", show_value=True
    )
    dqn_next_left = mo.ui.slider(
        start=-2.0,
        stop=4.0,
        step=0.1,
        value=_dqn["next_q"][0],
        label="Q⁻(s′, left)",
        show_value=True,
    )
    dqn_next_right = mo.ui.slider(
        start=-2.0,
        stop=4.0,
        step=0.1,
        value=_dqn["next_q"][1],
        label="Q⁻(s′, right)",
        show_value=True,
    )
    dqn_q = mo.ui.slider(
        start=-2.0,
        stop=5.0,
        step=0.1,
        value=_dqn["q_taken"],
        label="prediction Q(s, a)",
        show_value=True,
    )
    dqn_terminal = mo.ui.checkbox(value=False, label="s′ is terminal")
    return dqn_gamma, dqn_next_left, dqn_next_right, dqn_q, dqn_reward, dqn_terminal


@app.cell
def _(
    dqn_gamma,
    dqn_next_left,
    dqn_next_right,
    dqn_q,
    dqn_reward,
    dqn_terminal,
    f64,
    mo,
    num,
    plt,
    rlgrad,
    torch,
):
    _rewards = f64([dqn_reward.value])
    _next_q = f64([[dqn_next_left.value, dqn_next_right.value]])  # [1, A]: Q⁻(s′, ·)
    _terminated = torch.tensor([dqn_terminal.value])
    dqn_target = rlgrad.dqn_targets(_rewards, _next_q, _terminated, dqn_gamma.value)
    _q_values = f64([[dqn_q.value, 0.0]]).requires_grad_(True)  # Q(s, ·); action 0 was taken
    _taken = torch.tensor([0])
    dqn_value = rlgrad.dqn_loss(_q_values, _taken, dqn_target)
    dqn_value.backward()
    dqn_slope = _q_values.grad[0, 0]  # ∂L/∂Q(s, a)
    dqn_delta = rlgrad.td_errors(
        _rewards, f64([dqn_q.value]), _next_q.max(dim=-1).values, _terminated, dqn_gamma.value
    )
    # L as the prediction moves, and its tangent at the current one
    _grid = torch.linspace(-2.0, 5.0, 36, dtype=torch.float64)
    _losses = torch.stack(
        [rlgrad.dqn_loss(f64([[q, 0.0]]), _taken, dqn_target) for q in _grid.tolist()]
    )
    _fig, _ax = plt.subplots(figsize=(6, 3))
    _ax.plot(_grid, _losses, label="L = ½(Q − y)²")
    _ax.plot(
        _grid,
        dqn_value.detach() + dqn_slope * (_grid - dqn_q.value),
        "--",
        label="tangent, slope Q − y",
    )
    _ax.axvline(float(dqn_target[0]), color="gray", linewidth=1, label="target y")
    _ax.plot([dqn_q.value], [dqn_value.item()], "ko")
    _ax.set_ylim(-0.5, float(_losses.max()) + 0.5)
    _ax.set_xlabel("prediction Q(s, a)")
    _ax.legend(fontsize=8)
    _fig.tight_layout()
    mo.vstack(
        [
            mo.hstack([dqn_reward, dqn_gamma, dqn_terminal], justify="start"),
            mo.hstack([dqn_next_left, dqn_next_right, dqn_q], justify="start"),
            mo.md(
                f"""
| quantity | value |
|---|---|
| target $y = r + \\gamma\\max_{{a'}} Q^-(s', a')$ | {num("dqn-target", dqn_target[0])} |
| loss $L = \\tfrac12(Q - y)^2$ | {num("dqn-loss", dqn_value)} |
| gradient $\\partial L/\\partial Q = Q - y$ (autograd) | {num("dqn-slope", dqn_slope)} |
| TD error $\\delta = y - Q$ (`td_errors`) | {num("dqn-delta", dqn_delta[0])} |

A gradient step on $L$ moves the prediction towards the target; the TD error says by how
much and in which direction. Tick "terminal" and the target loses its bootstrap: $y = r$.
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 3. GAE: advantages from accumulated TD errors

    The advantage $\hat A_t$ cannot be observed, only estimated, and the two classic estimates
    sit at opposite ends. Monte Carlo uses the whole return that followed, $G_t - V(s_t)$: no
    bias from the critic, but the noise of every later step. One-step TD uses
    $\delta_t = r_{t+1} + \gamma V(s_{t+1}) - V(s_t)$: little noise, but all the critic's errors.
    ($\delta_t > 0$: the step went better than the critic expected.) GAE blends them with a
    single knob $\lambda \in [0, 1]$, summing the TD errors ahead with weights that decay by
    $\gamma\lambda$ per step:

    $$
    \hat A^{\text{GAE}}_t = \delta_t + (\gamma\lambda)\,\delta_{t+1} +
    (\gamma\lambda)^2\,\delta_{t+2} + \cdots = \sum_{l \ge 0} (\gamma\lambda)^l\,\delta_{t+l}.
    $$

    $\lambda = 0$ keeps only $\delta_t$ (one-step TD); $\lambda = 1$ telescopes into
    $G_t - V(s_t)$ (Monte Carlo). Below is a fixed six-step episode that ends in a terminal
    state; `rlgrad.td_errors` gives the $\delta_t$, `rlgrad.gae` the advantages and
    `rlgrad.discounted_returns` the returns $G_t$.
    """)
    return


@app.cell
def _(f64, torch):
    gae_rewards = f64([1.0, 0.0, 2.0, 0.0, -1.0, 3.0])
    gae_values = f64([0.5, 0.4, 1.0, 1.5, 0.6, 2.0])  # V(s_t)
    gae_next_values = torch.cat([gae_values[1:], f64([0.0])])  # V(s_{t+1}); s_6 is terminal
    gae_terminated = torch.tensor([False] * 5 + [True])
    gae_truncated = torch.zeros(6, dtype=torch.bool)
    return gae_next_values, gae_rewards, gae_terminated, gae_truncated, gae_values


@app.cell
def _(mo):
    gae_gamma = mo.ui.slider(
        start=0.0, stop=1.0, step=0.01, value=0.9, label="GAE discount γ", show_value=True
    )
    gae_lam = mo.ui.slider(start=0.0, stop=1.0, step=0.05, value=0.95, label="λ", show_value=True)
    return gae_gamma, gae_lam


@app.cell
def _(
    gae_gamma,
    gae_lam,
    gae_next_values,
    gae_rewards,
    gae_terminated,
    gae_truncated,
    gae_values,
    mo,
    num,
    plt,
    rlgrad,
):
    _inputs = (gae_rewards, gae_values, gae_next_values, gae_terminated, gae_truncated)
    _gamma, _lam = gae_gamma.value, gae_lam.value
    gae_deltas = rlgrad.td_errors(gae_rewards, gae_values, gae_next_values, gae_terminated, _gamma)
    gae_advantages = rlgrad.gae(*_inputs, _gamma, _lam)
    gae_td = rlgrad.gae(*_inputs, _gamma, 0.0)
    gae_mc = rlgrad.gae(*_inputs, _gamma, 1.0)
    gae_returns = rlgrad.discounted_returns(
        gae_rewards, gae_terminated, gae_truncated, _gamma, next_values=gae_next_values
    )
    _steps = range(6)
    _rows = "\n".join(
        f"| {t} | {gae_rewards[t]:g} | {gae_values[t]:g} "
        f"| {num(f'gae-delta-{t}', gae_deltas[t], 4)} "
        f"| {num(f'gae-adv-{t}', gae_advantages[t], 4)} "
        f"| {num(f'gae-mc-{t}', gae_returns[t] - gae_values[t], 4)} |"
        for t in _steps
    )
    _fig, _ax = plt.subplots(figsize=(6.5, 3.2))
    _ax.plot(_steps, gae_td, "s--", color="tab:blue", label="λ = 0: one-step TD δ_t")
    _ax.plot(_steps, gae_mc, "^--", color="tab:green", label="λ = 1")
    _ax.plot(
        _steps,
        gae_returns - gae_values,
        "x",
        color="black",
        markersize=10,
        label="Monte Carlo G_t − V(s_t)",
    )
    _ax.plot(_steps, gae_advantages, "o-", color="tab:red", linewidth=2, label=f"λ = {_lam:g}")
    _ax.axhline(0, color="black", linewidth=0.5)
    _ax.set_xlabel("step t")
    _ax.set_ylabel("advantage estimate")
    _ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _fig.tight_layout()
    _td_gap = (gae_td - gae_deltas).abs().max()
    _mc_gap = (gae_mc - (gae_returns - gae_values)).abs().max()
    mo.vstack(
        [
            mo.hstack([gae_gamma, gae_lam], justify="start"),
            mo.md(
                f"""
| $t$ | $r_{{t+1}}$ | $V(s_t)$ | $\\delta_t$ | $\\hat A_t$, λ = {_lam:g} | $G_t - V(s_t)$ |
|---|---|---|---|---|---|
{_rows}

The two ends, checked: the largest gap between GAE with λ = 0 and $\\delta_t$ is
<span id="gae-td-gap">{float(_td_gap):.1e}</span>, and between GAE with λ = 1 and
$G_t - V(s_t)$ it is <span id="gae-mc-gap">{float(_mc_gap):.1e}</span>. In between, λ
decides how far ahead the TD errors still count: with
$\\gamma\\lambda = {_gamma * _lam:.3f}$ a TD error $l$ steps ahead is weighted
$({_gamma * _lam:.3f})^l$. Large λ leans towards the whole return (less bias, more variance),
small λ towards the critic (less variance, more bias), which is why PPO usually runs with
λ around 0.95.
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 4. PPO's clipped objective

    With the probability ratio
    $r_t(\theta) = \pi_\theta(a_t\mid s_t)/\pi_{\text{old}}(a_t\mid s_t)$, PPO maximizes

    $$
    L^{\text{CLIP}}(\theta) = \mathbb{E}_t\!\left[\min\!\left(r_t(\theta)\,\hat A_t,\;
    \operatorname{clip}(r_t(\theta), 1-\epsilon, 1+\epsilon)\,\hat A_t\right)\right].
    $$

    Read it one sign at a time. For $\hat A_t > 0$ (a better-than-average action) the objective
    grows with $r$, so the update raises the action's probability, but only up to
    $1 + \epsilon$ times the old one; beyond that the objective is flat. For $\hat A_t < 0$ it
    lowers the probability, down to $1 - \epsilon$ times the old one. The `min` keeps the
    unclipped term where it is *worse*, so a step that went too far the wrong way is still
    corrected. Where the curve is flat its gradient is exactly zero: the sample stops pushing.
    The curve comes from `rlgrad.ppo_objective`, the flat (shaded) regions from autograd.
    """)
    return


@app.cell
def _(mo):
    ppo_eps = mo.ui.slider(
        start=0.05, stop=0.5, step=0.05, value=0.2, label="clip ε", show_value=True
    )
    ppo_advantage = mo.ui.slider(
        start=-2.0, stop=2.0, step=0.25, value=1.0, label="advantage Â", show_value=True
    )
    ppo_ratio = mo.ui.slider(
        start=0.5, stop=1.6, step=0.01, value=1.3, label="ratio r", show_value=True
    )
    return ppo_advantage, ppo_eps, ppo_ratio


@app.cell
def _(f64, mo, num, plt, ppo_advantage, ppo_eps, ppo_ratio, rlgrad, torch):
    _eps, _adv = ppo_eps.value, ppo_advantage.value
    _grid = torch.linspace(0.0, 2.0, 401, dtype=torch.float64).requires_grad_(True)
    _curve = rlgrad.ppo_objective(_grid, torch.full_like(_grid, _adv), _eps)
    (_slopes,) = torch.autograd.grad(_curve.sum(), _grid)
    _flat = (_slopes == 0).tolist()
    _ratio = f64([ppo_ratio.value]).requires_grad_(True)
    ppo_value = rlgrad.ppo_objective(_ratio, f64([_adv]), _eps)
    (ppo_slope,) = torch.autograd.grad(ppo_value.sum(), _ratio)
    _r, _grid_values = _grid.detach(), _curve.detach()
    _fig, _ax = plt.subplots(figsize=(6.5, 3.2))
    _low, _high = float(_grid_values.min()) - 0.3, float(_grid_values.max()) + 0.3
    _ax.fill_between(
        _r, _low, _high, where=_flat, color="gray", alpha=0.2, label="flat: zero gradient"
    )
    _ax.plot(_r, _r * _adv, ":", color="tab:gray", label="unclipped r·Â")
    _ax.plot(_r, _grid_values, color="tab:blue", linewidth=2, label="min(rÂ, clip(r)Â)")
    for _edge in (1 - _eps, 1 + _eps):
        _ax.axvline(_edge, color="tab:orange", linestyle="--", linewidth=1)
    _ax.plot([ppo_ratio.value], [ppo_value.item()], "ko")
    _ax.set_ylim(_low, _high)
    _ax.set_xlabel("ratio r")
    _ax.set_ylabel("objective")
    _ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _fig.tight_layout()
    _is_flat = bool(ppo_slope[0] == 0)
    _meaning = (
        "the clip has taken over, so this sample no longer moves the policy."
        if _is_flat
        else "the gradient is Â, so this sample still moves the policy."
    )
    mo.vstack(
        [
            mo.hstack([ppo_eps, ppo_advantage, ppo_ratio], justify="start"),
            mo.md(
                f"""
| at $r$ = {ppo_ratio.value:g}, $\\hat A$ = {_adv:g}, $\\epsilon$ = {_eps:g} | value |
|---|---|
| clip range $[1-\\epsilon, 1+\\epsilon]$ | [{1 - _eps:g}, {1 + _eps:g}] |
| unclipped $r\\hat A$ | {num("ppo-unclipped", ppo_ratio.value * _adv)} |
| clipped objective (`ppo_objective`) | {num("ppo-objective", ppo_value[0])} |
| gradient $\\partial L/\\partial r$ (autograd) | {num("ppo-slope", ppo_slope[0])} |

At this ratio the sample is <span id="ppo-flat">{"flat" if _is_flat else "active"}</span>:
{_meaning}
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 5. GRPO's group-normalized advantage

    For one question GRPO samples $n$ answers with rewards $r_1, \dots, r_n$ and scores each
    against its group:

    $$
    \mu = \frac1n\sum_{i=1}^n r_i, \qquad
    \sigma = \sqrt{\frac1n\sum_{i=1}^n (r_i-\mu)^2}, \qquad
    \hat A_i = \frac{r_i-\mu}{\sigma+\epsilon}.
    $$

    The small $\epsilon$ keeps the division finite when every answer scored nearly the same.
    The course's example is $r = [2, 4, 10]$ with $\mu \approx 5.33$: the third answer is well
    above the average and gets a positive advantage, the first one a negative one, and no critic
    was needed. Type other rewards (then Enter) and move $\epsilon$ to see when it matters: try
    `1, 1, 1, 1.001`, where $\sigma$ is tiny.
    """)
    return


@app.cell
def _(mo):
    grpo_text = mo.ui.text(value="2, 4, 10", label="GRPO rewards (comma-separated)")
    grpo_eps = mo.ui.slider(
        steps=[0.0, 1e-8, 1e-4, 1e-3, 0.01, 0.1, 1.0],
        value=1e-8,
        label="ε added to σ",
        show_value=True,
    )
    return grpo_eps, grpo_text


@app.cell
def _(example, f64, grpo_eps, grpo_text, mo, num, plt, read_rewards, rlgrad):
    grpo_rewards, _note = read_rewards(grpo_text.value, (2.0, 4.0, 10.0))
    _stats = example("GRPO on three answers").results(rewards=tuple(grpo_rewards))
    grpo_mean, grpo_std = _stats["μ"], _stats["σ"]
    grpo_advantages = rlgrad.group_advantages(f64([grpo_rewards]), eps=grpo_eps.value)[0]
    _cells = " | ".join(num(f"grpo5-adv-{i + 1}", a, 4) for i, a in enumerate(grpo_advantages))
    _answers = list(range(1, len(grpo_rewards) + 1))
    _fig, _ax = plt.subplots(figsize=(4.5, 2.6))
    _ax.bar(
        _answers,
        grpo_advantages.tolist(),
        color=["tab:green" if a > 0 else "tab:red" for a in grpo_advantages.tolist()],
    )
    _ax.axhline(0, color="black", linewidth=0.8)
    _ax.set_xticks(_answers)
    _ax.set_xlabel("answer i")
    _ax.set_ylabel(r"$\hat A_i$")
    _fig.tight_layout()
    mo.vstack(
        [
            mo.hstack([grpo_text, grpo_eps], justify="start"),
            *([mo.md(_note)] if _note else []),
            mo.md(
                f"""
$\\mu$ = {num("grpo5-mu", grpo_mean, 4)}, $\\sigma$ = {num("grpo5-sigma", grpo_std, 4)},
$\\epsilon$ = {grpo_eps.value:g}

| $i$ | {" | ".join(str(i) for i in _answers)} |
|---|{"---|" * len(_answers)}
| $r_i$ | {" | ".join(f"{r:g}" for r in grpo_rewards)} |
| $\\hat A_i$ | {_cells} |
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Summary

    | formula | core expression | what it is for |
    |---|---|---|
    | PG theorem | $\nabla_\theta J=\mathbb{E}[\nabla\log\pi\, q_\pi]$ | basis of policy learning |
    | DQN loss | $L=\tfrac12(Q_\theta-y_t)^2$ | training a value function |
    | GAE | $\hat A_t=\sum_l(\gamma\lambda)^l\delta_{t+l}$ | advantages, bias against variance |
    | PPO clipping | $\min(r_t\hat A_t,\mathrm{clip}(r_t)\hat A_t)$ | a limit on each update |
    | GRPO advantage | $\hat A_i=(r_i-\mu)/(\sigma+\epsilon)$ | comparisons in a group, no critic |

    *Next:* E.3.6, the formula reference and exercises that check your understanding.
    """)
    return


if __name__ == "__main__":
    app.run()
