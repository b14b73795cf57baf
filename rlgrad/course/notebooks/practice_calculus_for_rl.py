import marimo

__generated_with = "0.25.2"
app = marimo.App(
    width="medium",
    app_title="Calculus for RL: practice questions and graded exercises",
)


@app.cell
def _():
    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import rlgrad
    from rlgrad import tabular
    from rlgrad.course.answers import check_answer

    def f64(value):
        return torch.as_tensor(value, dtype=torch.float64)

    def show(value, places=4):
        """A number as the page prints it: fixed places, a plain minus, no '-0'."""
        text = f"{float(value):.{places}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text

    def verdict(field, expected, places, key):
        """The page's verdict on a typed answer, checked against rlgrad's value."""
        said = check_answer(field.value, float(expected), places)
        return mo.md(f'<span id="{key}-verdict" data-status="{said.status}">{said.message}</span>')

    def answer_field(label):
        return mo.ui.text(label=label, placeholder="e.g. 1.5 or 3/4")

    return answer_field, f64, mo, plt, rlgrad, show, tabular, torch, verdict


@app.cell
def _(mo):
    mo.md(r"""
    <h1 id="practice-title">Calculus for RL: practice questions and graded exercises</h1>

    The calculus an RL practitioner uses every day is short: derivatives, the chain rule and
    partial derivatives. This page goes over the three, then works through the course's
    practice questions and its graded exercises. Type your answer into a field and press
    Enter: the page checks it against the value [rlgrad](https://github.com/rlgrad/rlgrad)
    computes. Each exercise's working is folded away below its field, for when you are done.

    ## Core concepts

    ### Derivatives

    The derivative $f'(x) = \frac{df}{dx}$ is the slope of $f$ at $x$: how fast $f$ changes
    when $x$ moves a little. The rules this page leans on:

    $$\frac{d}{dx}x^n = n x^{n-1}, \qquad \frac{d}{dx}e^x = e^x, \qquad
    \frac{d}{dx}\ln x = \frac{1}{x}, \qquad
    \frac{d}{dx}\ln(1 + e^x) = \frac{e^x}{1 + e^x} = \sigma(x).$$

    The last one says that the slope of the *softplus* $\ln(1 + e^x)$ is the *sigmoid*
    $\sigma(x)$, the S-shaped curve behind logistic policies. Check it at any $x$: the slope
    comes from automatic differentiation (`rlgrad.gradient`) and from central differences
    (`rlgrad.numerical_gradient`), the sigmoid from `torch.sigmoid`.
    """)
    return


@app.cell
def _(mo):
    softplus_x = mo.ui.slider(
        start=-4.0, stop=4.0, step=0.1, value=0.7, label="x for the softplus", show_value=True
    )
    return (softplus_x,)


