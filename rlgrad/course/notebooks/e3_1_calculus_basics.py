import marimo

__generated_with = "0.25.2"
app = marimo.App(
    width="medium",
    app_title="E.3.1 Calculus basics: derivatives, gradients and the chain rule",
)


@app.cell
def _():
    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    import rlgrad

    def f64(value):
        return torch.as_tensor(value, dtype=torch.float64)

    def on_chart(path, limit=3.0):
        """The path for plotting, cut after its first point further than ``limit`` from 0.8: a
        diverging path leaves the chart once instead of scribbling over it."""
        far = ((path - 0.8).abs() > limit).nonzero()
        return path if len(far) == 0 else path[: int(far[0]) + 1]

    def show(value, places=4):
        """A number as the page prints it: fixed places, a plain minus, no '-0'."""
        value = float(value)
        text = f"{value:.{places}f}" if abs(value) < 1e6 else f"{value:.3e}"
        return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text

    return f64, mo, np, on_chart, plt, rlgrad, show, torch


@app.cell
def _(mo):
    mo.md(r"""
    <h1 id="e3-1-title">E.3.1 Calculus basics: derivatives, gradients and the chain rule</h1>

    Training an RL agent is optimization: we keep nudging the policy's parameters so that its
    average return goes up. Earlier pages of the course told us how good a policy is; this one
    asks the question that comes next: **if I change the parameters a little, how much does the
    objective change, and in which direction?** That question is what derivatives answer.

    Think of the parameter $\theta$ as a dial and of the objective $J(\theta)$ as a reading
    that depends on where the dial points:

    $$\theta \;\longmapsto\; J(\theta).$$

    Training means turning the dial towards larger readings. Every number below is computed
    by [rlgrad](https://github.com/rlgrad/rlgrad) when the page runs; move a slider and the
    numbers that depend on it are recomputed.
    """)
    return


@app.cell
def _():
    def objective(theta):
        """The course's one-parameter objective, J(θ) = −(θ − 0.8)² + 1 (largest at 0.8)."""
        return -((theta - 0.8) ** 2) + 1

    return (objective,)


@app.cell
def _(f64, mo, objective, show):
    table_thetas = (0.2, 0.5, 0.8, 1.0)
    table_values = [float(objective(f64(t))) for t in table_thetas]
    _rows = "\n".join(
        f'    | {t} | <span id="table-j-{i}">{show(v, 2)}</span> |'
        for i, (t, v) in enumerate(zip(table_thetas, table_values, strict=True))
    )
    mo.md(
        r"""
    ## 1. A derivative, on a function of one parameter

    Take a single parameter and the objective

    $$J(\theta) = -(\theta - 0.8)^2 + 1 .$$

    Read $\theta$ as a toy policy parameter: a small $\theta$ means the policy rarely chooses
    *right*, a larger one means it often does. The objective peaks at $\theta = 0.8$. A few
    values, evaluated now:

    | $\theta$ | $J(\theta)$ |
    |:--|:--|
    """
        + _rows
        + r"""

    Between 0.2 and 0.5 the objective climbs; between 0.8 and 1.0 it falls. The derivative
    $J'(\theta)$ ("J prime") measures exactly this: the slope of $J$ at one point. For this
    $J$ it is

    $$J'(\theta) = -2(\theta - 0.8).$$

    A positive slope says "move right to go up", a negative one "move left".
    """
    )
    return table_thetas, table_values


@app.cell
def _(f64, mo, objective, rlgrad, show):
    worked_slope_02 = float(rlgrad.gradient(objective, f64(0.2)))
    worked_slope_10 = float(rlgrad.gradient(objective, f64(1.0)))
    mo.md(
        f"""
    The course's two checks, by automatic differentiation (`rlgrad.gradient`):
    $J'(0.2) =$ <span id="slope-0-2">{show(worked_slope_02)}</span> (positive: go right) and
    $J'(1.0) =$ <span id="slope-1-0">{show(worked_slope_10)}</span> (negative: go left).
    Now pick any point yourself:
    """
    )
    return worked_slope_02, worked_slope_10


