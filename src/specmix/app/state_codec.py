"""Training state (optimizer, RNG states, metrics) as safetensors + JSON: loading never runs code.

A nested state of dicts, lists, tuples, numbers, strings and tensors becomes one
``.safetensors`` file: every tensor is stored under a generated key and the structure, with
each tensor replaced by ``{"__tensor__": key}``, goes into the file's metadata as JSON.
Dicts keep their key types (an optimizer's state is keyed by int) and tuples stay tuples.
Anything else is refused when saving, so what is read back is exactly what was written.
"""
from __future__ import annotations

import json

import torch

__all__ = ["save_state_file", "load_state_file", "StateFormatError"]

_STRUCT = "specmix.state"


class StateFormatError(ValueError):
    """A state file that is not one this module wrote (or a value it cannot store)."""


def _encode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise StateFormatError(f"cannot store a value of type {type(obj).__name__} in a training state")


def _decode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__tensor__"}:
        return tensors[obj["__tensor__"]]
    if set(obj) == {"__tuple__"}:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if set(obj) == {"__dict__"}:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    raise StateFormatError(f"unknown entry in a state file: keys {sorted(obj)}")


def save_state_file(state, path: str) -> None:
    """Write ``state`` (see the module docstring for what it may hold) to ``path``."""
    from safetensors.torch import save_file
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors)
    save_file(tensors, path, metadata={_STRUCT: json.dumps(structure)})


def load_state_file(path: str):
    """The state written by :func:`save_state_file`; a file of another kind is refused."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if _STRUCT not in meta:
            raise StateFormatError(f"{path} is not a specmix training state")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _decode(json.loads(meta[_STRUCT]), tensors)
