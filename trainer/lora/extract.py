"""A LoRA from a DreamBooth (or any fine-tuned) result: the SVD of the weight difference of every Kohya target layer.

As Kohya's ``extract_lora_from_models.py``: per layer ``tuned - base`` (3x3 convs flattened), its first ``rank``
singular vectors, ``up = U S`` and ``down = Vh``, both clamped at the ``clamp_quantile`` of their values, alpha =
rank (scale 1; here one alpha, ``dim``, for every layer, each layer's scale folded into its up weights). Unlike it: the text encoder is kept whenever it changed at all (Kohya drops it under a fixed
``min_diff`` of 0.01, which loses the trigger word of a DreamBooth run with a small text-encoder learning rate), and
how large that change is gets reported; each layer's kept share of its difference is measured (after clamping); a
dynamic mode picks each layer's rank as the fewest singular values whose share of the Frobenius norm reaches a
fraction; identical models and models of different families are refused.

Example::

    result = extract(load_model(base), load_model(tuned), dim=32)
    write_lora(Path("sks.safetensors"), result.tensors, result.metadata(), "float")
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.lora.files import network_metadata
from trainer.lora.targets import Target, find_targets
from trainer.models.errors import ModelError


@dataclass
class LayerReport:
    """One layer's extraction: its rank, the share of its difference's Frobenius norm the LoRA keeps
    (``1 - ||diff - up down|| / ||diff||``) and the difference's size relative to the base weight."""

    name: str
    rank: int
    kept: float
    relative_change: float

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "name": self.name,
            "rank": self.rank,
            "kept": round(self.kept, 6),
            "relative_change": self.relative_change,
        }


@dataclass
class Extraction:
    """What ``extract`` made: Kohya tensors, a report per layer, the text encoder's change, untargeted changes."""

    tensors: dict[str, Any]
    layers: list[LayerReport]
    family: str
    v_parameterization: bool
    dim: int
    conv_dim: int
    te_relative_change: float  # ||tuned - base|| / ||base|| over the text encoder's target layers
    untargeted: dict[str, float] = field(default_factory=dict)  # part -> relative change a LoRA cannot carry

    def metadata(self) -> dict[str, str]:
        """Kohya's minimum LoRA metadata for this file."""
        return network_metadata(
            self.dim,
            float(self.dim),
            self.conv_dim,
            float(self.dim),
            self.family,
            self.v_parameterization,
        )

    def summary(self, part: str) -> dict[str, Any]:
        """Layers, mean and worst kept share of one part (``unet`` / ``te``)."""
        rows = [
            row for row in self.layers if row.name.startswith("lora_unet_" if part == "unet" else "lora_te_")
        ]
        if not rows:
            return {"layers": 0}
        return {
            "layers": len(rows),
            "mean_kept": round(sum(r.kept for r in rows) / len(rows), 6),
            "worst_kept": round(min(r.kept for r in rows), 6),
            "worst_layer": min(rows, key=lambda r: r.kept).name,
            "ranks": sorted({r.rank for r in rows}),
        }


def _quantile(values: Any, q: float) -> float:
    """The q-quantile of a tensor of any size (torch.quantile refuses more than 16 M values)."""
    import torch

    flat = values.flatten()
    k = max(1, min(flat.numel(), math.ceil(q * flat.numel())))
    return float(torch.kthvalue(flat.cpu(), k).values)


def fro_rank(singular: Any, fraction: float) -> int:
    """The fewest singular values whose share of the Frobenius norm reaches ``fraction`` (0..1]."""
    import torch

    energy = torch.cumsum(singular.double() ** 2, 0)
    total = float(energy[-1])
    if total == 0.0:
        return 0
    return int(torch.searchsorted(energy / total, torch.tensor(fraction**2, dtype=torch.float64))) + 1


def decompose(diff: Any, rank: int, clamp_quantile: float, fro: float | None) -> tuple[Any, Any, float]:
    """(up, down, kept share) of one layer's difference: rank ``rank`` (at most, with ``fro``) after the SVD."""
    import torch

    shape = diff.shape
    mat = diff.float().reshape(shape[0], -1)
    u, s, vh = torch.linalg.svd(mat, full_matrices=False)
    rank = min(rank, *mat.shape)
    if fro is not None:
        rank = max(1, min(rank, fro_rank(s, fro)))
    up = u[:, :rank] * s[:rank]
    down = vh[:rank]
    if clamp_quantile < 1.0:
        hi = _quantile(torch.cat([up.flatten(), down.flatten()]), clamp_quantile)
        up, down = up.clamp(-hi, hi), down.clamp(-hi, hi)
    norm = float(torch.linalg.norm(mat))
    kept = 1.0 - float(torch.linalg.norm(mat - up @ down)) / norm if norm else 1.0
    if len(shape) == 4:
        up = up.reshape(shape[0], rank, 1, 1)
        down = down.reshape(rank, shape[1], shape[2], shape[3])
    return up.contiguous(), down.contiguous(), kept


def _check_pair(base: Any, tuned: Any, base_targets: list[Target], tuned_targets: list[Target]) -> None:
    if base.family != tuned.family:
        raise ModelError(
            f"base and tuned are of different families ({base.family} and {tuned.family}): "
            "extract from the model the tuned one was trained from"
        )
    if [(t.name, t.shape) for t in base_targets] != [(t.name, t.shape) for t in tuned_targets]:
        raise ModelError(
            "base and tuned have different architectures (layer shapes differ): not base and derivative"
        )