@app.cell
def _(mo):
    theta_slider = mo.ui.slider(
        start=-0.4, stop=2.0, step=0.05, value=0.2, label="θ where J'(θ) is taken", show_value=True
    )
    return (theta_slider,)


@app.cell
def _(f64, mo, objective, plt, rlgrad, show, theta_slider, torch):
    slope = float(rlgrad.gradient(objective, f64(theta_slider.value)))
    _theta = theta_slider.value
    _grid = torch.linspace(-0.4, 2.0, 121, dtype=torch.float64)
    _fig, _ax = plt.subplots(figsize=(5.5, 2.8))
    _ax.plot(_grid, objective(_grid), color="tab:blue", label="J(θ)")
    _here = float(objective(f64(_theta)))
    _ax.plot(_grid, _here + slope * (_grid - _theta), "--", color="tab:orange", label="tangent")
    _ax.plot([_theta], [_here], "o", color="tab:orange")
    _ax.set_ylim(-1.2, 1.3)
    _ax.set_xlabel("θ")
    _ax.legend(loc="lower center")
    _fig.tight_layout()
    _direction = "right" if slope > 0 else ("left" if slope < 0 else "nowhere: this is the top")
    mo.vstack(
        [
            theta_slider,
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    At $\\theta = {_theta:g}$:

    $J(\\theta) =$ <span id="slider-j">{show(_here)}</span>

    $J'(\\theta) =$ <span id="slider-slope">{show(slope)}</span>

    The objective rises if $\\theta$ moves **{_direction}**. The dashed line is the tangent:
    its steepness is the derivative.
    """
                    ),
                ],
                widths=[3, 2],
                align="center",
            ),
        ]
    )
    return (slope,)


@app.cell
def _(f64, mo, objective, rlgrad, show):
    worked_trajectory = rlgrad.gradient_ascent(objective, f64(0.2), lr=0.1, steps=2)
    mo.md(
        rf"""
    ## 2. Gradient ascent and gradient descent

    Knowing the uphill direction, we take a step along it. To **maximize** a return we use
    gradient ascent, with a learning rate $\alpha > 0$ setting the step's length:

    $$\theta \leftarrow \theta + \alpha\, J'(\theta).$$

    The course's worked example starts at $\theta_0 = 0.2$ with $\alpha = 0.1$
    (`rlgrad.gradient_ascent`):

    $$\theta_1 = 0.2 + 0.1 \times 1.2, \qquad
    \theta_2 = \theta_1 + 0.1 \times J'(\theta_1)$$

    which gives $\theta_1 =$ <span id="worked-theta-1">{show(worked_trajectory[1])}</span>
    and $\theta_2 =$ <span id="worked-theta-2">{show(worked_trajectory[2])}</span>: each step
    goes a little further towards 0.8.

    To **minimize** a loss $L(\theta)$ the sign flips, and the rule is gradient descent,
    $\theta \leftarrow \theta - \alpha\, L'(\theta)$. "Backpropagation plus an optimizer" is
    this loop repeated: compute the gradient, take a step.

    ### How long a step? Try the learning rate

    For this $J$ one step does something simple to the distance from the top:
    $\theta_{{k+1}} - 0.8 = (1 - 2\alpha)(\theta_k - 0.8)$. A tiny $\alpha$ shrinks the distance
    slowly, $\alpha$ near 0.5 jumps to the top at once, $\alpha$ between 0.5 and 1 overshoots
    and swings back and forth, and $\alpha > 1$ makes every swing bigger than the last.
    """
    )
    return (worked_trajectory,)


@app.cell
def _(mo):
    ascent_lr = mo.ui.slider(
        start=0.01,
        stop=1.2,
        step=0.01,
        value=0.1,
        label="learning rate α for gradient ascent on J",
        show_value=True,
    )
    return (ascent_lr,)


@app.cell
def _(ascent_lr, f64, mo, objective, on_chart, plt, rlgrad, show):
    ascent_steps = 20
    ascent_trajectory = rlgrad.gradient_ascent(
        objective, f64(0.2), lr=ascent_lr.value, steps=ascent_steps
    )
    # the factor by which one step multiplies the distance to the top, read off the trajectory
    ascent_factor = float((ascent_trajectory[2] - 0.8) / (ascent_trajectory[1] - 0.8))
    if abs(ascent_factor) > 1 + 1e-9:
        _verdict = "**diverges**: every step lands further from 0.8 than the last"
    elif ascent_factor < -1e-9:
        _verdict = "**oscillates**: it jumps over 0.8 and back, closing in"
    elif ascent_factor > 0.8:
        _verdict = "**crawls**: it heads for 0.8 but takes many steps"
    else:
        _verdict = "**converges** quickly to 0.8"
    _fig, _ax = plt.subplots(figsize=(5.5, 2.8))
    _ax.axhline(0.8, color="gray", lw=0.8, ls=":")
    _shown = on_chart(ascent_trajectory)
    _ax.plot(range(len(_shown)), _shown, "o-", ms=3, color="tab:blue")
    _ax.set_xlim(-0.5, ascent_steps + 0.5)
    _ax.set_ylim(-0.6, 2.2)
    _ax.set_xlabel("step k")
    _ax.set_ylabel("θ_k")
    _ax.set_title(f"gradient ascent on J from θ₀ = 0.2, α = {ascent_lr.value:g}", fontsize=10)
    _fig.tight_layout()
    _first = ", ".join(show(t, 3) for t in ascent_trajectory[:6])
    mo.vstack(
        [
            ascent_lr,
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    With $\\alpha =$ <span id="ascent-lr">{ascent_lr.value:g}</span>:

    $\\theta_1 =$ <span id="ascent-theta-1">{show(ascent_trajectory[1])}</span>

    $\\theta_{{{ascent_steps}}} =$ <span id="ascent-final">{show(ascent_trajectory[-1])}</span>

    factor per step $(\\theta_2 - 0.8)/(\\theta_1 - 0.8) =$
    <span id="ascent-factor">{show(ascent_factor)}</span>

    First steps: {_first}, …

    With this α, gradient ascent {_verdict}.
    """
                    ),
                ],
                widths=[3, 2],
                align="center",
            ),
        ]
    )
    return ascent_factor, ascent_steps, ascent_trajectory


