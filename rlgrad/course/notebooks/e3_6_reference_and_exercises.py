import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="rlgrad: E.3.6 formula reference and exercises")


@app.cell
def _():
    import html

    import marimo as mo
    import matplotlib.pyplot as plt
    import torch

    import rlgrad
    import rlgrad.tabular as tabular
    from rlgrad.course.answers import check_answer
    from rlgrad.tour.examples import EXAMPLES

    return EXAMPLES, check_answer, html, mo, plt, rlgrad, tabular, torch


@app.cell
def _(mo):
    mo.md(r"""
    <h1 id="e3-6-title">E.3.6 Formula reference and exercises</h1>

    This last page of the course module E.3 (calculus and optimization for RL) gathers the formulas
    of E.3.1 to E.3.5 in one table, names three mistakes that are easy to make when you read them,
    and ends with three short exercises. It is a review: if a row of the table looks unfamiliar, the
    earlier page that introduced it is the better place to start.

    Every number on this page is computed when the page runs, by the rlgrad function named next to
    it; none is typed in by hand. The exercises are checked against the very computations that
    `rlgrad examples --section E.3.6` prints in a terminal, so the page and the terminal cannot
    disagree.
    """)
    return


@app.cell
def _(EXAMPLES):
    def example(section, title_start):
        """The worked example of the course that ``rlgrad examples`` prints under this title."""
        for each in EXAMPLES:
            if each.section == section and each.title.startswith(title_start):
                return each
        raise LookupError(f"no example {title_start!r} in section {section}")

    def shown(value, places=4):
        """A number as the page prints it: fixed decimals, an ASCII minus, no "-0"."""
        value = float(value.detach() if hasattr(value, "detach") else value)
        text = f"{value:.{places}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text

    return example, shown


@app.cell
def _(example, rlgrad, tabular, torch):
    # The live value of each row of the reference table, each from the rlgrad function that
    # implements the row's formula.
    f64 = torch.float64

    def sampled_policy_gradient(logits, action, weight):
        """∂/∂z of weight·log π(action) for a softmax over ``logits``: minus the gradient of
        rlgrad's policy-gradient loss on one sample."""
        return rlgrad.gradient(
            lambda z: (
                -rlgrad.policy_gradient_loss(
                    rlgrad.categorical_log_prob(z, torch.tensor(action)),
                    torch.tensor(weight, dtype=f64),
                )
            ),
            torch.tensor(logits, dtype=f64),
        )

    _log_trick = example("E.3.4", "The log-derivative trick").results()
    ref = {
        "ascent": example("E.3.1", "Gradient ascent").results()["θ_k"][1],
        "descent": rlgrad.gradient_descent(
            lambda t: (3 * t - 6) ** 2, torch.tensor(1.0, dtype=f64), lr=0.01, steps=1
        )[1],
        "chain": example("E.3.1", "The chain rule").results()["dL/dθ"],
        "pg-sample": sampled_policy_gradient((0.3, -0.2), 0, 2.0)[0],
        "pg-theorem": tabular.policy_gradient(tabular.two_state(), torch.zeros(2, 2, dtype=f64))[
            1, 1
        ],
        "log-derivative-left": _log_trick["∇π(a)"][0],
        "log-derivative-right": _log_trick["π(a)·∇log π(a)"][0],
        "advantage": sampled_policy_gradient((0.3, -0.2), 0, -0.5)[0],
        "ratio": rlgrad.surrogate_objective(
            torch.tensor([0.65], dtype=f64).log(),
            torch.tensor([0.5], dtype=f64).log(),
            torch.tensor([1.0], dtype=f64),
        ),
        "taylor": example("E.3.4", "Taylor expansion").results()["order 2"],
        "clip": example("Practice", "PPO's flat region").results()["J"].detach(),
        "grpo": example("E.3.4", "GRPO group normalization").results()["Â"][-1],
    }
    return f64, ref, sampled_policy_gradient