@app.cell
def _(f64, mo, plt, rlgrad, show, softplus_x, torch):
    def softplus(x):
        return torch.log1p(torch.exp(x))

    _x = f64(softplus_x.value)
    softplus_slope = float(rlgrad.gradient(softplus, _x))
    softplus_numerical = float(rlgrad.numerical_gradient(softplus, _x))
    sigmoid_value = float(torch.sigmoid(_x))
    _grid = torch.linspace(-4, 4, 161, dtype=torch.float64)
    _fig, _ax = plt.subplots(figsize=(5.5, 2.8))
    _ax.plot(_grid, softplus(_grid), color="tab:blue", label="softplus ln(1+eˣ)")
    _ax.plot(_grid, torch.sigmoid(_grid), color="tab:green", label="sigmoid σ(x)")
    _here = float(softplus(_x))
    _ax.plot(_grid, _here + softplus_slope * (_grid - _x), "--", color="tab:orange", lw=1)
    _ax.plot([float(_x)], [_here], "o", color="tab:orange")
    _ax.plot([float(_x)], [sigmoid_value], "o", color="tab:green")
    _ax.set_ylim(-0.5, 4.5)
    _ax.set_xlabel("x")
    _ax.legend(fontsize=8, loc="upper left")
    _fig.tight_layout()
    mo.vstack(
        [
            softplus_x,
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    At $x =$ <span id="softplus-x">{softplus_x.value:g}</span>:

    slope of the softplus, autograd:
    <span id="softplus-slope">{show(softplus_slope, 6)}</span>

    the same by central differences:
    <span id="softplus-numerical">{show(softplus_numerical, 6)}</span>

    $\\sigma(x)$: <span id="sigmoid-value">{show(sigmoid_value, 6)}</span>

    The dashed tangent's slope is the height of the green dot.
    """
                    ),
                ],
                widths=[3, 2],
                align="center",
            ),
        ]
    )
    return sigmoid_value, softplus_numerical, softplus_slope


@app.cell
def _(mo):
    mo.md(r"""
    **Where RL uses it.** Losses and objectives are differentiated with respect to the
    parameters. Minimizing a loss is gradient *descent*,
    $\theta \leftarrow \theta - \alpha \frac{\partial L}{\partial\theta}$; the policy gradient
    climbs instead, $\theta \leftarrow \theta + \alpha \nabla_\theta J$. The sigmoid shows up in
    two-action (logistic) policies and inside the derivatives of the softmax.

    ### The chain rule

    If $y = f(u)$ and $u = g(x)$, then

    $$\frac{dy}{dx} = \frac{dy}{du}\cdot\frac{du}{dx}:$$

    along a chain of functions, the local slopes multiply. For $y = \sin(x^2)$, put $u = x^2$:
    $\frac{dy}{dx} = \cos(u)\cdot 2x = 2x\cos(x^2)$. Below, the two local slopes are each
    taken by autograd and multiplied, and compared with autograd of the whole chain.
    """)
    return


@app.cell
def _(mo):
    chain_x = mo.ui.slider(
        start=-2.5, stop=2.5, step=0.1, value=1.0, label="x in y = sin(x²)", show_value=True
    )
    return (chain_x,)


@app.cell
def _(chain_x, f64, mo, plt, rlgrad, show, torch):
    _x = f64(chain_x.value)
    _u = _x**2
    chain_outer = float(rlgrad.gradient(torch.sin, _u))  # dy/du = cos(u)
    chain_inner = float(rlgrad.gradient(lambda t: t**2, _x))  # du/dx = 2x
    chain_whole = float(rlgrad.gradient(lambda t: torch.sin(t**2), _x))
    _grid = torch.linspace(-2.5, 2.5, 301, dtype=torch.float64)
    _fig, _ax = plt.subplots(figsize=(5.5, 2.4))
    _ax.plot(_grid, torch.sin(_grid**2), color="tab:blue", label="sin(x²)")
    _here = float(torch.sin(_u))
    _near = _grid[(_grid - _x).abs() < 0.4]
    _ax.plot(_near, _here + chain_whole * (_near - _x), "--", color="tab:orange", label="tangent")
    _ax.plot([float(_x)], [_here], "o", color="tab:orange")
    _ax.set_ylim(-1.5, 1.5)
    _ax.set_xlabel("x")
    _ax.legend(fontsize=8, loc="lower left")
    _fig.tight_layout()
    mo.vstack(
        [
            chain_x,
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    At $x = {chain_x.value:g}$, $u = x^2 =$ {show(_u)}:

    $dy/du = \\cos u =$ <span id="chain-outer">{show(chain_outer)}</span>

    $du/dx = 2x =$ <span id="chain-inner">{show(chain_inner)}</span>

    product: {show(chain_outer * chain_inner)}

    $dy/dx$, autograd of the chain: <span id="chain-whole">{show(chain_whole)}</span>
    """
                    ),
                ],
                widths=[3, 2],
                align="center",
            ),
        ]
    )
    return chain_inner, chain_outer, chain_whole


@app.cell
def _(f64, mo, rlgrad, show):
    quadratic_matrix = f64([[2.0, 1.0], [1.0, 3.0]])
    quadratic_point = f64([1.0, -1.0])
    quadratic_gradient = rlgrad.gradient(lambda w: w @ quadratic_matrix @ w, quadratic_point)
    quadratic_formula = 2 * quadratic_matrix @ quadratic_point
    mo.md(
        rf"""
    **Where RL uses it.** A network is a long chain of functions, and backpropagation is the
    chain rule applied one layer at a time, from the loss backwards. `loss.backward()` in
    PyTorch does exactly that.

    ### Partial derivatives and gradients

    For $f(x_1, \dots, x_n)$, the partial derivative $\frac{{\partial f}}{{\partial x_i}}$ is
    the derivative with respect to $x_i$ with every other variable held fixed, and the
    gradient $\nabla f$ stacks all of them into one vector. A rule worth knowing: for a
    symmetric matrix $A$, $\nabla_w (w^\top A w) = 2Aw$. With $A = \begin{{bmatrix}} 2 & 1 \\
    1 & 3 \end{{bmatrix}}$ and $w = [1, -1]$, autograd gives
    $[$<span id="quadratic-1">{show(quadratic_gradient[0])}</span>,
    <span id="quadratic-2">{show(quadratic_gradient[1])}</span>$]$ and $2Aw =$
    $[{show(quadratic_formula[0])}, {show(quadratic_formula[1])}]$.

    **Where RL uses it.** The policy gradient theorem needs the partial derivatives of
    $\log\pi(a \mid s)$ with respect to every parameter; a loss depends on millions of
    parameters, and the update needs its partial derivative for each one.
    """
    )
    return quadratic_formula, quadratic_gradient


@app.cell
def _(mo):
    mo.md(r"""
    ## Practice questions

    **1. Softplus.** Show that $\frac{d}{dx}\ln(1 + e^x) = \sigma(x)$. With $u = 1 + e^x$,
    $\frac{d}{du}\ln u = \frac{1}{u}$ and $\frac{du}{dx} = e^x$, so the chain rule gives
    $\frac{e^x}{1 + e^x} = \sigma(x)$: the slider under *Derivatives* checks it at any $x$.
    Logistic regression and two-action policies have this derivative inside their
    log-likelihood gradients.
    """)
    return