@app.cell
def _(f64, mo, rlgrad, show):
    def bowl(theta):
        """The course's two-parameter objective, J(θ₁, θ₂) = −(θ₁ − 1)² − (θ₂ − 2)² + 5."""
        return -((theta[0] - 1) ** 2) - (theta[1] - 2) ** 2 + 5

    bowl_gradient = rlgrad.gradient(bowl, f64([0.0, 0.0]))
    bowl_step = rlgrad.gradient_ascent(bowl, f64([0.0, 0.0]), lr=0.1, steps=1)[1]
    mo.md(
        rf"""
    ## 3. More than one parameter: the gradient

    Real models have thousands to billions of parameters, and the idea carries over
    unchanged. With two,

    $$J(\theta_1, \theta_2) = -(\theta_1 - 1)^2 - (\theta_2 - 2)^2 + 5,$$

    the top is at $(1, 2)$. Differentiating with respect to each parameter and stacking the
    results gives the **gradient** $\nabla J$ ("nabla J"):

    $$\nabla J(\theta_1, \theta_2) = \begin{{bmatrix}} -2(\theta_1 - 1) \\ -2(\theta_2 - 2)
    \end{{bmatrix}}.$$

    At $(0, 0)$ rlgrad's autograd gives
    $\nabla J(0, 0) = [$<span id="grad-1">{show(bowl_gradient[0])}</span>,
    <span id="grad-2">{show(bowl_gradient[1])}</span>$]$: both parameters should grow, the
    second one more strongly. The gradient steers every parameter at once. One ascent step
    with $\alpha = 0.1$:

    $$\begin{{bmatrix}} \theta_1 \\ \theta_2 \end{{bmatrix}} \leftarrow
    \begin{{bmatrix}} 0 \\ 0 \end{{bmatrix}} + 0.1 \begin{{bmatrix}} 2 \\ 4 \end{{bmatrix}}$$

    lands at $[$<span id="step-1">{show(bowl_step[0])}</span>,
    <span id="step-2">{show(bowl_step[1])}</span>$]$.
    """
    )
    return bowl, bowl_gradient, bowl_step


