"""The ONNX Runtime engine: the same function as the torch model for every architecture it claims, the same checks
on untrusted weights, a scan that never imports torch, and a clear refusal where it cannot run a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.inference import onnx_engine as oe
from fakescope.inference.predict import predict_logits
from fakescope.inference.scorer import Detector
from fakescope.models import MODELS, CheckpointError, ModelSpec, Net, save_checkpoint
from fakescope.models.layout import KINDS, PLANS
from fakescope.scanning.demo import samples_dir
from fakescope.scanning.scan import scan

pytestmark = pytest.mark.skipif(not oe.available(), reason="onnxruntime not installed")


def _random_net(arch: str, seed: int, **spec: object) -> Net:
    """A net with random weights AND random BatchNorm statistics (so BN folding is really exercised)."""
    torch.manual_seed(seed)
    net = Net(ModelSpec(arch=arch, temperature=0.7, **spec))
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.data.mul_(100)  # random nets map noise images to nearly one logit: spread them out
    return net.eval()


@pytest.mark.parametrize(("tta", "size"), [(False, 32), (True, 32), (False, 20)])
@pytest.mark.parametrize("arch", sorted(oe.ARCHITECTURES))
def test_scores_match_torch(arch: str, tta: bool, size: int, tmp_path: Path) -> None:
    net = _random_net(arch, 1, mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], image_size=size)
    path = save_checkpoint(net, tmp_path / arch, tta=tta)
    images = np.random.default_rng(0).integers(0, 256, (70, size, size, 3), dtype=np.uint8)
    ours, ref = oe.OnnxDetector.load(path), Detector.load(path)
    za, zb = ours.logits(images), predict_logits(ref.net, images, tta=tta)
    assert za.shape == zb.shape == (70,)
    assert zb.std() > 1e-2  # the logits vary across images, so agreement means something
    np.testing.assert_allclose(za, zb, rtol=1e-4, atol=1e-4 * float(np.abs(zb).max()))
    a, b = ours.scores(images, batch_size=32), ref.scores(images)
    np.testing.assert_allclose(a, b, atol=2e-5)
    assert ours.labels(a, 0.5) == ref.labels(b, 0.5)
    assert (ours.tta, ours.threshold, ours.task) == (ref.tta, ref.threshold, ref.task)


def test_onnx_builder_knows_every_plan_kind() -> None:
    assert set(oe.STEPS) == set(KINDS)
    assert set(oe.ARCHITECTURES) == set(PLANS)


@pytest.mark.parametrize("arch", sorted(oe.ARCHITECTURES))
def test_plan_kwargs_and_multiclass_heads_match_torch(arch: str, tmp_path: Path) -> None:
    kwargs = {} if arch == "seed-cnn" else {"width": 6}
    net = _random_net(arch, 3, task="classify", classes=[str(i) for i in range(10)], arch_kwargs=kwargs)
    path = save_checkpoint(net, tmp_path / arch)
    images = np.random.default_rng(1).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    za, zb = oe.OnnxDetector.load(path).logits(images), predict_logits(Detector.load(path).net, images)
    assert za.shape == zb.shape == (9, 10)
    np.testing.assert_allclose(za, zb, rtol=1e-4, atol=1e-4 * float(np.abs(zb).max()))


def test_weights_of_another_width_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(_random_net("fast", 0, arch_kwargs={"width": 8}), tmp_path / "m")
    doc = json.loads(path.read_text())
    doc["spec"]["arch_kwargs"] = {"width": 6}  # the plan now expects 6-channel tensors
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"tensor 'body.0.0.weight' is \(8, 3, 3, 3\), expected \(6, 3, 3, 3\)"):
        oe.OnnxDetector.load(path)
    doc["spec"]["arch_kwargs"] = {"depth": 3}
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="cannot build architecture"):
        oe.OnnxDetector.load(path)


@pytest.mark.parametrize("arch", sorted(MODELS.names()))
def test_every_architecture_is_either_built_or_left_to_torch(arch: str, tmp_path: Path) -> None:
    spec = ModelSpec(arch=arch)
    if arch in oe.ARCHITECTURES:
        assert oe.supports(spec)
        return
    assert not oe.supports(spec)
    with pytest.raises(ValueError, match="no ONNX graph"):
        oe.build_graph(spec, {})


def test_wrong_or_tampered_weights_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(_random_net("fast", 0), tmp_path / "m")
    doc = json.loads(path.read_text())
    doc["spec"]["arch"] = "best"  # weights of `fast` under the name of another architecture
    path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="missing|expected"):
        oe.OnnxDetector.load(path)
    doc["spec"]["arch"] = "fast"
    path.write_text(json.dumps(doc))
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="SHA-256"):
        oe.OnnxDetector.load(path)


def test_engine_choice_in_scan(tmp_path: Path) -> None:
    path = str(save_checkpoint(_random_net("seed-cnn", 2), tmp_path / "seed"))
    files = [str(f) for f in sorted((samples_dir() / "FAKE").glob("*.jpg"))[:8]]
    a, b = scan(files, path, engine="onnx"), scan(files, path, engine="torch")
    assert [r.path for r in a] == [r.path for r in b]
    np.testing.assert_allclose([r.score for r in a], [r.score for r in b], atol=2e-5)
    with pytest.raises(ValueError, match="engine onnx cannot run"):
        scan(files, path, engine="onnx", bf16=True)
    srm = str(save_checkpoint(Net(ModelSpec(arch="srm-cnn")).eval(), tmp_path / "other"))
    with pytest.raises(ValueError, match="engine onnx cannot run"):
        scan(files, srm, engine="onnx")
    assert len(scan(files, srm)) == len(files)  # auto: left to torch
    with pytest.raises(ValueError, match="engine must be"):
        scan(files, path, engine="tensorrt")


@pytest.mark.parametrize("arch", sorted(oe.ARCHITECTURES))
def test_the_hand_written_protobuf_is_a_valid_canonical_onnx_model(arch: str) -> None:
    """``onnx_proto`` writes what the ``onnx`` package would: the checker accepts it and re-serializing it with
    protobuf gives the very same bytes."""
    onnx = pytest.importorskip("onnx")
    net = _random_net(arch, 4, task="classify", classes=["a", "b", "c"], image_size=20)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    blob = oe.build_graph(net.spec, state)
    m = onnx.load_from_string(blob)
    onnx.checker.check_model(m, full_check=True)
    assert m.SerializeToString() == blob
    assert (m.ir_version, [(o.domain, o.version) for o in m.opset_import]) == (oe.IR_VERSION, [("", oe.OPSET)])
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 20, 20, 3] and m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_attribute_encodings_match_onnx_helper() -> None:
    onnx = pytest.importorskip("onnx")
    from fakescope.inference import onnx_proto

    for value in (3, -2, 0.25, "same", [1, 2, 3], [0.5, -1.0], [-1, 0]):
        assert onnx_proto.attribute("k", value) == onnx.helper.make_attribute("k", value).SerializeToString(), value
    want = onnx.helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], group=1)
    assert onnx_proto.node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], group=1) == (
        want.SerializeToString())


@pytest.mark.slow
def test_a_cli_scan_with_a_bundled_model_never_imports_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom fakescope.cli import main\nrc = main(['scan', sys.argv[1], '--json'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert 'onnx' not in sys.modules, 'onnx was imported'\nsys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(samples_dir())], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 60 and all(r["model"] == "fast" and r["error"] is None for r in rows)
