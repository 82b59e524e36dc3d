"""Shared entry-point helpers."""

from omegaconf import OmegaConf

from inpaintlab.runs.config import instantiate_list


def test_instantiate_list_skips_null_and_plain_entries():
    cfg = OmegaConf.create(
        {
            "kept": {"_target_": "collections.Counter", "a": 2},
            "switched_off": None,
            "not_an_object": {"value": 1},
        }
    )
    assert instantiate_list(cfg) == [{"a": 2}]
    assert instantiate_list(None) == []
