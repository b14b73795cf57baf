"""benchmarks/torch_envs.py on tiny settings: what it records, not how fast anything is."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rlgrad.envs import ENVIRONMENTS

gymnasium = pytest.importorskip("gymnasium")

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_envs.py"
spec = importlib.util.spec_from_file_location("torch_envs_benchmark", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_json_holds_every_task_size_and_contender_with_its_repeats(tmp_path, capsys):
    out = tmp_path / "result.json"
    argv = ["--sizes", "1,3", "--steps", "4", "--seconds", "0.001", "--repeats", "3"]
    returned = bench.main([*argv, "--out", str(out)])
    result = json.loads(out.read_text())
    assert result == json.loads(json.dumps(returned))
    assert result["device"] == "cpu" and result["threads"] == 1 and result["repeats"] == 3
    assert result["command"] == "python benchmarks/torch_envs.py " + " ".join(
        [*argv, "--out", str(out)]
    )
    rows = {(r["task"], r["num_envs"], r["contender"]): r for r in result["rows"]}
    assert len(rows) == len(result["rows"])  # one row per (task, N, contender)
    for task in ENVIRONMENTS:
        native = gymnasium.spec(task).vector_entry_point is not None
        expected = ["torch float32", "torch float64", "gym sync"] + ["gym vector"] * native
        for num_envs in (1, 3):
            mine = [r for r in result["rows"] if (r["task"], r["num_envs"]) == (task, num_envs)]
            assert [r["contender"] for r in mine] == expected
            best = max(
                (r for r in mine if r["contender"].startswith("gym")), key=lambda r: r["median"]
            )
            for row in mine:
                assert len(row["steps_per_s"]) == 3 and all(v > 0 for v in row["steps_per_s"])
                assert row["q1"] <= row["median"] <= row["q3"]
                assert 1 <= row["steps_per_block"] <= 4
                if row["contender"].startswith("torch"):
                    assert row["best_gymnasium"] == best["contender"]
                    assert row["vs_best_gymnasium"] == pytest.approx(row["median"] / best["median"])
                else:
                    assert "vs_best_gymnasium" not in row
    table = capsys.readouterr().out.split("\n\n")[-1]
    assert table.startswith("| task | N | torch float32 | torch float64 | gym sync | gym vector |")
    assert len(table.strip().splitlines()) == 2 + 2 * len(ENVIRONMENTS)


@pytest.mark.skipif(not bench.torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_torch_rows_run_on_the_gpu():
    tiny = ["--sizes", "2", "--steps", "3", "--repeats", "1", "--seconds", "0.001"]
    result = bench.main(["--tasks", "CartPole-v1", *tiny, "--device", "cuda"])
    assert result["device"] == "cuda" and len(result["rows"]) == 4
    assert all(row["median"] > 0 for row in result["rows"])


def test_a_block_lasts_about_the_aimed_seconds_within_its_bounds():
    warmup = bench.WARMUP_STEPS
    assert bench.block_steps(0.01 * warmup, seconds=0.5, most=2000) == 50  # 10 ms a step
    assert bench.block_steps(1e-6 * warmup, seconds=0.5, most=2000) == 2000  # capped
    assert bench.block_steps(1.0 * warmup, seconds=0.5, most=2000) == bench.MIN_STEPS
    assert bench.block_steps(1.0 * warmup, seconds=0.5, most=4) == 4  # --steps below the floor


def test_unknown_tasks_and_a_missing_gpu_are_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--tasks", "Cartpole-v1"])
    assert "--tasks: unknown ['Cartpole-v1']" in capsys.readouterr().err
    if not bench.torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.main(["--device", "cuda"])
        assert "--device cuda: PyTorch sees no CUDA device here" in capsys.readouterr().err