@app.cell
def _(mo, ref, shown):
    def _value(key):
        return f'<span id="ref-{key}">{shown(ref[key])}</span>'

    _rows = [
        (
            "Gradient ascent",
            r"$\theta \leftarrow \theta + \alpha \nabla J(\theta)$",
            "climbs the expected return",
            rf"$J=-(\theta-0.8)^2+1$, $\theta_0=0.2$, $\alpha=0.1$: $\theta_1=$ {_value('ascent')}",
            "`rlgrad.gradient_ascent`",
        ),
        (
            "Gradient descent",
            r"$\theta \leftarrow \theta - \alpha \nabla L(\theta)$",
            "shrinks a value error or a model's loss",
            rf"$L=(3\theta-6)^2$, $\theta_0=1$, $\alpha=0.01$: $\theta_1=$ {_value('descent')}",
            "`rlgrad.gradient_descent`",
        ),
        (
            "Chain rule",
            r"$\dfrac{dL}{d\theta}=\dfrac{dL}{dy}\dfrac{dy}{d\theta}$",
            "what backpropagation does, layer after layer",
            rf"$y=3\theta$, $L=(y-6)^2$ at $\theta=1$: $\frac{{dL}}{{d\theta}}=$ {_value('chain')}",
            "`rlgrad.gradient`",
        ),
        (
            "Policy gradient (one sample)",
            r"$\nabla J \approx G_t \nabla \log \pi_\theta(a_t \mid s_t)$",
            "a good return makes the action taken more likely",
            rf"softmax logits $z=(0.3,-0.2)$, $a_t=0$, $G_t=2$: $\partial/\partial z_0=$ "
            f"{_value('pg-sample')}",
            "`rlgrad.policy_gradient_loss`, `rlgrad.categorical_log_prob`",
        ),
        (
            "Policy gradient theorem",
            r"$\nabla_\theta J=\sum_s d^\pi(s)\sum_a \nabla_\theta \pi_\theta(a \mid s)"
            r"\,Q^\pi(s,a)$",
            "how a change of the parameters changes the expected return, exactly",
            r"two-state MDP, uniform policy: $\partial J/\partial\theta[\text{right},"
            rf"\text{{right}}]=$ {_value('pg-theorem')}",
            "`rlgrad.tabular.policy_gradient`",
        ),
        (
            "Log-derivative trick",
            r"$\nabla_\theta \pi=\pi\,\nabla_\theta \log \pi$",
            "turns the gradient of a probability into an average we can sample",
            rf"logits $(0.5,-1,0.2)$, $a=0$: $\partial\pi/\partial z_0=$ "
            rf"{_value('log-derivative-left')}, $\pi\,\partial\log\pi/\partial z_0=$ "
            f"{_value('log-derivative-right')}",
            "`rlgrad.gradient`",
        ),
        (
            "Advantage-weighted update",
            r"$\nabla J \approx \hat A_t \nabla \log \pi_\theta(a_t \mid s_t)$",
            "pushes up actions that beat the average, pushes down the others",
            rf"same sample with $\hat A_t=-0.5$: $\partial/\partial z_0=$ {_value('advantage')}",
            "`rlgrad.policy_gradient_loss`",
        ),
        (
            "PPO probability ratio",
            r"$r_t=\dfrac{\pi_\theta(a_t \mid s_t)}{\pi_{old}(a_t \mid s_t)}$",
            "how far the new policy has moved from the one that collected the data",
            rf"$\pi_{{old}}=0.5$, $\pi_\theta=0.65$: $r_t=$ {_value('ratio')}",
            r"`rlgrad.surrogate_objective` (mean $r_t\hat A_t$, here $\hat A_t=1$)",
        ),
        (
            "Second-order Taylor expansion",
            r"$f(\theta+\Delta)\approx f(\theta)+\nabla f^\top\Delta+\frac12\Delta^\top H\Delta$",
            "curvature, and why a step is trusted only in a small region",
            rf"$f=x^2$ at $x=3$, $\Delta=0.1$: {_value('taylor')} (exactly $3.1^2$)",
            "`rlgrad.taylor`",
        ),
        (
            "PPO clipped term",
            r"$\min(r_t\hat A_t,\ \mathrm{clip}(r_t,1-\epsilon,1+\epsilon)\hat A_t)$",
            "stops rewarding a policy that has already moved far enough",
            rf"$r_t=1.3$, $\hat A_t=1$, $\epsilon=0.2$: {_value('clip')}",
            "`rlgrad.ppo_objective`",
        ),
        (
            "GRPO group advantage",
            r"$\hat A_i=\dfrac{r_i-\mu}{\sigma}$",
            "replaces the critic by a comparison inside a group of answers",
            rf"rewards $(2,4,6,8)$: $\hat A_4=$ {_value('grpo')}",
            "`rlgrad.group_advantages`",
        ),
    ]
    _table = "\n".join(
        f"| **{name}**<br><small>{job}</small> | {formula} | {live}<br><small>{api}</small> |"
        for name, formula, job, live, api in _rows
    )
    mo.md(
        f"""
## The formulas of module E.3

| concept and its job in RL | formula | a live example, computed by rlgrad |
|:---|:---|:---|
{_table}

The example values reuse the worked numbers of the earlier pages, so you can check each row
against the page where the formula first appeared. The two log-derivative numbers agree, which
is the whole trick; the two sampled policy gradients have opposite signs because the weight
changed sign.
"""
    )
    return


