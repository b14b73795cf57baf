import marimo

__generated_with = "0.25.2"
app = marimo.App(
    width="medium",
    app_title="E.3.4 Derivations: the log-derivative trick, Taylor expansion, GRPO normalization",
)


@app.cell
def _():
    import marimo as mo
    import matplotlib.pyplot as plt
    import torch

    import rlgrad
    import rlgrad.tabular
    from rlgrad.course import page
    from rlgrad.tabular import estimators, sampling

    def f64(values):
        return torch.as_tensor(values, dtype=torch.float64)

    example = page.worked_example
    num = page.number_span
    read_rewards = page.read_rewards

    return (
        estimators,
        example,
        f64,
        mo,
        num,
        plt,
        read_rewards,
        rlgrad,
        sampling,
        torch,
    )


@app.cell
def _(mo):
    mo.md(r"""
    <h1 id="e3-4-title">E.3.4 Derivations: the log-derivative trick, Taylor expansion and
    GRPO's group normalization</h1>

    This page of the course module E.3 (calculus and optimization for RL) derives three tools the
    algorithms of the next page rest on: where the policy gradient's $\nabla\log\pi$ comes from,
    why a step that is too large can no longer be trusted (Taylor expansion), and how GRPO builds
    an advantage without a critic. Every number below is computed by
    [rlgrad](https://github.com/rlgrad/rlgrad) when the page runs; move a control and the numbers
    that depend on it are recomputed.

    *Before this page:* E.3.2, the policy gradient and advantage functions.
    """)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 1. The log-derivative trick

    A policy's probabilities usually come out of a softmax, and differentiating
    $\pi_\theta(a\mid s)$ itself gives a clumsy expression. The chain rule applied to
    $\log \pi$ gives an identity that turns it into something easier:

    $$
    \nabla_\theta \log \pi_\theta(a\mid s)
    = \frac{\nabla_\theta \pi_\theta(a\mid s)}{\pi_\theta(a\mid s)}
    \qquad\Longleftrightarrow\qquad
    \nabla_\theta \pi_\theta(a\mid s) = \pi_\theta(a\mid s)\,\nabla_\theta \log \pi_\theta(a\mid s).
    $$

    For a softmax over logits $z$ the right-hand side is especially simple:
    $\nabla_z \log\pi(a) = e_a - \pi$ (a one-hot vector minus the probabilities). Below, rlgrad's
    autograd (`rlgrad.gradient`) differentiates both sides for a three-action softmax with logits
    $z = (0.5, -1.0, 0.2)$; pick the action.
    """)
    return


@app.cell
def _(mo):
    action_choice = mo.ui.dropdown(
        options={"a = 0": 0, "a = 1": 1, "a = 2": 2},
        value="a = 0",
        label="action a",
    )
    return (action_choice,)


@app.cell
def _(action_choice, example, f64, mo, num, rlgrad, torch):
    logits = f64(example("The log-derivative trick").inputs["logits"])
    _action = torch.tensor(action_choice.value)

    def _log_prob(z):
        return rlgrad.categorical_log_prob(z, _action)

    def _prob(z):
        return rlgrad.categorical_log_prob(z, _action).exp()

    grad_prob = rlgrad.gradient(_prob, logits)  # ∇π(a), by autograd through the softmax
    grad_log_prob = rlgrad.gradient(_log_prob, logits)  # ∇log π(a)
    prob = _prob(logits)
    _rows = "\n".join(
        f"| $\\partial/\\partial z_{i}$ | {num(f'ld-grad-pi-{i}', grad_prob[i])} "
        f"| {grad_log_prob[i]:.6f} "
        f"| {num(f'ld-pi-grad-log-{i}', prob * grad_log_prob[i])} |"
        for i in range(3)
    )
    mo.vstack(
        [
            action_choice,
            mo.md(
                f"""
$\\pi(a) =$ {num("ld-pi", prob)}

