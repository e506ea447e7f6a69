"""Kohya's ``fused_backward_pass``: the optimizer updates each parameter as soon as its gradient is complete, inside
the backward pass, and frees that gradient, so a full set of gradient buffers never exists (for SDXL's 2.6 B UNet
parameters that is 5 GB in bf16, 10 GB in fp32).

A post-accumulate-grad hook on every trained parameter clips that tensor's gradient (per tensor, as Kohya does),
runs the optimizer's ordinary ``step`` over a one-parameter view of the parameter's group (the optimizer's state and
the group's current learning rate are the real ones), then drops the gradient. It needs one backward per optimizer
step (no gradient accumulation) and one process (DDP reduces gradients after these hooks have run).

Example::

    handles = install(optimizer, max_grad_norm=1.0)
    loss.backward()          # every parameter is updated here
    lr_scheduler.step()      # the optimizer's own step() is not called
"""

from __future__ import annotations

from typing import Any


def step_parameter(optimizer: Any, param: Any, group: dict[str, Any]) -> None:
    """One optimizer update of ``param`` alone, with its group's settings and its own saved state."""
    groups = optimizer.param_groups
    optimizer.param_groups = [{**group, "params": [param]}]
    try:
        optimizer.step()
    finally:
        optimizer.param_groups = groups


def install(optimizer: Any, max_grad_norm: float) -> list[Any]:
    """Hook every parameter of ``optimizer`` that requires a gradient; returns the hook handles."""
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the real one
    handles = []
    for index, group in enumerate(inner.param_groups):
        for param in group["params"]:
            if not param.requires_grad:
                continue

            def hook(tensor: Any, index: int = index) -> None:
                if max_grad_norm:
                    torch.nn.utils.clip_grad_norm_([tensor], max_grad_norm)
                # the group by position, read now: load_state_dict (resume) replaces the group dicts, and the
                # learning-rate schedule writes into the current ones
                step_parameter(inner, tensor, inner.param_groups[index])
                tensor.grad = None

            handles.append(param.register_post_accumulate_grad_hook(hook))
    return handles