@app.cell
def _(mo):
    mo.md(r"""
    ## 4. The chain rule: how a change travels through steps

    A network is a chain of functions: the input passes through one layer, its output through
    the next, and so on until a loss comes out. The chain rule says how a change at the start
    reaches the end. The course's example is a chain of two:

    $$y = 3\theta, \qquad L = (y - 6)^2 .$$

    Substituting gives $L = (3\theta - 6)^2$ and $\frac{dL}{d\theta} = 2(3\theta - 6)\cdot 3$.
    The first factor is $\frac{dL}{dy}$, the second $\frac{dy}{d\theta}$:

    $$\frac{dL}{d\theta} = \frac{dL}{dy}\cdot\frac{dy}{d\theta}.$$

    "θ moves y, y moves L, so θ's effect on L is the product of the two effects." Move θ and
    compare the product of the two local slopes with autograd's answer for the whole chain:
    """)
    return


@app.cell
def _(mo):
    chain_theta = mo.ui.slider(
        start=-1.0, stop=4.0, step=0.1, value=1.0, label="θ in the chain y = 3θ", show_value=True
    )
    return (chain_theta,)


@app.cell
def _(chain_theta, f64, mo, rlgrad, show):
    def inner(theta):
        return 3 * theta

    def outer(y):
        return (y - 6) ** 2

    chain_y = inner(f64(chain_theta.value))
    chain_loss = float(outer(chain_y))
    chain_outer_slope = float(rlgrad.gradient(outer, chain_y))  # dL/dy at y
    chain_inner_slope = float(rlgrad.gradient(inner, f64(chain_theta.value)))  # dy/dθ
    chain_slope = float(rlgrad.gradient(lambda t: outer(inner(t)), f64(chain_theta.value)))
    _product = show(chain_outer_slope * chain_inner_slope)
    _table = mo.md(
        f"""
    | quantity | value at θ = {chain_theta.value:g} |
    |:--|:--|
    | $y = 3\\theta$ | <span id="chain-y">{show(chain_y)}</span> |
    | $L = (y - 6)^2$ | <span id="chain-loss">{show(chain_loss)}</span> |
    | $dL/dy = 2(y - 6)$ | <span id="chain-outer">{show(chain_outer_slope)}</span> |
    | $dy/d\\theta = 3$ | <span id="chain-inner">{show(chain_inner_slope)}</span> |
    | product $\\frac{{dL}}{{dy}}\\cdot\\frac{{dy}}{{d\\theta}}$ | {_product} |
    | $dL/d\\theta$, autograd of the chain | <span id="chain-slope">{show(chain_slope)}</span> |

    At the course's $\\theta = 1$: $y = 3$, $L = 9$ and $dL/d\\theta = -18$, so increasing θ
    lowers the loss. Backpropagation is this multiplication done for every layer, starting at
    the loss and walking backwards.
    """
    )
    mo.vstack([chain_theta, _table])
    return chain_loss, chain_slope, chain_y


