"""Scans on Ray (a local cluster of 2 CPUs): the rows of ``fakescope scan``, row for row, per-file errors included,
from paths or bytes, and a worker killed mid-scan is restarted and its batch retried. Skipped only without Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fakescope.cli.main import main
from fakescope.scanning.demo import samples_dir
from fakescope.scanning.ray import Predictor, _verdicts, scan_ray
from fakescope.scanning.scan import scan

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 << 20)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import the tests
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ray")
    for f in sorted((samples_dir() / "FAKE").glob("*.jpg"))[:10] + sorted((samples_dir() / "REAL").glob("*.jpg"))[:6]:
        shutil.copy(f, d / f.name)
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    np.savez(d / "a.npz", images=np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    return d


def _dicts(rows: list[Any]) -> list[dict[str, object]]:
    return [r.to_dict() for r in rows]


def test_scan_ray_equals_scan_row_for_row(folder: Path, model: str) -> None:
    inputs = [str(folder), str(folder / "a.npz"), str(folder / "missing.jpg")]
    want = scan(inputs, [model, "fast"])
    got = scan_ray(inputs, [model, "fast"], batch_size=4)
    assert _dicts(got) == _dicts(want) and len(got) == 2 * (16 + 2 + 3 + 1)
    assert sum(1 for r in got if r.error) == 2 * 3


def test_the_cli_engine_ray(folder: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(folder), "--model", model, "--engine", "ray", "--json", "--chunk", "5"]) == 1
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows == _dicts(scan([str(folder)], model))


def test_predictor_on_bytes_with_map_batches(folder: Path, model: str) -> None:
    files = sorted(str(p) for p in folder.glob("*") if p.suffix != ".npz")
    ds = ray.data.read_binary_files(files, include_paths=True).map_batches(
        Predictor, fn_constructor_kwargs={"models": [model]}, batch_size=4, num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=1))
    got = sorted(_verdicts(ds.to_pandas().to_dict("list")), key=lambda r: r.path)
    want = sorted(scan(files, model), key=lambda r: r.path)
    assert _dicts(got) == _dicts(want)
    blobs = Predictor([model])({"bytes": [Path(files[0]).read_bytes(), b""]})
    assert list(blobs["path"])[0].startswith("sha256:") and list(blobs["error"])[1] == "empty file (0 bytes)"


class DiesOnce(Predictor):
    """Kills its own worker process (SIGKILL, as the OOM killer would) on the first batch it is given."""

    def __init__(self, flag: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.flag = flag

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        if not os.path.exists(self.flag):
            Path(self.flag).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(batch)


def test_a_killed_worker_is_restarted_and_its_batch_retried(folder: Path, model: str, tmp_path: Path) -> None:
    files = sorted(str(p) for p in folder.glob("*.jpg"))
    flag = tmp_path / "killed"
    ctx = ray.data.DataContext.get_current()
    keep, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        ds = ray.data.from_items([{"path": f} for f in files]).map_batches(
            DiesOnce, fn_constructor_kwargs={"flag": str(flag), "models": [model]}, batch_size=4, num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=1))  # Ray Data's defaults: restart, retry
        got = [r for b in ds.iter_batches(batch_size=None, batch_format="numpy") for r in _verdicts(b)]
    finally:
        ctx.execution_options.preserve_order = keep
    assert flag.exists()  # a worker did die
    assert _dicts(got) == _dicts(scan(files, model))  # and no row was lost or repeated