@app.cell
def _(mo):
    _questions = [
        (
            "what is maximized?",
            r"expected return $J(\theta)$",
            "the clipped surrogate",
            "the clipped surrogate over the answers' tokens",
        ),
        (
            "where does the direction come from?",
            r"$G_t\nabla\log\pi$",
            r"$\hat A_t\nabla\log\pi$, $\hat A$ from a critic",
            r"$\hat A_i$ from the group's rewards",
        ),
        (
            "what limits the size of the step?",
            "the learning rate",
            "learning rate, clipping of $r_t$, Adam",
            "the same, plus a KL term",
        ),
    ]
    _table = "\n".join("| " + " | ".join(row) + " |" for row in _questions)
    mo.md(
        rf"""
## The thread that ties the module together

The module started with a single number: the slope of $J(\theta)$ says which way to move
$\theta$, and a step of size $\alpha$ along it raises $J$ a little. The chain rule and partial
derivatives carried that idea to networks with many parameters. The policy gradient turned
"make good actions more likely" into $\nabla\log\pi$ weighted by a return, and an advantage made
that weight sharper by comparing each action with the average. PPO's clipping (and optimizers
such as Adam) then kept each step from being too large, and GRPO dropped the critic, ranking
answers against the others of their group instead.

Faced with an optimization formula you have not seen before, look for three things:

| question | REINFORCE | actor-critic / PPO | GRPO |
|:---|:---|:---|:---|
{_table}
"""
    )
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Three common traps

    ### Trap 1: taking the gradient for the update

    A gradient is a direction and a rate of change. What the optimizer actually adds to $\theta$
    is something else: the gradient times a learning rate, often after clipping its norm, and with
    Adam a step rescaled coordinate by coordinate. Below, the gradient is the exact policy gradient
    of the two-state MDP at the uniform policy; move the sliders to see how differently three
    optimizers turn that one gradient into a step.
    """)
    return


@app.cell
def _(mo):
    trap1_lr = mo.ui.slider(
        0.01, 1.0, step=0.01, value=0.1, label="learning rate α", show_value=True
    )
    trap1_max_norm = mo.ui.slider(
        0.1, 3.0, step=0.1, value=0.5, label="gradient clipping: largest norm", show_value=True
    )
    mo.hstack([trap1_lr, trap1_max_norm], justify="start", gap=2)
    return trap1_lr, trap1_max_norm


@app.cell
def _(f64, tabular, torch, trap1_lr, trap1_max_norm):
    two_state = tabular.two_state()
    uniform_logits = torch.zeros(2, 2, dtype=f64)
    true_gradient = tabular.policy_gradient(two_state, uniform_logits)

    def optimizer_step(make_optimizer, max_norm=None):
        """The change that one step of a torch optimizer makes to θ, given ∇J (torch minimizes,
        so it is handed −∇J)."""
        theta = torch.nn.Parameter(uniform_logits.clone())
        optimizer = make_optimizer([theta])
        theta.grad = -true_gradient.clone()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_([theta], max_norm)
        optimizer.step()
        return (theta - uniform_logits).detach()

    trap1_steps = {
        "plain": optimizer_step(lambda p: torch.optim.SGD(p, lr=trap1_lr.value)),
        "clipped": optimizer_step(
            lambda p: torch.optim.SGD(p, lr=trap1_lr.value), trap1_max_norm.value
        ),
        "adam": optimizer_step(lambda p: torch.optim.Adam(p, lr=trap1_lr.value)),
    }
    return optimizer_step, trap1_steps, true_gradient, two_state, uniform_logits


@app.cell
def _(mo, shown, trap1_lr, trap1_max_norm, trap1_steps, true_gradient):
    def _row(name, how, key):
        step = trap1_steps[key]
        return (
            f"| {name} | {how} | <span id='trap1-{key}-norm'>{shown(step.norm())}</span> | "
            f"{shown(step[1, 1])} |"
        )

    _entry = r"$\theta[\text{right},\text{right}]$"
    _rows = "\n".join(
        [
            _row("SGD", "multiplies it by α", "plain"),
            _row(
                "SGD, norm clipped",
                f"rescales it to norm at most {trap1_max_norm.value:g}, then × α",
                "clipped",
            ),
            _row("Adam (first step)", "divides each entry by its own size: about α·sign", "adam"),
        ]
    )
    mo.md(
        f"""