@app.cell
def _(mo):
    mo.md(r"""
    ## 5. Partial derivatives: turn one dial, hold the others

    With several variables we write $\partial$ ("partial") instead of $d$:
    $\frac{\partial J}{\partial \theta_1}$ is the derivative with respect to $\theta_1$ while
    every other variable is held fixed. For the two-parameter $J$ of section 3:

    $$\frac{\partial J}{\partial \theta_1} = -2(\theta_1 - 1), \qquad
    \frac{\partial J}{\partial \theta_2} = -2(\theta_2 - 2), \qquad
    \nabla_\theta J = \begin{bmatrix} \partial J/\partial\theta_1 \\
    \partial J/\partial\theta_2 \end{bmatrix}.$$

    Below, each partial derivative is computed twice: once as a component of the full
    gradient, once as the ordinary derivative of the one-parameter function you get by
    freezing the other parameter. They agree, which is what "partial" means.
    """)
    return


@app.cell
def _(mo):
    partial_theta_1 = mo.ui.slider(-1.0, 3.0, step=0.1, value=0.0, label="θ₁", show_value=True)
    partial_theta_2 = mo.ui.slider(-1.0, 3.0, step=0.1, value=0.0, label="θ₂", show_value=True)
    return partial_theta_1, partial_theta_2


