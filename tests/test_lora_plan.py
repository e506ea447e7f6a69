"""The plan of a LoRA run: its adapter count comes from the trainer's own target layers, its memory is far below
DreamBooth's and its file is megabytes."""

from __future__ import annotations

import pytest

from curator.plan import estimates
from curator.plan.build import PlanOptions, build_plan
from curator.settings.config import TrainConfig

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("model", ["sd15", "sd2"])
def test_lora_parameter_counts_are_the_trainers_targets(model: str) -> None:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from trainer.lora.targets import find_targets
    from trainer.models.arch import sd15_architecture, sd21_architecture

    arch = sd15_architecture() if model == "sd15" else sd21_architecture()
    with torch.device("meta"):
        unet, te = UNet2DConditionModel(**arch.unet), CLIPTextModel(CLIPTextConfig(**arch.text_encoder))
    dim, conv_dim = 8, 4
    expected = 0
    for target in find_targets(unet, te, conv=True):
        out_features, in_features = target.shape[0], int(torch.tensor(target.shape[1:]).prod())
        expected += (conv_dim if target.is_conv3x3 else dim) * (out_features + in_features)
    assert estimates.lora_parameters(model, dim, conv_dim) == expected
    assert estimates.lora_parameters(model, dim) == sum(
        dim * (t.shape[0] + int(torch.tensor(t.shape[1:]).prod())) for t in find_targets(unet, te)
    )


def test_lora_plan_memory_and_file_size() -> None:
    from curator.dataset.discover import Concept, Dataset, Item

    items = [
        Item(path=__import__("pathlib").Path(f"/x/{i}.png"), rel=f"10_a/{i}.png", concept="a", repeats=10)
        for i in range(4)
    ]
    dataset = Dataset(
        root=items[0].path.parent,
        layout="kohya",
        concepts=[Concept("a", 10, items[0].path.parent, items=items)],
    )
    sizes = {item.rel: (512, 512) for item in items}
    dreambooth = build_plan(dataset, sizes, PlanOptions(TrainConfig(save_precision="fp16")))
    lora_settings = TrainConfig(save_precision="fp16", network_module="networks.lora", network_dim=32)
    lora = build_plan(dataset, sizes, PlanOptions(lora_settings))
    assert lora.total_steps == dreambooth.total_steps
    assert lora.vram_gb < 0.5 * dreambooth.vram_gb
    assert lora.checkpoints["each_bytes"] == 2 * estimates.lora_parameters("sd15", 32)
    assert 30e6 < lora.checkpoints["each_bytes"] < 45e6  # ~38 MB, as Kohya's rank-32 SD 1.5 files