The gradient $\\nabla J$ has norm <span id="trap1-grad-norm">{shown(true_gradient.norm())}</span>
and its entry for $\\theta[\\text{{right}},\\text{{right}}]$ is {shown(true_gradient[1, 1])}.
One step with $\\alpha = {trap1_lr.value:g}$:

| optimizer | what it does to the gradient | norm of the step | step of {_entry} |
|:---|:---|---:|---:|
{_rows}

Same gradient, three different updates: the rest of the formula matters as much as $\\nabla J$.
"""
    )
    return


@app.cell
def _(example, mo, sampled_policy_gradient, shown):
    _flat = example("Practice", "PPO's flat region").results()
    mo.md(
        rf"""
### Trap 2: trusting a large return to make a safe update

A sampled policy gradient grows with the return that weights it. The sample of the table above
($G_t = 2$) moves the logit by {shown(sampled_policy_gradient((0.3, -0.2), 0, 2.0)[0])} per unit
of learning rate; the same sample with $G_t = 20$ moves it by
<span id="trap2-large">{shown(sampled_policy_gradient((0.3, -0.2), 0, 20.0)[0])}</span>. One
lucky episode can push the policy so far that it collapses and never collects the data that would
correct it. PPO's clipped term caps that: once $r_t$ leaves $[1-\epsilon, 1+\epsilon]$ in the
direction the advantage favours, the term is flat. At $r_t = 1.3$, $\hat A_t = 1$,
$\epsilon = 0.2$ its slope is $\partial/\partial r_t =$
<span id="trap2-flat-slope">{shown(_flat["∂J/∂r"])}</span> (`rlgrad.ppo_objective` through
autograd), so that sample stops pulling at all.

### Trap 3: forgetting that the critic can be wrong

The actor's advantage $\hat A_t$ is built from the critic's values, so an error in the critic
becomes an error in the direction the actor moves. GAE($\lambda$) mixes TD errors,
$\hat A_t=\sum_l(\gamma\lambda)^l\hat\delta_{{t+l}}$ with
$\hat\delta_t = r_t+\gamma\hat V(s_{{t+1}})-\hat V(s_t)$. On the two-state MDP (γ = 0.9, uniform
policy) rlgrad can average this estimator over every possible episode exactly:
`rlgrad.tabular.expected_gae_gradient` gives the expected GAE gradient for a critic $\hat V$,
`rlgrad.tabular.policy_gradient` the true one. Their difference is the **bias** that no amount
of sampling removes.