@app.cell
def _(bowl, f64, mo, partial_theta_1, partial_theta_2, plt, rlgrad, show, torch):
    _t1, _t2 = partial_theta_1.value, partial_theta_2.value
    partial_gradient = rlgrad.gradient(bowl, f64([_t1, _t2]))
    # freeze θ₂ (then θ₁) and differentiate the one-parameter slice
    partial_slice_1 = float(rlgrad.gradient(lambda t: bowl(torch.stack([t, f64(_t2)])), f64(_t1)))
    partial_slice_2 = float(rlgrad.gradient(lambda t: bowl(torch.stack([f64(_t1), t])), f64(_t2)))
    _axis = torch.linspace(-1, 3, 61, dtype=torch.float64)
    _g1, _g2 = torch.meshgrid(_axis, _axis, indexing="xy")
    _fig, _ax = plt.subplots(figsize=(3.6, 3.2))
    _ax.contour(_g1, _g2, bowl(torch.stack([_g1, _g2])), levels=12, cmap="Blues")
    _ax.plot([1], [2], "k*", ms=9)
    _ax.quiver(
        [_t1],
        [_t2],
        [partial_gradient[0]],
        [partial_gradient[1]],
        color="tab:orange",
        angles="xy",
        scale_units="xy",
        scale=8,
    )
    _ax.plot([_t1], [_t2], "o", color="tab:orange")
    _ax.set_xlabel("θ₁")
    _ax.set_ylabel("θ₂")
    _ax.set_aspect("equal")
    _fig.tight_layout()
    _p1, _p2 = show(partial_gradient[0]), show(partial_gradient[1])
    _s1, _s2 = show(partial_slice_1), show(partial_slice_2)
    mo.vstack(
        [
            mo.hstack([partial_theta_1, partial_theta_2], justify="start", gap=2),
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    At $(\\theta_1, \\theta_2) = ({_t1:g}, {_t2:g})$:

    | | from $\\nabla J$ | from the frozen slice |
    |:--|:--|:--|
    | $\\partial J/\\partial\\theta_1$ | <span id="partial-1">{_p1}</span> | {_s1} |
    | $\\partial J/\\partial\\theta_2$ | <span id="partial-2">{_p2}</span> | {_s2} |

    The arrow (⅛ of the gradient) points uphill, towards the star at $(1, 2)$.
    """
                    ),
                ],
                widths=[2, 3],
                align="center",
            ),
        ]
    )
    return (partial_gradient,)


@app.cell
def _(mo):
    mo.md(r"""
    ## 6. The learning rate: how far each step goes

    The gradient gives a direction; the learning rate $\alpha$ decides the distance. With
    $\theta = [0, 0]$, $\nabla J = [2, 4]$ and $\alpha = 0.1$ the step of section 3 lands at
    $[0.2, 0.4]$. Too small an $\alpha$ and training crawls; too large and each step sails past
    the top, swinging back and forth or flying off altogether, as the slider of section 2
    showed. Policy gradients are noisy estimates, which makes RL especially touchy about
    $\alpha$: typical values are small, such as $10^{-3}$ or $3\times10^{-4}$, often with a
    decaying schedule or an adaptive optimizer.

    > **A common mistake:** a larger learning rate does not mean faster learning. Past a
    > point it means oscillation or divergence.

    ### Three ways to keep a step under control

    The course names three remedies. Here they race on one problem where a large $\alpha$
    wrecks plain gradient ascent: a steeper cousin of section 1's objective,

    $$J_5(\theta) = -5(\theta - 0.8)^2 + 1, \qquad J_5'(\theta) = -10(\theta - 0.8),$$

    from $\theta_0 = 0.2$ for 25 updates. One plain step multiplies the distance to the top by
    $1 - 10\alpha$, so plain ascent diverges as soon as $\alpha > 0.2$.

    - **Gradient clipping** (`torch.nn.utils.clip_grad_norm_`, max norm 1): a gradient longer
      than 1 is shortened to length 1, so no step is longer than $\alpha$. It caps the
      step; near the top, where the gradient is short, it changes nothing.
    - **Adam** (`torch.optim.Adam`): divides the gradient by a running estimate of its own
      size, so each step is about $\alpha$ long however steep the objective is.
    - **PPO's clip** (`rlgrad.ppo_objective`) works on the *policy* rather than on a
      gradient. Read $\theta$ as the mean of a Gaussian policy $\mathcal N(\theta, 0.3^2)$
      whose action $x$ earns $R(x) = -5(x - 0.8)^2 + 1$; its expected reward is $J_5(\theta)$
      minus a constant. Each update takes one batch of actions from the current policy
      $\pi_{\text{old}}$ (here 8 fixed quadrature points instead of random samples) and spends
      $\alpha$ in 10 small steps of $\alpha/10$ on the clipped surrogate
      $\sum_i w_i \min\bigl(r_i A_i,\ \operatorname{clip}(r_i, 1-\epsilon, 1+\epsilon) A_i\bigr)$,
      $r_i = \pi_\theta(x_i)/\pi_{\text{old}}(x_i)$, $\epsilon = 0.2$. Once an action's ratio
      leaves $[0.8, 1.2]$ in the direction its advantage favours, that action stops pulling:
      one batch can move the policy only so far.
    """)
    return


@app.cell
def _(mo):
    stabilise_lr = mo.ui.slider(
        start=0.01,
        stop=1.0,
        step=0.01,
        value=0.3,
        label="learning rate α for the three stabilisers",
        show_value=True,
    )
    return (stabilise_lr,)


@app.cell
def _(f64, np, rlgrad, torch):
    STEEPNESS, POLICY_STD, CLIP_EPS, PPO_STEPS, UPDATES, START = 5.0, 0.3, 0.2, 10, 25, 0.2

    def steep(theta):
        """J₅(θ) = −5(θ − 0.8)² + 1; as a reward R(x) of a Gaussian policy's action x."""
        return -STEEPNESS * (theta - 0.8) ** 2 + 1

    _nodes, _weights = np.polynomial.hermite_e.hermegauss(8)
    quadrature_nodes = f64(_nodes)  # standard-normal points z_i
    quadrature_weights = f64(_weights / _weights.sum())  # their probabilities w_i

    def run_plain(lr):
        return rlgrad.gradient_ascent(steep, f64(START), lr=lr, steps=UPDATES)

    def run_torch(lr, optimizer=None, max_norm=None):
        """Ascent on J₅ by PyTorch's machinery: descent on −J₅, optionally clipped or Adam."""
        theta = f64(START).clone().requires_grad_(True)
        adam = torch.optim.Adam([theta], lr=lr) if optimizer == "adam" else None
        path = [START]
        for _ in range(UPDATES):
            theta.grad = None
            (-steep(theta)).backward()
            if max_norm is not None:
                torch.nn.utils.clip_grad_norm_([theta], max_norm)
            if adam is not None:
                adam.step()
            else:
                with torch.no_grad():
                    theta -= lr * theta.grad
            path.append(float(theta.detach()))
        return f64(path)

    def run_ppo(lr, clip=True):
        """PPO-style updates: the path of θ, one batch from π_old per update."""
        theta, path = f64(START), [START]
        for _ in range(UPDATES):
            old = theta.detach()
            actions = old + POLICY_STD * quadrature_nodes  # the batch from π_old
            rewards = steep(actions)
            advantages = rewards - quadrature_weights @ rewards  # baseline: the batch mean
            old_log_probs = torch.distributions.Normal(old, POLICY_STD).log_prob(actions)
            theta = old.clone().requires_grad_(True)
            for _ in range(PPO_STEPS):
                log_probs = torch.distributions.Normal(theta, POLICY_STD).log_prob(actions)
                batch_ratios = torch.exp(log_probs - old_log_probs)
                per_action = (
                    rlgrad.ppo_objective(batch_ratios, advantages, CLIP_EPS)
                    if clip
                    else batch_ratios * advantages
                )
                (grad,) = torch.autograd.grad(quadrature_weights @ per_action, theta)
                with torch.no_grad():
                    theta += (lr / PPO_STEPS) * grad
            theta = theta.detach()
            path.append(float(theta))
        return f64(path)

    return UPDATES, run_plain, run_ppo, run_torch, steep


@app.cell
def _(UPDATES, mo, on_chart, plt, run_plain, run_ppo, run_torch, show, stabilise_lr):
    _lr = stabilise_lr.value
    stabilise_paths = {
        "plain": run_plain(_lr),
        "clipped gradient": run_torch(_lr, max_norm=1.0),
        "Adam": run_torch(_lr, optimizer="adam"),
    }
    stabilise_paths["PPO clip"] = run_ppo(_lr)
    # the largest distance one update moved θ, with PPO's clip and for the same steps without
    ppo_largest_move = float(stabilise_paths["PPO clip"].diff().abs().max())
    unclipped_largest_move = float(run_ppo(_lr, clip=False).diff().abs().max())
    _ids = {"plain": "plain", "clipped gradient": "clipgrad", "Adam": "adam", "PPO clip": "ppo"}
    _fig, _ax = plt.subplots(figsize=(6, 3.2))
    _ax.axhline(0.8, color="gray", lw=0.8, ls=":")
    for _name, _path in stabilise_paths.items():
        _shown = on_chart(_path)
        _off = "" if len(_shown) == len(_path) else f" (off the chart after {len(_shown) - 1})"
        _ax.plot(range(len(_shown)), _shown, "o-", ms=2.5, label=_name + _off)
    _ax.set_xlim(-0.5, UPDATES + 0.5)
    _ax.set_ylim(-0.5, 2.0)
    _ax.set_xlabel("update")
    _ax.set_ylabel("θ")
    _ax.set_title(f"ascent on J₅ from θ₀ = 0.2, α = {_lr:g}", fontsize=10)
    _ax.legend(fontsize=8, loc="lower right")
    _fig.tight_layout()
    _rows = "\n    ".join(
        f'| {name} | <span id="final-{_ids[name]}">{show(path[-1])}</span> |'
        for name, path in stabilise_paths.items()
    )
    mo.vstack(
        [
            stabilise_lr,
            mo.hstack(
                [
                    _fig,
                    mo.md(
                        f"""
    With $\\alpha =$ <span id="stabilise-lr">{_lr:g}</span>:

    | method | θ after {UPDATES} updates |
    |:--|:--|
    {_rows}

    Largest move of θ in one PPO update:
    <span id="ppo-largest-move">{show(ppo_largest_move, 3)}</span> with the clip,
    <span id="unclipped-largest-move">{show(unclipped_largest_move, 3)}</span> for the same
    10 steps without it.
    """
                    ),
                ],
                widths=[3, 2],
                align="center",
            ),
        ]
    )
    return ppo_largest_move, stabilise_paths, unclipped_largest_move


@app.cell
def _(mo):
    mo.md(r"""
    What to look for as you move $\alpha$:

    - Below 0.2 plain ascent is fine, and fastest near $\alpha = 0.1$, where one step lands on
      the top. Above 0.2 it leaves the plot within a few updates.
    - The clipped gradient never explodes, but clipping only caps the step: for a large
      $\alpha$ it ends up hopping between two points around the top, each hop $\alpha$ long.
    - Adam's steps are about $\alpha$ long from the start, so a tiny $\alpha$ crawls however
      steep $J_5$ is, and a large one circles the top before settling.
    - PPO spends each $\alpha$ in small steps (that alone tames a steep objective), and the
      clip stops them once the actions the policy is moving towards reach a ratio of
      $1 + \epsilon$: however large $\alpha$ is, one batch moves the policy only a bounded
      distance, so it walks to 0.8 in even strides. Without the clip the same 10 steps move
      much further per batch; with a perfect batch like this one that happens to land well,
      but with a real, noisy batch the surrogate is not to be trusted that far from
      $\pi_{\text{old}}$.

    Real PPO implementations use all three at once: Adam as the optimizer, clipped gradients,
    and the clipped objective.
    """)
    return


@app.cell
def _(f64, mo, show):
    _theta = f64(1.0).requires_grad_(True)
    _y = 3 * _theta
    _y.retain_grad()  # keep dL/dy, which autograd would otherwise discard
    _loss = (_y - 6) ** 2
    _loss.backward()
    code_theta_grad, code_y_grad = float(_theta.grad), float(_y.grad)
    mo.md(
        rf"""
    ## 7. From formulas to backpropagation in code

    Nobody differentiates a network's millions of parameters by hand: an automatic
    differentiation system does it, and it works by the chain rule. For the graph
    $\theta \to y = 3\theta \to L = (y - 6)^2$, PyTorch records each operation on the way
    forward, then walks back from $L$: first $\frac{{dL}}{{dy}}$, then times
    $\frac{{dy}}{{d\theta}}$.

    ```python
    theta = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    y = 3 * theta
    y.retain_grad()
    loss = (y - 6) ** 2
    loss.backward()
    ```

    Run on this page: `y.grad` $= \frac{{dL}}{{dy}} =$
    <span id="code-y-grad">{show(code_y_grad)}</span> and `theta.grad`
    $= \frac{{dL}}{{d\theta}} =$ <span id="code-theta-grad">{show(code_theta_grad)}</span>.
    Each layer only needs its own local derivative; the chain rule strings them together.
    That is how policy networks, value networks and reward models are all trained.

    ## Summary

    | tool | what it tells you | where RL uses it |
    |:--|:--|:--|
    | derivative | slope and direction of change at one point | which way to adjust a parameter |
    | gradient | all partial derivatives in one vector | where every parameter should move |
    | chain rule | the derivative of a composition | backpropagation through a network |
    | partial derivative | the slope along one variable, others fixed | one parameter's share |
    | learning rate | how long each step is | trading speed against stability |

    Together they make the loop every trainer runs: compute a gradient, take a step. The
    next page of the course, E.3.2, turns this loop on a policy and derives the policy
    gradient.
    """
    )
    return code_theta_grad, code_y_grad


if __name__ == "__main__":
    app.run()