@app.cell
def _(answer_field, mo):
    question_2 = answer_field("Question 2 answer: dy/dx at x = 0.5")
    mo.vstack(
        [
            mo.md(r"""
    **2. Chain rule on a square root.** State the chain rule and apply it to
    $y = \sqrt{1 + x^2}$. What is the slope at $x = 0.5$ (three decimals)?
    """),
            question_2,
        ]
    )
    return (question_2,)


@app.cell
def _(f64, mo, question_2, rlgrad, show, torch, verdict):
    def root(x):
        return torch.sqrt(1 + x**2)

    root_slope = float(rlgrad.gradient(root, f64(0.5)))
    root_numerical = float(rlgrad.numerical_gradient(root, f64(0.5)))
    mo.vstack(
        [
            verdict(question_2, root_slope, 3, "q2"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    With $u = 1 + x^2$ and $y = u^{{1/2}}$: $\frac{{dy}}{{du}} = \tfrac12 u^{{-1/2}}$ and
    $\frac{{du}}{{dx}} = 2x$, so $\frac{{dy}}{{dx}} = \frac{{x}}{{\sqrt{{1 + x^2}}}}$. At
    $x = 0.5$ autograd gives <span id="root-slope">{show(root_slope)}</span>, central
    differences {show(root_numerical)}.
    """
                    )
                }
            ),
        ]
    )
    return root_numerical, root_slope


@app.cell
def _(f64, mo, rlgrad, show):
    def bowl_practice(w):
        return w[0] ** 2 + w[0] * w[1] + w[1] ** 2

    practice_gradient = rlgrad.gradient(bowl_practice, f64([1.0, 2.0]))
    mo.md(
        rf"""
    **3. Partial derivatives.** For $f(w_1, w_2) = w_1^2 + w_1 w_2 + w_2^2$: holding $w_2$
    fixed, $\frac{{\partial f}}{{\partial w_1}} = 2w_1 + w_2$; holding $w_1$ fixed,
    $\frac{{\partial f}}{{\partial w_2}} = w_1 + 2w_2$. At $(1, 2)$ rlgrad's gradient is
    $[$<span id="practice-grad-1">{show(practice_gradient[0])}</span>,
    <span id="practice-grad-2">{show(practice_gradient[1])}</span>$]$.

    **4. Ascent, not descent.** Supervised learning minimizes a loss with
    $\theta \leftarrow \theta - \alpha\nabla_\theta L$. A policy gradient method maximizes the
    expected return, so it climbs: $\theta \leftarrow \theta + \alpha\nabla_\theta J(\theta)$.
    """
    )
    return (practice_gradient,)


@app.cell
def _(f64, mo, rlgrad, show, torch):
    _x = f64(2.0).requires_grad_(True)
    _y = _x**2
    _y.backward()
    autograd_square = float(_x.grad)
    product_slope = float(rlgrad.gradient(lambda t: t**2 * torch.exp(t), f64(0.0)))
    _logits = f64([0.5, -1.0, 0.2])
    _prob_grad = rlgrad.gradient(lambda t: torch.softmax(t, -1)[0], _logits)
    _log_grad = rlgrad.gradient(lambda t: torch.log_softmax(t, -1)[0], _logits)
    _prob = float(torch.softmax(_logits, -1)[0])
    log_trick = (_prob_grad, _prob * _log_grad)
    _vector = ", ".join
    mo.md(
        rf"""
    **5. Autograd in PyTorch.** Make $x = 2$ a tensor with `requires_grad=True`, compute
    $y = x^2$, call `y.backward()` and read `x.grad`: this page did, and got
    <span id="autograd-square">{show(autograd_square)}</span>, which is $2x$ at $x = 2$.

    ```python
    x = torch.tensor(2.0, requires_grad=True)
    y = x**2
    y.backward()
    x.grad  # 2x = 4
    ```

    **6. Product rule.** $(uv)' = u'v + uv'$, so $\frac{{d}}{{dx}} x^2 e^x = e^x(2x + x^2)$,
    which is 0 at $x = 0$; autograd agrees:
    <span id="product-slope">{show(product_slope)}</span>.

    **7. Why $\nabla\log\pi$?** Because $\nabla_\theta \pi = \pi\,\nabla_\theta\log\pi$ (the
    log-derivative trick), an expectation of $\nabla\pi$ terms becomes an expectation of
    $\nabla\log\pi$ terms that can be estimated from sampled actions; log-probabilities are
    also the numerically safe quantity to work with. For a softmax over logits
    $[0.5, -1, 0.2]$ and action 0: $\nabla\pi(0) =
    [{_vector(show(v) for v in log_trick[0])}]$ and $\pi(0)\,\nabla\log\pi(0) =
    [{_vector(show(v) for v in log_trick[1])}]$.

    ### Hints from the course

    - The chain rule is what makes deep networks trainable: each layer contributes its local
      derivative and autograd multiplies them along the way back.
    - In RL "the gradient" nearly always means with respect to the policy's or the value
      function's parameters. Rewards are data, not functions of $\theta$; what gets
      differentiated is $\log\pi(a \mid s; \theta)$ or a value prediction.
    - $\nabla_\theta\log\pi(a \mid s;\theta)$, the *score*, is the vector at the heart of
      the policy gradient theorem.
    """
    )
    return autograd_square, log_trick, product_slope


@app.cell
def _(answer_field, mo):
    exercise_1 = answer_field("Exercise 1 answer: f′(2)")
    mo.vstack(
        [
            mo.md(r"""
    ## Graded exercises

    From drill to applied. Answers are checked to the number of decimals each exercise asks
    for (two unless it says otherwise); fractions such as `3/4` are fine.

    **Exercise 1 (drill: power rule).** Differentiate $f(x) = x^3 + 2x - 5$ and evaluate
    $f'(2)$.
    """),
            exercise_1,
        ]
    )
    return (exercise_1,)


@app.cell
def _(exercise_1, f64, mo, rlgrad, show, verdict):
    def cubic(x):
        return x**3 + 2 * x - 5

    power_slope = float(rlgrad.gradient(cubic, f64(2.0)))
    power_numerical = float(rlgrad.numerical_gradient(cubic, f64(2.0)))
    mo.vstack(
        [
            verdict(exercise_1, power_slope, 2, "ex1"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    $f'(x) = 3x^2 + 2$, so $f'(2) = 3\cdot 4 + 2 = 14$. Autograd:
    <span id="power-slope">{show(power_slope)}</span>; central differences:
    {show(power_numerical, 6)}.
    """
                    )
                }
            ),
        ]
    )
    return power_numerical, power_slope