Here the critic overrates the *left* state by $e$ and underrates the *right* one by $e$. (An
error that is the same in every state shifts all advantages alike and cancels out, so only a
difference between states can mislead the actor.)
"""
    )
    return


@app.cell
def _(mo):
    critic_error = mo.ui.slider(
        0.0, 3.0, step=0.25, value=1.0, label="critic error e", show_value=True
    )
    trap3_lam = mo.ui.slider(0.0, 1.0, step=0.05, value=0.0, label="GAE λ", show_value=True)
    mo.hstack([critic_error, trap3_lam], justify="start", gap=2)
    return critic_error, trap3_lam


@app.cell
def _(f64, tabular, torch, two_state, uniform_logits):
    exact_values, _ = tabular.evaluate(two_state, tabular.policy(uniform_logits))

    def critic_gradient(error, lam):
        """The expected GAE(λ) gradient when V̂ = V^π + (e, −e)."""
        critic = exact_values + torch.tensor([error, -error], dtype=f64)
        return tabular.expected_gae_gradient(two_state, uniform_logits, lam, critic)

    return critic_gradient, exact_values


@app.cell
def _(critic_error, critic_gradient, trap3_lam, true_gradient):
    biased_gradient = critic_gradient(critic_error.value, trap3_lam.value)
    bias_norm = float((biased_gradient - true_gradient).norm())
    return bias_norm, biased_gradient


@app.cell
def _(
    bias_norm,
    biased_gradient,
    critic_error,
    exact_values,
    mo,
    shown,
    trap3_lam,
    true_gradient,
):
    def _state_row(index, name):
        truth, seen = float(true_gradient[index, 1]), float(biased_gradient[index, 1])
        agree = "yes" if truth * seen > 0 else "**no: the actor is pushed the wrong way**"
        return (
            f"| {name} | {shown(truth)} | <span id='trap3-{name}'>{shown(seen)}</span> | {agree} |"
        )

    _e, _lam = critic_error.value, trap3_lam.value
    _entry = r"$\partial J/\partial\theta[s,\text{right}]$"
    mo.md(
        f"""
True values $V^\\pi = ({shown(exact_values[0], 3)}, {shown(exact_values[1], 3)})$; the critic
says $\\hat V = ({shown(exact_values[0] + _e, 3)}, {shown(exact_values[1] - _e, 3)})$.

| state $s$ | true {_entry} | expected under GAE({_lam:g}) | same direction? |
|:---|---:|---:|:---|
{_state_row(0, "left")}
{_state_row(1, "right")}

**Bias** $\\lVert \\mathbb E[\\hat g] - \\nabla J \\rVert$ =
<span id="trap3-bias">{shown(bias_norm)}</span> at $e = {_e:g}$, $\\lambda = {_lam:g}$.

The bias grows in proportion to the critic's error, and it shrinks as λ grows: the error enters
through the bootstrapped $\\hat V(s_{{t+1}})$, which GAE weights by $\\gamma(1-\\lambda)$. At
$\\lambda = 1$ the advantage is the Monte-Carlo return minus $\\hat V(s_t)$, the critic is only a
baseline, and the bias is zero for any critic. The price is variance, which this exact average
hides: that is why PPO's usual choice is λ = 0.95 rather than 1.
"""
    )
    return


@app.cell
def _(critic_error, critic_gradient, mo, plt, trap3_lam, true_gradient):
    _errors = [0.25 * k for k in range(13)]
    _fig, _ax = plt.subplots(figsize=(6.4, 3.2))
    _lams = sorted({0.0, 0.5, 0.9, 1.0, trap3_lam.value})
    for _lam in _lams:
        _norms = [float((critic_gradient(e, _lam) - true_gradient).norm()) for e in _errors]
        _current = abs(_lam - trap3_lam.value) < 1e-9
        _ax.plot(
            _errors,
            _norms,
            lw=2.2 if _current else 1.0,
            color="C3" if _current else None,
            alpha=1.0 if _current else 0.55,
            label=f"λ = {_lam:g}" + (" (slider)" if _current else ""),
        )
    _here = float((critic_gradient(critic_error.value, trap3_lam.value) - true_gradient).norm())
    _ax.plot([critic_error.value], [_here], "o", color="C3")
    _ax.set_xlabel("critic error e")
    _ax.set_ylabel("bias of the GAE gradient")
    _ax.set_title("Two-state MDP, γ = 0.9, uniform policy", fontsize=10)
    _ax.legend(fontsize=8, frameon=False)
    _ax.grid(alpha=0.3)
    _fig.tight_layout()
    mo.as_html(_fig)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Short exercises

    Work each one out on paper first, then type your number and press Enter. Answers are checked to
    two decimal places against the value rlgrad computes (`rlgrad examples --section E.3.6` prints
    the same values). Fractions such as `9/5` are accepted too.
    """)
    return


