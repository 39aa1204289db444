"""Checkpoints: bit-exact round trip, and every tampering case gives a clear CheckpointError."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fakescope.io import sha256_file
from fakescope.models import CheckpointError, ModelSpec, Net, list_models, load_checkpoint, save_checkpoint
from fakescope.models import checkpoint as ckpt


def make(tmp_path: Path, arch: str = "fast") -> Path:
    torch.manual_seed(0)
    net = Net(ModelSpec(arch=arch, threshold=0.42, temperature=1.7))
    net.train()
    net(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))  # move BN running stats off their defaults
    return save_checkpoint(net.eval(), tmp_path / "m", metrics={"val_acc": 0.9})


def edit_json(path: Path, fn) -> None:  # noqa: ANN001
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("arch", list_models())
def test_round_trip_is_bit_exact(tmp_path: Path, arch: str) -> None:
    torch.manual_seed(0)
    net = Net(ModelSpec(arch=arch, threshold=0.42, temperature=1.7)).eval()
    j = save_checkpoint(net, tmp_path / "m")
    loaded, meta = load_checkpoint(j)
    for (k, a), (k2, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    assert loaded.spec == net.spec and meta["spec"]["threshold"] == 0.42
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(net.logits(x), loaded.logits(x))
    # loading by stem and by .safetensors path works too
    load_checkpoint(tmp_path / "m")
    load_checkpoint(tmp_path / "m.safetensors")


def test_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    j = make(tmp_path)
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (sentinel,))

    (tmp_path / "m.safetensors").write_bytes(pickle.dumps(Evil(), protocol=4))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(j)
    assert not sentinel.exists()


def test_torch_save_zip_is_refused(tmp_path: Path) -> None:
    j = make(tmp_path)
    torch.save({"x": torch.zeros(1)}, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(j)


def test_truncated_weights(tmp_path: Path) -> None:
    j = make(tmp_path)
    w = tmp_path / "m.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    edit_json(j, lambda d: d.update(weights_sha256=sha256_file(w)))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(j)


def test_modified_weights_fail_the_hash(tmp_path: Path) -> None:
    j = make(tmp_path)
    w = tmp_path / "m.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(j)


def test_mismatched_architecture(tmp_path: Path) -> None:
    j = make(tmp_path, "fast")
    edit_json(j, lambda d: d["spec"].update(arch="seed-cnn"))
    with pytest.raises(CheckpointError, match="do not match architecture"):
        load_checkpoint(j)


def test_wrong_shapes(tmp_path: Path) -> None:
    j = make(tmp_path, "fast")
    edit_json(j, lambda d: d["spec"].update(arch_kwargs={"width": 8}))
    with pytest.raises(CheckpointError, match="architecture expects"):
        load_checkpoint(j)


def test_nan_weights(tmp_path: Path) -> None:
    j = make(tmp_path)
    net, _ = load_checkpoint(j)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first][..., 0] = float("nan")
    save_file(sd, str(tmp_path / "m.safetensors"))
    edit_json(j, lambda d: d.update(weights_sha256=sha256_file(tmp_path / "m.safetensors")))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(j)


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["spec"].update(threshold=7), "threshold"),
    (lambda d: d["spec"].update(temperature=-1), "temperature"),
    (lambda d: d["spec"].update(arch="no-such-arch"), "arch"),
    (lambda d: d["spec"].update(evil="1"), "unknown model spec fields"),
    (lambda d: d["spec"].update(image_size="32"), "image_size"),
    (lambda d: d.update(format="other/1"), "not a fakescope checkpoint"),
    (lambda d: d.pop("spec"), "spec"),
    (lambda d: d.update(weights_file="../../etc/passwd"), "bare file name"),
    (lambda d: d.update(weights_file="missing.safetensors"), "missing"),
])
def test_tampered_metadata(tmp_path: Path, edit, match: str) -> None:  # noqa: ANN001
    j = make(tmp_path)
    edit_json(j, edit)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(j)


def test_invalid_json_and_missing(tmp_path: Path) -> None:
    j = make(tmp_path)
    j.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(j)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent")


def test_bundled_weights_verified_against_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path)
    manifest = {"checkpoints": {"m": {"json_sha256": sha256_file(tmp_path / "m.json"),
                                      "weights_sha256": sha256_file(tmp_path / "m.safetensors")}}}
    (tmp_path / "MANIFEST.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(ckpt, "bundled_dir", lambda: tmp_path)
    net, _ = load_checkpoint("m")  # by bundled name
    assert net.spec.threshold == 0.42
    edit_json(tmp_path / "m.json", lambda d: d["spec"].update(threshold=0.01))
    with pytest.raises(CheckpointError, match="MANIFEST"):
        load_checkpoint("m")


@pytest.mark.parametrize("name", ["fast", "best"])
def test_shipped_checkpoints_load(name: str) -> None:
    if name not in ckpt.list_bundled():
        pytest.fail(f"bundled checkpoint {name!r} is missing from the package")
    net, meta = load_checkpoint(name)
    assert meta["spec"]["task"] == "synthetic" and net.spec.image_size == 32


def test_shipped_victim_is_a_cifar10_classifier() -> None:
    if "victim" not in ckpt.list_bundled():
        pytest.fail("bundled victim classifier is missing from the package")
    net, meta = load_checkpoint("victim")
    assert meta["spec"]["task"] == "classify" and len(net.spec.classes) == 10
    assert meta["metrics"]["test_accuracy"] > 0.8 and "train_command" in meta


def test_tta_is_part_of_the_spec(tmp_path: Path) -> None:
    net = Net(ModelSpec(arch="seed-cnn")).eval()
    doc = json.loads(save_checkpoint(net, tmp_path / "a", tta=True).read_text())
    assert doc["spec"]["tta"] is True and doc["tta"] is True  # top-level key kept for older readers
    assert load_checkpoint(tmp_path / "a")[0].spec.tta is True
    net.spec.tta = True
    doc = json.loads(save_checkpoint(net, tmp_path / "b").read_text())  # default: the net's own spec
    assert doc["spec"]["tta"] is True and doc["tta"] is True
    doc = json.loads(save_checkpoint(net, tmp_path / "c", tta=False).read_text())
    assert doc["spec"]["tta"] is False and doc["tta"] is False


@pytest.mark.parametrize(("top", "want"), [(True, True), (False, False), (None, False)])
def test_old_checkpoints_get_tta_from_the_top_level_key(tmp_path: Path, top: bool | None, want: bool) -> None:
    j = make(tmp_path)

    def old_style(d: dict) -> None:
        del d["spec"]["tta"]
        d.pop("tta")
        if top is not None:
            d["tta"] = top

    edit_json(j, old_style)
    assert ckpt.read_metadata(j)["spec"]["tta"] is want
    assert load_checkpoint(j)[0].spec.tta is want


def test_tta_disagreement_and_bad_values_are_refused(tmp_path: Path) -> None:
    j = make(tmp_path)
    edit_json(j, lambda d: d.update(tta=True))  # the spec still says False
    with pytest.raises(CheckpointError, match="'tta' is True but the spec says False"):
        load_checkpoint(j)
    edit_json(j, lambda d: d["spec"].update(tta="yes"))
    with pytest.raises(CheckpointError, match="tta must be true or false"):
        load_checkpoint(j)


@pytest.mark.parametrize("name", ckpt.list_bundled())
def test_bundled_checkpoints_keep_their_json_and_get_spec_tta(name: str) -> None:
    raw = json.loads((ckpt.bundled_dir() / f"{name}.json").read_text())
    net, meta = load_checkpoint(name)
    if "tta" in raw["spec"]:  # written since the spec records it (victim-wide)
        assert name not in ("fast", "fast-robust", "best", "victim", "adversarial")  # those files are unchanged
        assert net.spec.tta is raw["spec"]["tta"] is meta["spec"]["tta"]
        return
    assert net.spec.tta is bool(raw.get("tta", False)) is meta["spec"]["tta"]
    if name == "best":
        assert net.spec.tta  # best.json records flip averaging at the top level only