| | $\\nabla \\pi(a)$ (autograd) | $\\nabla \\log\\pi(a)$ | $\\pi(a)\\,\\nabla\\log\\pi(a)$ |
|---|---|---|---|
{_rows}

The first and last columns agree to the last digit: that is the identity. The middle column is
the one a learning algorithm actually needs, and it is cheap.
"""
            ),
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### From the identity to the policy gradient

    In one state the objective is the policy's average action value,
    $J(\theta) = \sum_a \pi_\theta(a\mid s)\,Q^\pi(s,a)$. Only $\pi_\theta$ depends on $\theta$, so

    $$
    \nabla_\theta J(\theta) = \sum_a \nabla_\theta\pi_\theta(a\mid s)\,Q^\pi(s,a)
    = \sum_a \pi_\theta(a\mid s)\,\nabla_\theta\log\pi_\theta(a\mid s)\,Q^\pi(s,a)
    = \mathbb{E}_{a\sim\pi_\theta}\!\left[\nabla_\theta\log\pi_\theta(a\mid s)\,Q^\pi(s,a)\right].
    $$

    The weights $\pi_\theta(a\mid s)$ turned the sum into an expectation under the policy, so it
    can be *estimated by sampling*: run the policy, and average
    $\nabla\log\pi(a_t\mid s_t)$ times the return that followed. No transition probabilities are
    needed. Averaged over the states the policy visits, with the sampled return $G_t$ in place of
    $Q^\pi$, this is REINFORCE:

    $$
    \nabla_\theta J(\theta)
    = \mathbb{E}_\pi\!\left[G_t\,\nabla_\theta\log\pi_\theta(a_t\mid s_t)\right].
    $$

    ### Exact against sampled on the two-state MDP

    The course's two-state running example, as `rlgrad.tabular.two_state` models it, has two
    states, *left* and *right*, and two actions. Staying
    left pays 0.5 now; going right pays nothing at first but 1 per step after, and with
    probability 0.1 an action lands in the other state ($\gamma = 0.9$, start in *left*). The
    policy is a softmax over logits $\theta[s, a]$; here $\theta = 0$, the uniform policy.

    `rlgrad.tabular.policy_gradient` computes $\nabla J$ exactly from the MDP's tables. The
    REINFORCE estimate samples episodes of the policy (88 steps each: anything later would weigh
    less than $\gamma^{88} < 10^{-4}$), weights each $\nabla\log\pi(a_t\mid s_t)$ by
    $\gamma^t G_t$ and averages over $N$ episodes. (The $\gamma^t$ is what makes the average
    unbiased for the *discounted* objective: a visit at step $t$ counts $\gamma^t$ in $J$.)
    Each row of $\nabla J$ sums to zero, so one number per state says everything: the slope of
    $J$ in the logit of choosing *right*.
    """)
    return


@app.cell
def _(estimators, f64, rlgrad, sampling, torch):
    # The episodes are drawn once, with a fixed seed, so the page is the same on every load; the
    # slider below averages the first N of them.
    two_state = rlgrad.tabular.two_state()
    theta_uniform = torch.zeros(2, 2, dtype=torch.float64)
    exact_gradient = rlgrad.tabular.policy_gradient(two_state, theta_uniform)
    max_episodes = 3000
    _horizon = sampling.default_horizon(two_state.gamma)
    _episodes = sampling.sample_episodes(
        two_state,
        theta_uniform,
        max_episodes,
        _horizon,
        torch.Generator().manual_seed(0),
    )
    _weights = estimators.estimator_weights(two_state, theta_uniform, _episodes, lams=())
    episode_gradients = estimators.episode_gradients(
        theta_uniform, _episodes, _weights["reinforce"].unsqueeze(0)
    )[0]  # [N, S, A]: one REINFORCE gradient per episode
    running_means = episode_gradients.cumsum(dim=0) / f64(range(1, max_episodes + 1)).view(
        -1, 1, 1
    )  # [N, S, A]: the estimate from the first n episodes
    return exact_gradient, max_episodes, running_means