@app.cell
def _(example):
    exercise1 = example("E.3.6", "Exercise 1")
    exercise2 = example("E.3.6", "Exercise 2")
    exercise3 = example("E.3.6", "Exercise 3")
    return exercise1, exercise2, exercise3


@app.cell
def _(html, mo):
    def verdict_span(element_id, verdict):
        """The checker's verdict, with its status in ``data-status`` for the tests."""
        return (
            f'<span id="{element_id}" data-status="{verdict.status}">'
            f"{html.escape(verdict.message)}</span>"
        )

    answer1 = mo.ui.text(label="Exercise 1 answer: θ₁ =", placeholder="a number")
    show1 = mo.ui.switch(label="Show the worked answer to exercise 1")
    answer2_unclipped = mo.ui.text(
        label="Exercise 2 unclipped answer: r·Â =", placeholder="a number"
    )
    answer2_clipped = mo.ui.text(label="Exercise 2 clipped answer =", placeholder="a number")
    clip_eps = mo.ui.slider(
        0.05, 0.6, step=0.05, value=0.2, label="Exercise 2 clip range ε", show_value=True
    )
    show2 = mo.ui.switch(label="Show the worked answer to exercise 2")
    answer3 = mo.ui.text(label="Exercise 3 answer: δ =", placeholder="a number")
    show3 = mo.ui.switch(label="Show the worked answer to exercise 3")
    return (
        answer1,
        answer2_clipped,
        answer2_unclipped,
        answer3,
        clip_eps,
        show1,
        show2,
        show3,
        verdict_span,
    )


@app.cell
def _(answer1, check_answer, exercise1, mo, verdict_span):
    exercise1_results = exercise1.results()
    verdict1 = check_answer(answer1.value, float(exercise1_results["θ₁"]))
    mo.md(
        rf"""
### Exercise 1

Differentiate $J(\theta) = -(\theta-1)^2 + 2$, then take one gradient-ascent step from
$\theta_0 = 0$ with learning rate $\alpha = 0.1$. Where does $\theta$ land?

{answer1} {verdict_span("ex1-verdict", verdict1)}
"""
    )
    return exercise1_results, verdict1


@app.cell
def _(exercise1, exercise1_results, mo, show1, shown):
    _slope, _theta1 = exercise1_results["J'(θ₀)"], exercise1_results["θ₁"]
    _inputs = exercise1.inputs
    mo.vstack(
        [
            show1,
            mo.md(
                rf"""
By the chain rule $J'(\theta) = -2(\theta - 1)$, so $J'({_inputs["theta0"]:g}) =$
<span id="ex1-worked-slope">{shown(_slope)}</span>: positive, so ascent moves $\theta$ to the
right. One step: $\theta_1 = \theta_0 + \alpha J'(\theta_0) = {_inputs["theta0"]:g} +
{_inputs["lr"]:g}\cdot{shown(_slope, 2)} =$ <span id="ex1-worked-theta1">{shown(_theta1)}</span>.
The maximum is at $\theta = 1$; each step of this size covers a fifth of the remaining way.

Computed by `{exercise1.api}`.
"""
            )
            if show1.value
            else mo.md(""),
        ]
    )
    return