@app.cell
def _(answer_field, mo):
    exercise_2 = answer_field("Exercise 2 answer: the new w₁")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 2 (apply: the TD gradient).** A linear value $V(s) = w\cdot\phi(s)$ learns
    from the TD loss $L(w) = \tfrac12\delta^2$ with
    $\delta = r + \gamma\, w\cdot\phi(s') - w\cdot\phi(s)$. Treating the target
    $r + \gamma\, w\cdot\phi(s')$ as a constant (the *semi-gradient*), what is
    $\partial L/\partial w$, and what does one step $w \leftarrow w - \alpha\,\partial L/\partial w$
    give for $w = [0.5, -0.5]$, $\phi(s) = [1, 0]$, $\phi(s') = [0, 1]$, $r = 1$,
    $\gamma = 0.9$, $\alpha = 0.1$? Type the new first weight $w_1$ (three decimals).
    """),
            exercise_2,
        ]
    )
    return (exercise_2,)


@app.cell
def _(exercise_2, f64, mo, rlgrad, show, torch, verdict):
    td_weights = f64([0.5, -0.5])
    td_features, td_next_features = f64([1.0, 0.0]), f64([0.0, 1.0])
    td_reward, td_gamma, td_lr = f64(1.0), 0.9, 0.1
    _no = torch.tensor([False])

    def td_error(w, through_target):
        next_value = w @ td_next_features
        if not through_target:
            next_value = next_value.detach()  # the target is held constant
        values = (w @ td_features).reshape(1)
        return rlgrad.td_errors(td_reward.reshape(1), values, next_value.reshape(1), _no, td_gamma)

    td_delta = float(td_error(td_weights, False)[0])
    td_semi_gradient = rlgrad.gradient(lambda w: 0.5 * td_error(w, False)[0] ** 2, td_weights)
    td_full_gradient = rlgrad.gradient(lambda w: 0.5 * td_error(w, True)[0] ** 2, td_weights)
    td_updated = rlgrad.semi_gradient_td_update(
        td_weights, td_features, td_next_features, td_reward, torch.tensor(False), td_gamma, td_lr
    )
    _semi, _full, _new = (
        [show(v) for v in t] for t in (td_semi_gradient, td_full_gradient, td_updated)
    )
    mo.vstack(
        [
            verdict(exercise_2, td_updated[0], 3, "ex2"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    With the target constant, only $-w\cdot\phi(s)$ depends on $w$, so
    $\frac{{\partial L}}{{\partial w}} = \delta\cdot(-\phi(s))$ and the step is
    $w \leftarrow w + \alpha\,\delta\,\phi(s)$: the semi-gradient TD update. Here
    $\delta = 1 + 0.9\cdot(-0.5) - 0.5 =$ <span id="td-delta">{show(td_delta)}</span>.

    | | $w_1$ | $w_2$ |
    |:--|:--|:--|
    | semi-gradient $-\delta\phi(s)$, autograd | {_semi[0]} | {_semi[1]} |
    | full gradient (through the target), autograd | {_full[0]} | {_full[1]} |
    | `rlgrad.semi_gradient_td_update` | <span id="td-w1">{_new[0]}</span> | {_new[1]} |

    The full gradient would also differentiate the target, $\gamma\phi(s')$; dropping that
    term is a simplification that still converges for linear value functions under
    on-policy data.
    """
                    )
                }
            ),
        ]
    )
    return td_delta, td_full_gradient, td_semi_gradient, td_updated