@app.cell
def _(mo):
    episodes_slider = mo.ui.slider(
        steps=[10, 30, 100, 300, 1000, 3000],
        value=30,
        label="episodes N",
        show_value=True,
    )
    return (episodes_slider,)


@app.cell
def _(
    episodes_slider,
    exact_gradient,
    max_episodes,
    mo,
    num,
    plt,
    running_means,
):
    _n = episodes_slider.value
    sampled_gradient = running_means[_n - 1]
    _error = (sampled_gradient - exact_gradient).norm()
    _rows = "\n".join(
        f"| state *{_name}* | {num(f'pg-exact-{_name}', exact_gradient[_s, 1])} "
        f"| {num(f'pg-sampled-{_name}', sampled_gradient[_s, 1])} |"
        for _s, _name in enumerate(["left", "right"])
    )
    _fig, _ax = plt.subplots(figsize=(7, 3.2))
    _counts = range(1, max_episodes + 1)
    for _s, (_name, _color) in enumerate([("left", "tab:blue"), ("right", "tab:orange")]):
        _ax.plot(
            _counts,
            running_means[:, _s, 1],
            color=_color,
            label=f"sampled, state {_name}",
        )
        _ax.axhline(
            exact_gradient[_s, 1],
            color=_color,
            linestyle="--",
            label=f"exact, state {_name}",
        )
    _ax.axvline(_n, color="gray", linewidth=1)
    _ax.set_xscale("log")
    _ax.set_ylim(-3, 3)
    _ax.set_xlabel("episodes N")
    _ax.set_ylabel(r"$\partial J/\partial\theta[s,\mathrm{right}]$")
    _ax.legend(fontsize=8, ncol=2)
    _fig.tight_layout()
    mo.vstack(
        [
            episodes_slider,
            mo.md(
                f"""
| $\\partial J / \\partial\\theta[s, \\text{{right}}]$ | exact | REINFORCE, N = {_n} |
|---|---|---|
{_rows}

Distance $\\lVert \\hat g - \\nabla J\\rVert$ = {num("pg-error", _error)}.

The exact gradient says: in *left*, choosing right is (slightly) worse under the uniform policy,
in *right* it is clearly better. With a few episodes the estimate can even get the sign wrong;
it settles on the exact value roughly as $1/\\sqrt N$. That noise is why practical algorithms
subtract a baseline or use an advantage (next page).
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 2. Taylor expansion: how far a slope can be trusted

    Gradient methods use the slope at the current point and step along it. A first-order Taylor
    expansion is exactly that model of the function; a second-order one adds the curvature:

    $$
    f(x+h) \approx f(x) + f'(x)\,h
    \qquad\text{and}\qquad
    f(x+h) \approx f(x) + f'(x)\,h + \tfrac12 f''(x)\,h^2 .
    $$

    The course's example is $f(x) = x^2$ at $x = 3$ with $h = 0.1$: the truth is
    $3.1^2 = 9.61$, the first-order model gives $9 + 6\cdot 0.1 = 9.6$ and adding
    $\tfrac12\cdot 2\cdot 0.1^2$ gives $9.61$. Move $h$ and watch the gap between the straight
    line and the curve grow like $h^2$ (for $x^2$ the second-order model is exact; pick another
    function to see it fail too). The numbers come from `rlgrad.taylor`, which differentiates
    $f$ with autograd.
    """)
    return


@app.cell
def _(mo, torch):
    functions = {
        "x² (the course's example)": lambda t: t**2,
        "x³": lambda t: t**3,
        "sin x": torch.sin,
    }
    function_choice = mo.ui.dropdown(
        options=list(functions),
        value="x² (the course's example)",
        label="function f",
    )
    h_slider = mo.ui.slider(
        start=-2.0,
        stop=2.0,
        step=0.05,
        value=0.1,
        label="step h",
        show_value=True,
    )
    return function_choice, functions, h_slider


@app.cell
def _(f64, function_choice, functions, h_slider, mo, num, plt, rlgrad, torch):
    _f = functions[function_choice.value]
    taylor_x = f64(3.0)
    _h = f64(h_slider.value)
    first_order = rlgrad.taylor(_f, taylor_x, _h, order=1)
    second_order = rlgrad.taylor(_f, taylor_x, _h, order=2)
    true_value = _f(taylor_x + _h)
    _first = num("taylor-first", first_order)
    _first_error = num("taylor-first-error", true_value - first_order)
    _second = num("taylor-second", second_order)
    _second_error = num("taylor-second-error", true_value - second_order)
    _steps = torch.linspace(-2.0, 2.0, 41, dtype=torch.float64)
    _curves = {
        "true f(3 + h)": (_f(taylor_x + _steps), "-"),
        "first order": (
            torch.stack([rlgrad.taylor(_f, taylor_x, s, order=1) for s in _steps]),
            "--",
        ),
        "second order": (
            torch.stack([rlgrad.taylor(_f, taylor_x, s, order=2) for s in _steps]),
            ":",
        ),
    }
    _fig, _ax = plt.subplots(figsize=(6, 3.2))
    for _label, (_values, _style) in _curves.items():
        _ax.plot(_steps, _values, _style, label=_label, linewidth=2)
    _ax.plot([_h], [true_value], "ko")
    _ax.plot([_h], [first_order], "o", color="tab:orange")
    _ax.set_xlabel("h")
    _ax.set_ylabel("f(3 + h)")
    _ax.legend(fontsize=8)
    _fig.tight_layout()
    mo.vstack(
        [
            mo.hstack([function_choice, h_slider], justify="start"),
            mo.md(
                f"""
| at $x = 3$, $h$ = {h_slider.value:g} | value | error against the truth |
|---|---|---|
| first order $f(x) + f'(x)h$ | {_first} | {_first_error} |
| second order $+\\,\\tfrac12 f''(x)h^2$ | {_second} | {_second_error} |
| true $f(x + h)$ | {num("taylor-true", true_value)} | |
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Many parameters: the Hessian

    With a parameter vector the second derivative becomes the Hessian matrix $H$, which says how
    the function bends along every pair of directions:

    $$
    f(\theta + \Delta\theta) \approx f(\theta) + \nabla f(\theta)^\top \Delta\theta +
    \tfrac12\, \Delta\theta^\top H\, \Delta\theta .
    $$

    For instance $f(\theta) = \theta_1^2 + \theta_1\theta_2 + \theta_2^2$ has
    $H = \begin{pmatrix}2 & 1\\ 1 & 2\end{pmatrix}$ everywhere; `rlgrad.hessian` and
    `rlgrad.taylor` take vectors just as they take numbers.
    """)
    return


@app.cell
def _(f64, mo, num, rlgrad):
    def _bowl(t):
        return t[0] ** 2 + t[0] * t[1] + t[1] ** 2

    _theta, _step = f64([1.0, 2.0]), f64([0.1, -0.2])
    _h = rlgrad.hessian(_bowl, _theta)
    _first = rlgrad.taylor(_bowl, _theta, _step, order=1)
    _second = rlgrad.taylor(_bowl, _theta, _step, order=2)
    mo.md(
        f"""
At $\\theta = (1, 2)$ with $\\Delta\\theta = (0.1, -0.2)$: `rlgrad.hessian` gives
$H = \\begin{{pmatrix}}{_h[0, 0]:g} & {_h[0, 1]:g}\\\\ {_h[1, 0]:g} & {_h[1, 1]:g}\\end{{pmatrix}}$,
the first-order model is {num("hessian-first", _first, 4)},
the second-order one {num("hessian-second", _second, 4)}
and the truth $f(\\theta + \\Delta\\theta)$ = {num("hessian-true", _bowl(_theta + _step), 4)}.
"""
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### The PPO ratio, expanded

    PPO and TRPO worry about exactly this: an update that is large enough for the first-order
    picture to be wrong. Their central quantity is the probability ratio of a sampled action under
    the new and the old policy,

    $$
    r_t(\theta) = \frac{\pi_\theta(a_t\mid s_t)}{\pi_{\theta_{\text{old}}}(a_t\mid s_t)}
    \approx 1 + \nabla_\theta r_t^\top(\theta - \theta_{\text{old}}) +
    \tfrac12(\theta - \theta_{\text{old}})^\top \nabla_\theta^2 r_t\,
    (\theta - \theta_{\text{old}}).
    $$

    | term | what it says |
    |---|---|
    | $1$ | before the update the two policies are the same, so the ratio is 1 |
    | first order | the linear change a small step causes |
    | second order | the curvature's extra change, which matters once the step grows |

    Below, the same three-action softmax as in section 1 takes a step of length $t$ in the
    direction that raises the probability of action 0 (along $\nabla\log\pi(0)$).
    `rlgrad.ratio_taylor` gives each action's first- and second-order models of $r$ (by
    forward-mode autograd, no Hessian is formed), and the true ratio is
    $\exp(\log\pi_{\text{new}} - \log\pi_{\text{old}})$ from `rlgrad.categorical_log_prob`. The
    shaded band is PPO's clip range $[1 - \epsilon, 1 + \epsilon]$ with $\epsilon = 0.2$.
    """)
    return


@app.cell
def _(f64, rlgrad, torch):
    ratio_theta = f64([0.5, -1.0, 0.2])  # the logits of section 1: θ_old
    ratio_actions = torch.tensor([0, 1, 2])  # one sample of each action

    def ratio_log_probs(theta):  # [3]: log π_θ(a_i) for the three samples
        return rlgrad.categorical_log_prob(theta.expand(3, 3), ratio_actions)

    _up = rlgrad.gradient(lambda t: rlgrad.categorical_log_prob(t, torch.tensor(0)), ratio_theta)
    ratio_direction = _up / _up.norm()  # a unit step that raises π(0)

    def ratio_models(step_size):
        """(true ratios, first order, second order), each [3], after a step of this length."""
        step = step_size * ratio_direction
        models = rlgrad.ratio_taylor(ratio_log_probs, ratio_theta, step)
        true = torch.exp(ratio_log_probs(ratio_theta + step) - ratio_log_probs(ratio_theta))
        return true, models.first, models.second

    ratio_grid = torch.linspace(0.0, 2.5, 51, dtype=torch.float64)
    ratio_curves = [
        torch.stack(parts) for parts in zip(*map(ratio_models, ratio_grid), strict=True)
    ]
    # [3 kinds][51 steps, 3 actions]. The first-order model is off once its predicted change
    # of the ratios, first − 1, misses the true change r − 1 by more than 10% (vector norms).
    _true, _first, _ = ratio_curves
    _off = (_first - _true).norm(dim=1) > 0.1 * (_true - 1).norm(dim=1)
    first_order_breaks = float(ratio_grid[_off][0]) if bool(_off.any()) else None
    _outside = ((_true - 1).abs() > 0.2).any(dim=1)  # some ratio has left [1 − ε, 1 + ε]
    clip_engages = float(ratio_grid[_outside][0])
    return (
        clip_engages,
        first_order_breaks,
        ratio_curves,
        ratio_grid,
        ratio_models,
    )


@app.cell
def _(mo):
    step_slider = mo.ui.slider(
        start=0.0,
        stop=2.5,
        step=0.05,
        value=0.3,
        label="step length t",
        show_value=True,
    )
    return (step_slider,)


@app.cell
def _(
    clip_engages,
    first_order_breaks,
    mo,
    num,
    plt,
    ratio_curves,
    ratio_grid,
    ratio_models,
    step_slider,
):
    _t = step_slider.value
    _true, _first, _second = ratio_models(_t)
    # how far the first-order change of the ratios, first − 1, misses the true change r − 1
    _miss = float((_first - _true).norm() / (_true - 1).norm()) if _t > 0 else 0.0
    _verdict = (
        "trustworthy: its predicted change of the ratios is off by "
        if _miss <= 0.1
        else "**not trustworthy**: its predicted change of the ratios is off by "
    ) + f'<span id="ratio-miss">{100 * _miss:.1f}</span>%'
    _rows = "\n".join(
        f"| {_a} | {num(f'ratio-true-{_a}', _true[_a], 4)} "
        f"| {num(f'ratio-first-{_a}', _first[_a], 4)} "
        f"| {num(f'ratio-second-{_a}', _second[_a], 4)} |"
        for _a in range(3)
    )
    _fig, _ax = plt.subplots(figsize=(8, 3.4))
    _ax.axhspan(0.8, 1.2, color="gray", alpha=0.15, label="clip range 1 ± 0.2")
    for _a, _color in enumerate(["tab:blue", "tab:orange", "tab:green"]):
        _ax.plot(ratio_grid, ratio_curves[0][:, _a], "-", color=_color, label=f"true, a = {_a}")
        _ax.plot(ratio_grid, ratio_curves[1][:, _a], "--", color=_color)
        _ax.plot(ratio_grid, ratio_curves[2][:, _a], ":", color=_color)
    _ax.plot([], [], "k--", label="first order")
    _ax.plot([], [], "k:", label="second order")
    _ax.axvline(_t, color="gray", linewidth=1)
    if first_order_breaks is not None:
        _ax.axvline(first_order_breaks, color="tab:red", linestyle="-.", linewidth=1)
        _ax.text(first_order_breaks, 2.0, " first order off by > 10%", color="tab:red", fontsize=8)
    _ax.axhline(0, color="black", linewidth=0.5)
    _ax.set_xlabel("step length t")
    _ax.set_ylabel("ratio r")
    _ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _fig.tight_layout()
    _breaks = (
        f"On this grid the first-order model stops being trustworthy from t ≈ "
        f"{first_order_breaks:g}."
        if first_order_breaks is not None
        else "On this grid the first-order model stays within 10%."
    )
    mo.vstack(
        [
            step_slider,
            mo.md(
                f"""
| action | true ratio | first order | second order |
|---|---|---|---|
{_rows}

At t = {_t:g} the first-order model is {_verdict}. {_breaks} A ratio leaves the clip band
already at t ≈ {clip_engages:g}: PPO stops rewarding a change once a ratio has moved by ε,
while the linear picture the update relies on still roughly holds. Push $t$ further and the
first-order model of action 2 even predicts a negative ratio, a negative probability, which no
policy can have.
"""
            ),
            _fig,
        ]
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## 3. GRPO's group normalization

    Every method so far needs an advantage estimate $\hat A$. PPO gets it from a critic, a second
    network that has to be trained as well. GRPO does without one: for one prompt it samples a
    *group* of answers and scores each against the others, like grading a test on the curve. With
    rewards $r_1, \dots, r_G$:

    $$
    \mu = \frac1G\sum_{i=1}^G r_i, \qquad
    \sigma = \sqrt{\frac1G\sum_{i=1}^G (r_i-\mu)^2}, \qquad
    \hat A_i = \frac{r_i - \mu}{\sigma}.
    $$

    Subtracting $\mu$ says whether an answer is better or worse than its group; dividing by
    $\sigma$ puts questions with large and small reward spreads on one scale, so what counts is
    the rank within the group, not the absolute score. Note the *population* $\sigma$ (divide by
    $G$). The course's example is $r = [2, 4, 6, 8]$: $\mu = 5$, $\sigma = \sqrt5$ and
    $\hat A_4 = 3/\sqrt5 \approx 1.34$.

    Type your own rewards (comma-separated, then Enter) and choose how many of them form the
    group. The numbers come from `rlgrad.group_advantages` (through the course's worked example in
    `rlgrad.tour.examples`).
    """)
    return


@app.cell
def _(mo):
    rewards_text = mo.ui.text(
        value="2, 4, 6, 8",
        label="Group rewards (comma-separated)",
    )
    return (rewards_text,)


@app.cell
def _(read_rewards, rewards_text):
    typed_rewards, rewards_problem = read_rewards(rewards_text.value, (2.0, 4.0, 6.0, 8.0))
    return rewards_problem, typed_rewards


@app.cell
def _(mo, typed_rewards):
    group_size = mo.ui.slider(
        start=2,
        stop=len(typed_rewards),
        step=1,
        value=len(typed_rewards),
        label="group size G (the first G rewards)",
        show_value=True,
    )
    return (group_size,)


@app.cell
def _(
    example,
    group_size,
    mo,
    num,
    plt,
    rewards_problem,
    rewards_text,
    typed_rewards,
):
    group = typed_rewards[: group_size.value]
    _results = example("GRPO group normalization").results(rewards=tuple(group))
    group_mean, group_std, group_advantages = _results["μ"], _results["σ"], _results["Â"]
    _cells = " | ".join(num(f"grpo-adv-{i + 1}", a, 4) for i, a in enumerate(group_advantages))
    _fig, (_left, _right) = plt.subplots(1, 2, figsize=(8, 2.8))
    _answers = range(1, len(group) + 1)
    _left.bar(_answers, group, color="tab:gray")
    _left.axhline(float(group_mean), color="black", linestyle="--", label="μ")
    _left.axhspan(
        float(group_mean - group_std),
        float(group_mean + group_std),
        color="tab:blue",
        alpha=0.12,
        label="μ ± σ",
        zorder=0,
    )
    _left.set_title("rewards $r_i$", fontsize=10)
    _left.legend(fontsize=8)
    _right.bar(
        _answers,
        group_advantages.tolist(),
        color=["tab:green" if a > 0 else "tab:red" for a in group_advantages.tolist()],
    )
    _right.axhline(0, color="black", linewidth=0.8)
    _right.set_title(r"advantages $\hat A_i$", fontsize=10)
    for _axis in (_left, _right):
        _axis.set_xticks(list(_answers))
        _axis.set_xlabel("answer i")
    _fig.tight_layout()
    mo.vstack(
        [
            mo.hstack([rewards_text, group_size], justify="start"),
            *([mo.md(rewards_problem)] if rewards_problem else []),
            mo.md(
                f"""
Group: {", ".join(f"{r:g}" for r in group)}

$\\mu$ = {num("grpo-mu", group_mean, 4)}, $\\sigma$ = {num("grpo-sigma", group_std, 4)}

| $i$ | {" | ".join(str(i) for i in _answers)} |
|---|{"---|" * len(group)}
| $\\hat A_i$ | {_cells} |

The advantages always average to zero and have (population) standard deviation one: half of
the signal pushes answers up, half pushes them down. If every answer scores the same,
$\\sigma = 0$ and rlgrad returns all-zero advantages: the group carries no signal.
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

    | tool | core formula | what it is for |
    |---|---|---|
    | log-derivative trick | $\nabla\pi = \pi\,\nabla\log\pi$ | a gradient you can sample |
    | Taylor expansion | $f(x+h)\approx f(x)+f'(x)h+\tfrac12 f''(x)h^2$ | how far a step is safe |
    | GRPO normalization | $\hat A_i=(r_i-\mu)/\sigma$ | advantages without a critic |

    *Next:* E.3.5, the complete formulas of PG, DQN, GAE, PPO and GRPO.
    """)
    return


if __name__ == "__main__":
    app.run()