@app.cell
def _(
    answer2_clipped,
    answer2_unclipped,
    check_answer,
    clip_eps,
    exercise2,
    mo,
    verdict_span,
):
    exercise2_results = exercise2.results(clip_eps=clip_eps.value)
    verdict2_unclipped = check_answer(answer2_unclipped.value, float(exercise2_results["r·Â"]))
    verdict2_clipped = check_answer(answer2_clipped.value, float(exercise2_results["clipped"]))
    _in = exercise2.inputs
    mo.md(
        rf"""
### Exercise 2

The old policy gave the action probability $\pi_{{old}} = {_in["old_prob"]:g}$, the new one
gives $\pi_\theta = {_in["new_prob"]:g}$, and the advantage is $\hat A = {_in["advantage"]:g}$.
What is the unclipped PPO term $r\hat A$? And the clipped term
$\min(r\hat A, \mathrm{{clip}}(r, 1-\epsilon, 1+\epsilon)\hat A)$ for
$\epsilon = {clip_eps.value:g}$? (The course asks for ε = 0.2; the slider changes ε, and the
checker follows it.)

{clip_eps}

{answer2_unclipped} {verdict_span("ex2-unclipped-verdict", verdict2_unclipped)}

{answer2_clipped} {verdict_span("ex2-clipped-verdict", verdict2_clipped)}
"""
    )
    return exercise2_results, verdict2_clipped, verdict2_unclipped


@app.cell
def _(clip_eps, exercise2, exercise2_results, mo, show2, shown):
    _in = exercise2.inputs
    _ratio = float(exercise2_results["r"])
    _eps = clip_eps.value
    _why = (
        rf"$r$ lies above $1 + \epsilon = {1 + _eps:g}$, so clip turns it into ${1 + _eps:g}$ and "
        rf"the minimum picks ${1 + _eps:g}\cdot{_in['advantage']:g}$"
        if _ratio > 1 + _eps
        else rf"$r$ lies inside $[{1 - _eps:g}, {1 + _eps:g}]$, so clipping changes nothing"
    )
    mo.vstack(
        [
            show2,
            mo.md(
                rf"""
$r = {_in["new_prob"]:g} / {_in["old_prob"]:g} =$
<span id="ex2-worked-ratio">{shown(_ratio)}</span>, so the unclipped term is $r\hat A =$
<span id="ex2-worked-unclipped">{shown(exercise2_results["r·Â"])}</span>. With
$\epsilon = {_eps:g}$, {_why}: the clipped term is
<span id="ex2-worked-clipped">{shown(exercise2_results["clipped"])}</span>. Since $\hat A > 0$,
PPO keeps rewarding a larger $r$ only up to $1+\epsilon$; move ε and watch the clipped term
follow until ε reaches 0.5 and the clip no longer bites.

Computed by `{exercise2.api}`.
"""
            )
            if show2.value
            else mo.md(""),
        ]
    )
    return


@app.cell
def _(answer3, check_answer, exercise3, mo, verdict_span):
    exercise3_results = exercise3.results()
    verdict3 = check_answer(answer3.value, float(exercise3_results["δ"]))
    _in = exercise3.inputs
    mo.md(
        rf"""
### Exercise 3

The critic says $V(s_t) = {_in["value"]:g}$ and $V(s_{{t+1}}) = {_in["next_value"]:g}$; the
step earned $R_{{t+1}} = {_in["reward"]:g}$ and $\gamma = {_in["gamma"]:g}$. What is the one-step
TD error $\delta_t$?

{answer3} {verdict_span("ex3-verdict", verdict3)}
"""
    )
    return exercise3_results, verdict3


@app.cell
def _(exercise3, exercise3_results, mo, show3, shown):
    _in = exercise3.inputs
    mo.vstack(
        [
            show3,
            mo.md(
                rf"""
$\delta_t = R_{{t+1}} + \gamma V(s_{{t+1}}) - V(s_t) = {_in["reward"]:g} + {_in["gamma"]:g}
\cdot {_in["next_value"]:g} - {_in["value"]:g} =$
<span id="ex3-worked-delta">{shown(exercise3_results["δ"])}</span>. It is positive: the step
went better than the critic expected, so an actor-critic would make this action more likely
and the critic would raise $V(s_t)$.

Computed by `{exercise3.api}`.
"""
            )
            if show3.value
            else mo.md(""),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