@app.cell
def _(answer_field, mo):
    exercise_3 = answer_field("Exercise 3 answer: f′(0)")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 3 (drill: chain rule).** Differentiate $f(x) = (2x + 1)^3$ and evaluate at
    $x = 0$.
    """),
            exercise_3,
        ]
    )
    return (exercise_3,)


@app.cell
def _(exercise_3, f64, mo, rlgrad, show, verdict):
    cube_slope = float(rlgrad.gradient(lambda x: (2 * x + 1) ** 3, f64(0.0)))
    mo.vstack(
        [
            verdict(exercise_3, cube_slope, 2, "ex3"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    With $u = 2x + 1$: $f' = 3u^2\cdot u' = 6(2x + 1)^2$, which is 6 at $x = 0$. Autograd:
    <span id="cube-slope">{show(cube_slope)}</span>.
    """
                    )
                }
            ),
        ]
    )
    return (cube_slope,)


@app.cell
def _(answer_field, mo):
    exercise_4 = answer_field("Exercise 4 answer: ∂log π(0)/∂θ₀")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 4 (apply: the sign of the policy gradient).** REINFORCE follows
    $G_t\,\nabla\log\pi(a_t \mid s_t;\theta)$. For a softmax over two actions,
    $\log\pi(0) = \theta_0 - \log(e^{\theta_0} + e^{\theta_1})$. Find
    $\partial\log\pi(0)/\partial\theta_0$ and $\partial\log\pi(0)/\partial\theta_1$ in terms of
    $\pi_0, \pi_1$, then evaluate the first at $\theta = [0.3, -0.2]$ (three decimals).
    """),
            exercise_4,
        ]
    )
    return (exercise_4,)


@app.cell
def _(exercise_4, f64, mo, rlgrad, show, torch, verdict):
    score_logits = f64([0.3, -0.2])
    score_probs = torch.softmax(score_logits, -1)
    score = rlgrad.gradient(lambda t: torch.log_softmax(t, -1)[0], score_logits)
    mo.vstack(
        [
            verdict(exercise_4, score[0], 3, "ex4"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    $\frac{{\partial}}{{\partial\theta_0}}$: $1 - \frac{{e^{{\theta_0}}}}{{e^{{\theta_0}} +
    e^{{\theta_1}}}} = 1 - \pi_0 = \pi_1$; $\frac{{\partial}}{{\partial\theta_1}}$:
    $-\frac{{e^{{\theta_1}}}}{{e^{{\theta_0}} + e^{{\theta_1}}}} = -\pi_1$. So
    $\nabla\log\pi(0) = [\pi_1, -\pi_1]$.

    At $\theta = [0.3, -0.2]$: $\pi = [{show(score_probs[0])}, {show(score_probs[1])}]$ and
    autograd gives $\nabla\log\pi(0) =
    [$<span id="score-1">{show(score[0])}</span>, <span id="score-2">{show(score[1])}</span>$]$.
    A step along it raises $\theta_0$ and lowers $\theta_1$, so $\pi_0$ grows: what a
    positive return for action 0 should do.
    """
                    )
                }
            ),
        ]
    )
    return score, score_probs


@app.cell
def _(answer_field, mo):
    exercise_5x = answer_field("Exercise 5 answer, ∂f/∂x")
    exercise_5y = answer_field("Exercise 5 answer, ∂f/∂y")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 5 (drill: partial derivatives).** For $f(x, y) = 3x^2y + xy^3$, find
    $\partial f/\partial x$ and $\partial f/\partial y$ and evaluate both at $(1, 2)$.
    """),
            mo.hstack([exercise_5x, exercise_5y], widths="equal", gap=2),
        ]
    )
    return exercise_5x, exercise_5y


@app.cell
def _(exercise_5x, exercise_5y, f64, mo, rlgrad, show, verdict):
    polynomial_gradient = rlgrad.gradient(
        lambda p: 3 * p[0] ** 2 * p[1] + p[0] * p[1] ** 3, f64([1.0, 2.0])
    )
    mo.vstack(
        [
            mo.hstack(
                [
                    verdict(exercise_5x, polynomial_gradient[0], 2, "ex5x"),
                    verdict(exercise_5y, polynomial_gradient[1], 2, "ex5y"),
                ],
                widths="equal",
                gap=2,
            ),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    $\frac{{\partial f}}{{\partial x}} = 6xy + y^3 = 12 + 8 = 20$ and
    $\frac{{\partial f}}{{\partial y}} = 3x^2 + 3xy^2 = 3 + 12 = 15$ at $(1, 2)$. Autograd:
    $[$<span id="poly-1">{show(polynomial_gradient[0])}</span>,
    <span id="poly-2">{show(polynomial_gradient[1])}</span>$]$.

    *Note:* the course's printed answer for $\partial f/\partial y$, "3 + 6 = 9", drops a
    factor: $3xy^2$ at $(1, 2)$ is 12, not 6. The page checks against 15.
    """
                    )
                }
            ),
        ]
    )
    return (polynomial_gradient,)


