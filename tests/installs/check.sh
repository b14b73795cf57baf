#!/usr/bin/env bash
# The installs a user makes, each in a fresh virtual environment, from a wheel of this checkout
# (not editable, so a module left out of the package or an optional import on the way of a
# command that does not need it fails here as it would for the user). `make test` runs it.
#
#   core   pip install rlgrad          import rlgrad, `rlgrad examples`, `rlgrad tour`
#   gym    pip install 'rlgrad[gym]'   train, eval, plot and resume a short PPO and DQN run
#   ray    pip install 'rlgrad[ray]'   a 2-trial sweep and its report
#   lm     pip install 'rlgrad[lm]'    a few `grpo-demo` steps
#   course pip install 'rlgrad[course]'  `rlgrad course` answers for its home page and a
#                                      chapter; every chapter runs as a script
#
# and in each, every command that needs an extra it lacks must say so in one line naming it.
#
# Speed: PyTorch is installed once (TORCH_SPEC first, as the Makefile does, so that pip does not
# pull a CUDA build) into a base venv that holds nothing else; each install starts from a
# hard-linked copy of it (`cp -al`: seconds, not a minute of unpacking per venv) and they all
# run concurrently. pip's cache stays on. Everything goes in with --no-compile: byte-compiling all
# of a package is most of pip's CPU time (torch: 23 s of 28 s), and a command compiles only the
# modules it imports. Usage: tests/installs/check.sh [core gym ray lm course]
# Environment: PYTHON (python3), TORCH_SPEC (torch==2.13.0), KEEP=1 keeps the work folder.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
LANES=("$@")
[ ${#LANES[@]} -gt 0 ] || LANES=(core gym ray lm course)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rlgrad-installs.XXXXXX")
STARTED=$SECONDS
export MPLBACKEND=Agg RAY_USAGE_STATS_ENABLED=0
# shellcheck disable=SC2317  # called by the trap
# Removing the venvs (some 100,000 files) took tens of seconds after a run had answered on a busy
# machine: it goes on in the background.
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "installs: kept $WORK"
    else
        nohup rm -rf "$WORK" &>/dev/null &
    fi
}
trap cleanup EXIT

say() { echo "installs [$1] ${*:2}"; }

# step LANE NAME CMD...: run CMD in the lane's folder, its output in a log; a failure is final,
# and so is a step that hangs (exit 124 after STEP_TIMEOUT seconds, 600 by default)
step() {
    local lane=$1 name=$2 log="$WORK/$1/$(echo "$2" | tr -c 'a-zA-Z0-9\n' '_').log" t0=$SECONDS
    shift 2
    if timeout "${STEP_TIMEOUT:-600}" bash -c 'cd "$0" && "$@"' "$WORK/$lane" "$@" >"$log" 2>&1
    then
        say "$lane" "ok     $name ($((SECONDS - t0)) s)"
    else
        say "$lane" "FAILED $name (exit $?, $((SECONDS - t0)) s); its last lines ($log):"
        tail -n 25 "$log" | sed "s/^/installs [$lane]   | /"
        echo "$name" >"$WORK/$lane.failed"
        return 1
    fi
}

# needs EXTRA CMD...: CMD fails with the CLI's exit 2 for bad input and one line of output that
# names `rlgrad[EXTRA]`
needs() {
    local extra=$1 out code
    shift
    out=$("$@" 2>&1)
    code=$?
    printf '%s\n' "$out"
    [ "$code" = 2 ] || { echo "expected exit 2 naming rlgrad[$extra]; it exited $code"; return 1; }
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { echo "expected one line"; return 1; }
    grep -qF "pip install 'rlgrad[$extra]'" <<<"$out" || { echo "no rlgrad[$extra]"; return 1; }
}

# absent MODULE...: the venv really lacks them (else the `needs` checks would prove nothing)
absent() { python -c "
import importlib.util, sys
found = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]
sys.exit(f'installed but should not be: {found}' if found else 0)" "$@"; }

# rows CSV N: the file has exactly N data rows
rows() { python -c "
import csv, sys
n = len(list(csv.DictReader(open(sys.argv[1]))))
sys.exit(0 if n == int(sys.argv[2]) else f'{sys.argv[1]}: {n} rows, not {sys.argv[2]}')" "$@"; }

# resumed A B: metrics.csv B, resumed from half way, has A's rows on every column but the clocks
# (a resume is exact), and its last row was written again (its clocks differ: it did run)
resumed() { python -c "
import csv, sys
clocks = ('wall_s', 'train_s', 'sps')
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
rest = [[{k: v for k, v in r.items() if k not in clocks} for r in rows] for rows in (a, b)]
if not a or rest[0] != rest[1]:
    sys.exit(f'the resumed run differs:\n{rest[0]}\n{rest[1]}')
if all(a[-1][k] == b[-1][k] for k in clocks):
    sys.exit('the last row is the old one: the resume did not run the second half')" "$@"; }

nonempty() { test -s "$1" || { echo "$1 is missing or empty"; return 1; }; }

# train_eval_plot_resume LANE ALGO ARGS...: a short run with a checkpoint half way, its eval and
# plot, then a resume from that checkpoint, which must reproduce the second half exactly
train_eval_plot_resume() {
    local lane=$1 algo=$2 run=$2-run
    shift 2
    step "$lane" "train $algo" rlgrad train "$algo" --env CartPole-v1 --run-dir "$run" \
        --no-progress "$@" &&
        step "$lane" "$algo metrics.csv has 2 rows" rows "$run/metrics.csv" 2 &&
        step "$lane" "$algo learning curve" nonempty "$run/learning_curve.png" &&
        step "$lane" "eval $algo" rlgrad eval "$run" --episodes 2 &&
        step "$lane" "plot $algo" rlgrad plot "$run" -o "$algo.png" &&
        step "$lane" "$algo plot written" nonempty "$algo.png" &&
        step "$lane" "keep $algo metrics" cp "$run/metrics.csv" "$algo-uninterrupted.csv" &&
        step "$lane" "resume $algo half way" rlgrad train --resume "$run" --no-progress \
            --checkpoint "$(ls "$run"/checkpoints/step_*.pt | sort | sed -n 2p)" &&
        step "$lane" "$algo resumed exactly" resumed "$algo-uninterrupted.csv" "$run/metrics.csv"
}

lane_core() {
    step core "no optional package" absent gymnasium matplotlib ray optuna transformers marimo &&
        step core "import rlgrad" python -c "import rlgrad, rlgrad.app.cli" &&
        step core "rlgrad examples" rlgrad examples &&
        step core "rlgrad tour" rlgrad tour &&
        step core "train names [gym]" needs gym rlgrad train ppo --env CartPole-v1 &&
        step core "eval names [gym]" needs gym rlgrad eval some-run &&
        step core "plot names [plots]" needs plots rlgrad plot some-run &&
        step core "sweep names [ray]" needs ray rlgrad sweep ppo --seeds 0-1 &&
        step core "grpo-demo names [lm]" needs lm rlgrad grpo-demo --steps 1 &&
        step core "course names [course]" needs course rlgrad course
}

lane_gym() {
    step gym "no MuJoCo, Box2D, Ray, transformers, TensorBoard" \
        absent mujoco Box2D ray transformers tensorboard &&
        train_eval_plot_resume gym ppo --total-steps 2048 --config.checkpoint_every=1024 \
            --config.eval_every=1024 --config.eval_episodes=2 &&
        train_eval_plot_resume gym dqn --total-steps 800 --config.learning_starts=200 \
            --config.log_every=400 --config.checkpoint_every=400 --config.eval_every=400 \
            --config.eval_episodes=2 &&
        step gym "MuJoCo env names [mujoco]" needs mujoco rlgrad train sac --env HalfCheetah-v5 &&
        step gym "Box2D env names [box2d]" needs box2d rlgrad train ppo --env LunarLander-v3 &&
        step gym "sweep names [ray]" needs ray rlgrad sweep ppo --seeds 0-1 &&
        step gym "tune names [ray]" needs ray rlgrad tune ppo --trials 2 &&
        step gym "grpo-demo names [lm]" needs lm rlgrad grpo-demo --steps 1
}

# ray_sweep: a 2-trial sweep, resumed once if Ray's node did not start: Ray gives it a fixed 30 s,
# which a 2-core machine busy with the other installs has missed (once in five runs)
ray_sweep() {
    local out
    out=$(rlgrad sweep ppo --env CartPole-v1 --seeds 0-1 --total-steps 1024 --out sweep \
        --max-concurrent 2 --no-progress 2>&1) && { printf '%s\n' "$out"; return 0; }
    printf '%s\n' "$out"
    grep -q "timed out during startup" <<<"$out" || return 1
    echo "installs: Ray's node did not start in its 30 s; resuming the sweep once"
    rlgrad sweep --resume sweep --max-concurrent 2 --no-progress
}

lane_ray() {
    step ray "sweep 2 trials" ray_sweep &&
        { ! grep -q "resuming the sweep once" "$WORK/ray/sweep_2_trials.log" ||
            say ray "note   Ray's node missed its 30 s on the first start; the resume ran it"; } &&
        step ray "2 runs with metrics" bash -c 'for r in sweep/*/*/metrics.csv sweep/*/metrics.csv;
            do test -s "$r" && echo "$r"; done | grep -c . | grep -qx 2' &&
        step ray "report" rlgrad report sweep -o report --reps 200 &&
        step ray "report.md and figures" bash -c 'test -s report/report.md && ls report/*.png'
}

lane_lm() {
    step lm "no gymnasium, PEFT, TensorBoard" absent gymnasium peft tensorboard &&
        step lm "grpo-demo --lora names [peft]" needs peft rlgrad grpo-demo --lora --steps 1 &&
        step lm "train names [gym]" needs gym rlgrad train ppo --env CartPole-v1 &&
        step lm "grpo-demo 3 steps" rlgrad grpo-demo --steps 3 --output-dir demo --no-progress &&
        step lm "grpo-demo wrote a run directory of 3 steps" python -c "
import pathlib, sys
from rlgrad.support.run_format import read_run
run = read_run('demo')
steps = [row['step'] for row in run.rows]
ok = steps == [1, 2, 3] and run.finished and pathlib.Path('demo/checkpoint-3').is_dir()
sys.exit(0 if ok else f'steps {steps}, finished {run.finished}')"
}

# serve_course: `rlgrad course --port 0` prints its address; GET of the home page and of one
# chapter must answer 200 within 60 s each; then the server is stopped (the one started here)
serve_course() {
    rlgrad course --port 0 >server.out 2>server.err &
    local pid=$! address="" code
    # shellcheck disable=SC2064  # the pid is known now
    trap "kill $pid 2>/dev/null" EXIT
    for _ in $(seq 600); do
        address=$(grep -oE 'http://[^ ]+/' server.out | head -n 1)
        if [ -n "$address" ] || ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    cat server.out
    if [ -z "$address" ]; then
        echo "rlgrad course printed no address (it stopped, or took over 60 s); its stderr:"
        cat server.err
        return 1
    fi
    python - "$address" <<'PY'
import sys, time, urllib.error, urllib.request
for url in (sys.argv[1], sys.argv[1] + "e3-1/"):
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                print(url, answer.status)
                if answer.status == 200:
                    break
        except (OSError, urllib.error.HTTPError) as error:
            print(url, error)
        if time.monotonic() > deadline:
            sys.exit(f"{url}: no 200 in 60 s")
        time.sleep(0.5)
PY
    code=$?
    kill "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    trap - EXIT
    [ $code = 0 ] || { echo "its stderr:"; cat server.err; }
    return $code
}

lane_course() {
    step course "no gymnasium, Ray, transformers" absent gymnasium ray transformers &&
        step course "rlgrad course --list" rlgrad course --list &&
        step course "rlgrad course serves the home page and a chapter" serve_course &&
        step course "every chapter runs as a script" python -c "
import subprocess, sys
from rlgrad.course import CHAPTERS
for chapter in CHAPTERS:
    done = subprocess.run([sys.executable, str(chapter.path)], capture_output=True, text=True)
    print(chapter.section, 'exit', done.returncode)
    if done.returncode:
        sys.exit(done.stderr[-3000:])"
}

export -f needs absent rows resumed nonempty ray_sweep serve_course  # for the `bash -c` of step

extras_of() { case $1 in core) echo "" ;; *) echo "[$1]" ;; esac; }

# all of the work is in one function, which bash reads whole before it starts: editing this file
# while it runs cannot change what runs
main() {
    # 1. a wheel of the checkout (tracked and new files, not what is ignored) and the torch base
    mkdir -p "$WORK/src" "$WORK/dist" "$WORK/setup"
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 tar cf -) |
        tar xf - -C "$WORK/src"
    step setup "create the base venv" "$PYTHON" -m venv "$WORK/base" || exit 1
    # one after the other: a wheel built by the base venv's pip while torch installs into that
    # venv failed once ("Failed building wheel for rlgrad", 2026-12-05, on a loaded machine) and
    # passed when run again; serial costs the few seconds of the build
    # shellcheck disable=SC2086  # TORCH_SPEC may be several words (a spec and an index URL)
    step setup "install $TORCH_SPEC" \
        "$WORK/base/bin/python" -m pip install -q --no-compile $TORCH_SPEC &&
        step setup "build the wheel" \
            "$WORK/base/bin/python" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/src" ||
        { echo "installs: FAILED in setup"; exit 1; }
    wheel=$(ls "$WORK"/dist/rlgrad-*.whl)

    # 2. each install in its own venv, concurrently; each lane stops at its first failure
    for lane in "${LANES[@]}"; do
        (
            mkdir -p "$WORK/$lane" && cd "$WORK/$lane" || exit 1
            cp -al "$WORK/base" venv || cp -a "$WORK/base" venv || exit 1
            export PATH="$WORK/$lane/venv/bin:$PATH" VIRTUAL_ENV="$WORK/$lane/venv"
            step "$lane" "pip install rlgrad$(extras_of "$lane")" \
                python -m pip install -q --no-compile "$wheel$(extras_of "$lane")" &&
                step "$lane" "pip check" python -m pip check &&
                "lane_$lane"
        ) || [ -e "$WORK/$lane.failed" ] ||
            echo "a command outside the steps" >"$WORK/$lane.failed" &
    done
    wait

    failed=()
    for lane in "${LANES[@]}"; do
        [ -e "$WORK/$lane.failed" ] && failed+=("$lane: $(cat "$WORK/$lane.failed")")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        printf 'installs: FAILED (%s) after %d s\n' "$(IFS=';'; echo "${failed[*]}")" \
            $((SECONDS - STARTED))
        exit 1
    fi
    echo "installs: ${LANES[*]} passed in $((SECONDS - STARTED)) s"
}

main
exit
