"""``TrainConfig`` refuses unknown choices, whether they come from code, a config file or flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakescope.training.config import TrainConfig, resolve_config

BAD = [("schedule", "cosine", "onecycle, constant"), ("task", "segment", "synthetic, adversarial, classify"),
       ("optimizer", "rmsprop", "sgd, adam"), ("augment", "heavy", "none, robust, negatives"),
       ("amp", "fp8", "auto, bf16, off"), ("device", "tpu", "auto, cpu, cuda")]


@pytest.mark.parametrize(("field", "value", "allowed"), BAD)
def test_an_unknown_choice_names_the_field_and_the_allowed_values(field: str, value: str, allowed: str,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(ValueError) as e:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert field in str(e.value) and repr(value) in str(e.value) and allowed in str(e.value)
    (tmp_path / "c.toml").write_text(f'{field} = "{value}"\n')
    with pytest.raises(ValueError, match=allowed):
        resolve_config(tmp_path / "c.toml")
    with pytest.raises(ValueError, match=allowed):
        resolve_config(**{field: value})


def test_every_allowed_choice_is_accepted() -> None:
    for schedule in ("onecycle", "constant"):
        assert TrainConfig(schedule=schedule).schedule == schedule
    for task in ("synthetic", "adversarial", "classify"):
        assert TrainConfig(task=task).task == task
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert TrainConfig(device=device).device == device
    for augment in ("none", "robust", "negatives"):
        assert resolve_config(augment=augment, amp="off", optimizer="adam").augment == augment
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="cuda:x")