@app.cell
def _(answer_field, mo):
    exercise_6j = answer_field("Exercise 6 answer, the clipped objective")
    exercise_6g = answer_field("Exercise 6 answer, ∂J/∂r")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 6 (apply: PPO's clipped gradient).** PPO clips the ratio
    $r = \pi_\theta(a)/\pi_{\text{old}}(a)$ to $[1 - \epsilon, 1 + \epsilon]$ in
    $J = \min\bigl(rA,\ \operatorname{clip}(r, 1-\epsilon, 1+\epsilon)A\bigr)$. With $A = 1$,
    $r = 1.3$ and $\epsilon = 0.2$: what is $J$, and what is $\partial J/\partial r$?
    """),
            mo.hstack([exercise_6j, exercise_6g], widths="equal", gap=2),
        ]
    )
    return exercise_6g, exercise_6j


@app.cell
def _(exercise_6g, exercise_6j, f64, mo, rlgrad, show, verdict):
    def ppo_at(ratio, advantage, clip_eps=0.2):
        """PPO's clipped objective and its slope in r, by rlgrad.ppo_objective and autograd."""
        ratios = f64([ratio]).requires_grad_(True)
        value = rlgrad.ppo_objective(ratios, f64([advantage]), clip_eps)
        value.sum().backward()
        return float(value.detach()[0]), float(ratios.grad[0])

    ppo_value, ppo_slope = ppo_at(1.3, 1.0)
    mo.vstack(
        [
            mo.hstack(
                [
                    verdict(exercise_6j, ppo_value, 2, "ex6j"),
                    verdict(exercise_6g, ppo_slope, 2, "ex6g"),
                ],
                widths="equal",
                gap=2,
            ),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    $\operatorname{{clip}}(1.3, 0.8, 1.2) = 1.2$, so $J = \min(1.3A, 1.2A) = 1.2A$:
    `rlgrad.ppo_objective` gives <span id="ppo-value">{show(ppo_value)}</span>. The clipped
    term is the smaller one, and it does not depend on $r$, so autograd gives
    $\partial J/\partial r =$ <span id="ppo-slope">{show(ppo_slope)}</span>: past
    $1 + \epsilon$ the objective is flat, and the update stops pushing this action's
    probability further up. Explore the flat regions with the slider below.
    """
                    )
                }
            ),
        ]
    )
    return ppo_at, ppo_slope, ppo_value


@app.cell
def _(mo):
    ppo_ratio = mo.ui.slider(
        start=0.5, stop=1.6, step=0.01, value=1.3, label="ratio r", show_value=True
    )
    ppo_sign = mo.ui.radio(options=["A = +1", "A = −1"], value="A = +1", inline=True)
    return ppo_ratio, ppo_sign


@app.cell
def _(f64, mo, plt, ppo_at, ppo_ratio, ppo_sign, rlgrad, show, torch):
    _advantage = 1.0 if ppo_sign.value == "A = +1" else -1.0
    ppo_live_value, ppo_live_slope = ppo_at(ppo_ratio.value, _advantage)
    _grid = torch.linspace(0.5, 1.6, 221, dtype=torch.float64)
    _fig, _ax = plt.subplots(figsize=(5.0, 2.6))
    _ax.plot(_grid, rlgrad.ppo_objective(_grid, f64(_advantage).expand(221), 0.2), label="J(r)")
    _ax.plot(_grid, _grid * _advantage, ":", color="gray", label="rA (unclipped)")
    _ax.plot([ppo_ratio.value], [ppo_live_value], "o", color="tab:orange")
    for _edge in (0.8, 1.2):
        _ax.axvline(_edge, color="gray", lw=0.6, ls="--")
    _ax.set_xlabel("r")
    _ax.legend(fontsize=8)
    _fig.tight_layout()
    _flat = "flat: this sample no longer moves the policy" if ppo_live_slope == 0 else "sloped"
    mo.vstack(
        [
            mo.hstack([ppo_ratio, ppo_sign], justify="start", gap=2),
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    $J =$ <span id="ppo-live-value">{show(ppo_live_value)}</span>

    $\\partial J/\\partial r =$ <span id="ppo-live-slope">{show(ppo_live_slope)}</span>
    ({_flat})

    With $A > 0$ the flat part is above $1 + \\epsilon$; with $A < 0$ it is below
    $1 - \\epsilon$. On the other side the clip never applies: a move that makes things
    worse is always penalized in full.
    """
                    ),
                ],
                widths=[3, 2],
                align="center",
            ),
        ]
    )
    return ppo_live_slope, ppo_live_value