def _untargeted_change(base_module: Any, tuned_module: Any, targets: list[Target]) -> float:
    """Relative change of the weights no LoRA layer carries (norms, embeddings, biases, untargeted layers)."""
    import torch

    covered = {f"{t.path}.weight" for t in targets}
    base_state, tuned_state = base_module.state_dict(), tuned_module.state_dict()
    diff_sq = norm_sq = 0.0
    for key, value in base_state.items():
        if key in covered or not value.is_floating_point() or key not in tuned_state:
            continue
        diff_sq += float(torch.sum((tuned_state[key].float() - value.float()) ** 2))
        norm_sq += float(torch.sum(value.float() ** 2))
    return math.sqrt(diff_sq / norm_sq) if norm_sq else 0.0


def extract(
    base: Any,
    tuned: Any,
    dim: int,
    conv_dim: int = 0,
    clamp_quantile: float = 0.99,
    fro: float | None = None,
    device: str = "cpu",
) -> Extraction:
    """Extract a LoRA of ``tuned - base`` (two loaded ``SDModel``). ``dim``: rank of linear / 1x1 layers (the most
    with ``fro``); ``conv_dim``: rank of 3x3 convs (0 = not extracted). ModelError for the same or unrelated models."""
    import torch

    conv = conv_dim > 0
    base_targets = find_targets(base.unet, base.text_encoder, conv=conv)
    tuned_targets = find_targets(tuned.unet, tuned.text_encoder, conv=conv)
    _check_pair(base, tuned, base_targets, tuned_targets)
    roots = {"unet": (base.unet, tuned.unet), "te": (base.text_encoder, tuned.text_encoder)}
    tensors: dict[str, Any] = {}
    layers: list[LayerReport] = []
    te_diff_sq = te_norm_sq = 0.0
    with torch.no_grad():
        for target in base_targets:
            b_root, t_root = roots[target.part]
            weight = b_root.get_submodule(target.path).weight.float().to(device)
            diff = t_root.get_submodule(target.path).weight.float().to(device) - weight
            diff_norm, weight_norm = float(torch.linalg.norm(diff)), float(torch.linalg.norm(weight))
            if target.part == "te":
                te_diff_sq, te_norm_sq = te_diff_sq + diff_norm**2, te_norm_sq + weight_norm**2
            if diff_norm == 0.0:
                continue  # this layer did not change: nothing to carry
            rank = conv_dim if target.is_conv3x3 else dim
            up, down, kept = decompose(diff, rank, clamp_quantile, fro)
            # One alpha for every layer, the layer's own scale (alpha / rank) folded into up: diffusers applies
            # the most common alpha to layers whose alpha key it does not map (attention layers of Kohya files),
            # so layers of different ranks (full rank, dynamic rank) with alpha = rank would be scaled wrongly.
            tensors[f"{target.name}.lora_up.weight"] = (up * (down.shape[0] / dim)).cpu()
            tensors[f"{target.name}.lora_down.weight"] = down.cpu()
            tensors[f"{target.name}.alpha"] = torch.tensor(float(dim))
            layers.append(
                LayerReport(target.name, int(down.shape[0]), kept, diff_norm / (weight_norm or 1.0))
            )
    untargeted = {
        part: _untargeted_change(b, t, [x for x in base_targets if x.part == part])
        for part, (b, t) in roots.items()
    }
    if not tensors:
        if any(untargeted.values()):
            raise ModelError(
                "base and tuned differ only outside the layers a LoRA adapts (norms, embeddings, biases): "
                "nothing to extract"
            )
        raise ModelError("base and tuned are the same model (no weight differs): nothing to extract")
    return Extraction(
        tensors,
        layers,
        base.family,
        base.v_parameterization,
        dim,
        conv_dim,
        math.sqrt(te_diff_sq / te_norm_sq) if te_norm_sq else 0.0,
        untargeted,
    )


def extract_file(
    base_path: Path,
    tuned_path: Path,
    out: Path,
    dim: int,
    conv_dim: int = 0,
    clamp_quantile: float = 0.99,
    fro: float | None = None,
    precision: str = "float",
    force: bool = False,
    device: str = "cpu",
) -> Extraction:
    """Load both models, extract, write ``out`` (a Kohya-format LoRA, atomically; an existing ``out`` only with
    ``force``, and only a model file). ModelError for every refusal."""
    from trainer.lora.files import base_model_metadata, write_lora
    from trainer.models.io import check_output_target, load_model

    if out.suffix.lower() != ".safetensors":
        raise ModelError(f"{out}: a LoRA is written as .safetensors")
    check_output_target(out, "single-file", overwrite=force)
    if base_path.resolve() == tuned_path.resolve():
        raise ModelError("base and tuned are the same file: nothing to extract")
    try:
        import torch

        torch.empty(0, device=device)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"--device {device}: {str(exc).splitlines()[0]}") from exc
    result = extract(
        load_model(base_path), load_model(tuned_path), dim, conv_dim, clamp_quantile, fro, device
    )
    metadata = {
        **result.metadata(),
        **base_model_metadata(base_path),
        "ss_training_comment": f"extracted by dreamcurate from {tuned_path.name}",
        "dreamcurate.extract": json.dumps(
            {
                "unet": result.summary("unet"),
                "text_encoder": result.summary("te"),
                "fro": fro,
                "clamp_quantile": clamp_quantile,
                "te_relative_change": result.te_relative_change,
            }
        ),
    }
    write_lora(out, result.tensors, metadata, precision)
    return result