@app.cell
def _(answer_field, mo):
    exercise_7 = answer_field("Exercise 7 answer: the slope of ½δ² at δ = 0.5")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 7 (think: why square the TD error?).** The TD update minimizes
    $\tfrac12\delta^2$ with $\delta = r + \gamma V(s') - V(s)$. Why the square and not
    $|\delta|$? To check one piece of your reasoning: what is the slope of $\tfrac12\delta^2$
    with respect to $\delta$ at $\delta = 0.5$?
    """),
            exercise_7,
        ]
    )
    return (exercise_7,)


@app.cell
def _(exercise_7, f64, mo, rlgrad, show, torch, verdict):
    def half_square(delta):
        return 0.5 * delta**2

    def huber(delta):
        return torch.nn.functional.huber_loss(delta, torch.zeros_like(delta))

    loss_slopes = {
        delta: [float(rlgrad.gradient(f, f64(delta))) for f in (half_square, torch.abs, huber)]
        for delta in (2.0, 0.5, 0.01)
    }
    _table = "\n".join(
        f"    | {delta:g} | " + " | ".join(show(v) for v in slopes) + " |"
        for delta, slopes in loss_slopes.items()
    )
    mo.vstack(
        [
            verdict(exercise_7, loss_slopes[0.5][0], 2, "ex7"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        r"""
    The square is smooth everywhere, while $|\delta|$ has a kink at 0 where its derivative
    jumps from −1 to 1; the square punishes large errors more than small ones; and its
    derivative is $\delta$ itself, so the step shrinks as the error does. The slopes with
    respect to $\delta$, by autograd (Huber is PyTorch's `huber_loss`, quadratic below 1 and
    linear above, which some DQN implementations use to blunt outliers):

    | $\delta$ | slope of $\tfrac12\delta^2$ | slope of $\lvert\delta\rvert$ | Huber's slope |
    |:--|:--|:--|:--|
    """
                        + _table
                        + "\n"
                    )
                }
            ),
        ]
    )
    return (loss_slopes,)


@app.cell
def _(answer_field, mo):
    exercise_8 = answer_field("Exercise 8 answer: ∂H/∂π(a)")
    mo.vstack(
        [
            mo.md(r"""
    **Exercise 8 (apply: the entropy gradient).** The entropy of a discrete distribution is
    $H(\pi) = -\sum_a \pi(a)\log\pi(a)$. Find $\partial H/\partial\pi(a)$ for one action $a$,
    then evaluate it for $\pi = [0.2, 0.5, 0.3]$ and $a = 0$ (three decimals).
    """),
            exercise_8,
        ]
    )
    return (exercise_8,)


@app.cell
def _(exercise_8, f64, mo, rlgrad, show, torch, verdict):
    entropy_probs = f64([0.2, 0.5, 0.3])
    # H as a function of three free numbers: torch.special.entr(p) is −p·log p
    entropy_slopes = rlgrad.gradient(lambda p: torch.special.entr(p).sum(), entropy_probs)
    entropy_value = float(rlgrad.categorical_entropy(entropy_probs.log()))
    entropy_logit_slopes = rlgrad.gradient(rlgrad.categorical_entropy, entropy_probs.log())
    mo.vstack(
        [
            verdict(exercise_8, entropy_slopes[0], 3, "ex8"),
            mo.accordion(
                {
                    "Show the working": mo.md(
                        rf"""
    Only the $a$-th term depends on $\pi(a)$:
    $\frac{{\partial}}{{\partial\pi(a)}}\bigl(-\pi(a)\log\pi(a)\bigr) = -\log\pi(a) - 1 =
    -(\log\pi(a) + 1)$. For $\pi(0) = 0.2$ autograd gives
    <span id="entropy-slope">{show(entropy_slopes[0])}</span> (all three:
    [{", ".join(show(v) for v in entropy_slopes)}]), and `rlgrad.categorical_entropy` gives
    $H(\pi) =$ <span id="entropy-value">{show(entropy_value)}</span>.

    *Note:* the course's code comment prints ≈ 2.609 for $-(\log 0.2 + 1)$; that is
    $-\log 0.2 + 1$. The formula it states is 0.609.

    A policy's probabilities must sum to 1, so in practice the entropy is differentiated
    through the logits, where the $+1$ drops out: $\partial H/\partial\theta =$
    [{", ".join(show(v) for v in entropy_logit_slopes)}]. Either way the slope is largest
    for the least likely action: an entropy bonus keeps probabilities from collapsing to 0,
    which keeps the agent exploring.
    """
                    )
                }
            ),
        ]
    )
    return entropy_logit_slopes, entropy_slopes, entropy_value


@app.cell
def _(mo):
    mo.md(r"""
    ### The temperature α: entropy against return

    SAC's maximum-entropy objective adds $\alpha H(\pi(\cdot \mid s))$ to the reward of every
    step. Its best policy is no longer greedy: it is the *soft-optimal* policy
    $\pi^*_\alpha(a \mid s) \propto \exp\bigl(Q^*_\alpha(s, a)/\alpha\bigr)$, which
    `rlgrad.tabular.soft_optimal_policy` finds by soft value iteration. On the course's
    two-state example (`rlgrad.tabular.two_state()`: states *left* and *right*, staying left
    pays 0.5, being right pays 1 per step, γ = 0.9), move α and watch the policy: a large α
    buys entropy and drifts towards the uniform policy; as α → 0 it becomes the greedy
    optimal policy, *right* in both states.
    """)
    return


@app.cell
def _(mo):
    temperature = mo.ui.slider(
        start=0.05,
        stop=10.0,
        step=0.05,
        value=1.0,
        label="α over the soft-optimal policy of two_state",
        show_value=True,
    )
    return (temperature,)


@app.cell
def _(rlgrad, tabular, torch):
    two_state = tabular.two_state()
    greedy_policy = tabular.optimal_policy(two_state)
    greedy_return = float(
        two_state.initial @ tabular.evaluate(two_state, greedy_policy)[0]
    )  # J* of the greedy optimal policy

    def soft_optimum(alpha):
        """π*_α, the entropy of each of its rows and its plain return J(π*_α)."""
        probs, q_values = tabular.soft_optimal_policy(two_state, alpha)
        logits = q_values / alpha  # π*_α = softmax(Q*_α/α)
        entropies = rlgrad.categorical_entropy(logits)  # [S]
        return probs, entropies, float(tabular.objective(two_state, logits))

    temperature_grid = torch.logspace(-1.5, 1.0, 26, dtype=torch.float64).tolist()
    temperature_curves = [soft_optimum(alpha) for alpha in temperature_grid]
    return greedy_return, soft_optimum, temperature_curves, temperature_grid, two_state


@app.cell
def _(
    greedy_return,
    mo,
    plt,
    show,
    soft_optimum,
    temperature,
    temperature_curves,
    temperature_grid,
    torch,
):
    soft_probs, soft_entropies, soft_return = soft_optimum(temperature.value)
    _fig, (_left, _right) = plt.subplots(1, 2, figsize=(7.5, 2.6))
    _left.plot(temperature_grid, [p[0, 1] for p, _, _ in temperature_curves], label="in left")
    _left.plot(temperature_grid, [p[1, 1] for p, _, _ in temperature_curves], label="in right")
    _left.axhline(0.5, color="gray", lw=0.6, ls=":")
    _left.set_title("π*(right | state)", fontsize=9)
    _right.plot(temperature_grid, [j for _, _, j in temperature_curves], color="tab:red")
    _right.axhline(greedy_return, color="gray", lw=0.6, ls=":")
    _right.set_title("return J(π*) (dotted: greedy J*)", fontsize=9)
    for _ax in (_left, _right):
        _ax.set_xscale("log")
        _ax.axvline(temperature.value, color="tab:orange", lw=1)
        _ax.set_xlabel("α")
    _left.legend(fontsize=8)
    _fig.tight_layout()
    _uniform = float(torch.log(torch.tensor(2.0)))
    _row = [
        [show(soft_probs[s, 0]), show(soft_probs[s, 1]), show(soft_entropies[s])] for s in (0, 1)
    ]
    mo.vstack(
        [
            temperature,
            _fig,
            mo.md(
                f"""
    With $\\alpha =$ <span id="temperature-alpha">{temperature.value:g}</span>:

    | state | π*(left) | π*(right) | entropy of π*(·\\|s) |
    |:--|:--|:--|:--|
    | left | {_row[0][0]} | <span id="soft-right-in-left">{_row[0][1]}</span> | {_row[0][2]} |
    | right | {_row[1][0]} | <span id="soft-right-in-right">{_row[1][1]}</span> | {_row[1][2]} |

    Plain return of $\\pi^*_\\alpha$ from *left*:
    <span id="soft-return">{show(soft_return)}</span>, against
    <span id="greedy-return">{show(greedy_return)}</span> for the greedy optimal policy.
    The most entropy a state can have is $\\log 2 =$ {show(_uniform)}. For moderate α the
    policy even leans *left* in the left state: staying pays 0.5 at once, and the entropy
    bonus makes the long-run value of being right count for less.
    """
            ),
        ]
    )
    return soft_entropies, soft_probs, soft_return


@app.cell
def _(mo):
    mo.md(r"""
    ## Common pitfalls

    - **Ascent or descent.** The policy gradient maximizes, so its update adds
      $\alpha\nabla_\theta J$; a loss is minimized, so its update subtracts. A flipped sign
      trains the agent to do worse.
    - **The inner derivative.** For $f(g(x))$, multiply by $g'(x)$:
      $\frac{d}{dx}e^{x^2} = e^{x^2}\cdot 2x$, not $e^{x^2}$.
    - **Constants are constants.** Rewards already collected do not depend on $\theta$, so
      their derivative is 0; only the terms that do, such as $\log\pi(a \mid s;\theta)$, carry
      gradient.
    """)
    return


if __name__ == "__main__":
    app.run()
