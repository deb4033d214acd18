"""The folder vLLM loads a model from, per model, precision and weight source.

Dummy weights (the default, fully offline): a generated folder holding the
shipped architecture ``config.json`` plus, for pre-quantised variants (int8
W8A8), the ``quantization_config`` that makes vLLM build quantised layers.
vLLM then fills every tensor with random values (``load_format="dummy"``): speed,
memory and utilisation do not depend on weight values once the output length is
fixed.

Pretrained weights: a local folder from ``weights_paths`` or the hub id from the
catalog (or the quantised checkpoint the catalog names for the precision).

GGUF precisions (``gguf_file_type``): vLLM reads the weights from one GGUF file
(``load_format="gguf"``) and the architecture from a config folder
(``hf_config_path``). Dummy weights are then the study's own GGUF file of the
model (``gguf_files.build``: random weights in llama.cpp's per-tensor types, the
file 06_edge runs in llama.cpp), built once and cached, beside the generated
config folder; vLLM's ``load_format="dummy"`` cannot stand in, since its GGUF
layers take their shapes from the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import catalog, paths
from .atomic import build_folder
from .errors import UnsupportedVariant


@dataclass(frozen=True)
class ModelSource:
    model: str  # path or hub id given to vLLM (a GGUF file: its path, or "<repo>:<file type>")
    load_format: str  # "dummy", "auto" or "gguf"
    weights: str  # "dummy" (random values) or "pretrained"
    description: str  # what a reader sees in results
    # The architecture config (config.json) when ``model`` is a weights file that vLLM
    # does not read it from (GGUF): a folder or hub id, vLLM's ``hf_config_path``.
    hf_config_path: str | None = None


def prepare(model_key: str, precision_key: str, weights: str, weights_path: str | None = None) -> ModelSource:
    spec = catalog.model(model_key)
    prec = catalog.precision(precision_key)
    if prec.gguf_file_type:
        return _gguf(spec, prec, weights, weights_path)
    if weights == "dummy":
        folder = _dummy_folder(spec, prec)
        return ModelSource(str(folder), "dummy", "dummy", f"dummy (random) weights on the {spec.display} architecture")
    if weights != "pretrained":
        raise ValueError(f"weights must be 'dummy' or 'pretrained', not {weights!r}")
    if prec.quantization_config:
        # A W8A8 variant needs a checkpoint calibrated and saved in that format.
        ckpt = spec.checkpoints.get(precision_key)
        if not ckpt:
            raise UnsupportedVariant(
                f"no pretrained {prec.display} checkpoint is known for {spec.display}; add one under "
                f"'checkpoints' in catalog/models.yaml or use weights: dummy"
            )
        return ModelSource(ckpt, "auto", "pretrained", f"pretrained checkpoint {ckpt}")
    source = weights_path or spec.hf_id
    if not source:
        raise UnsupportedVariant(f"{spec.display} has no hub id; give a local folder in weights_paths")
    return ModelSource(source, "auto", "pretrained", f"pretrained weights from {source}")


def _gguf(spec: catalog.ModelSpec, prec: catalog.PrecisionSpec, weights: str, weights_path: str | None) -> ModelSource:
    ft = prec.gguf_file_type
    if weights == "dummy":
        # gguf-py is a second to import: only here, for a GGUF precision
        from .gguf_files import build

        f = build(spec.key, str(ft))
        return ModelSource(str(f.path), "gguf", "dummy",
                           f"random weights in a GGUF {ft} file (llama.cpp's tensor types) on the "
                           f"{spec.display} architecture", hf_config_path=str(_dummy_folder(spec, prec)))
    if weights != "pretrained":
        raise ValueError(f"weights must be 'dummy' or 'pretrained', not {weights!r}")
    # A published GGUF file: a local .gguf path or "<hub repo>:<file type>", named in the catalog.
    ckpt = spec.checkpoints.get(prec.key)
    if not ckpt:
        raise UnsupportedVariant(
            f"no pretrained GGUF {ft} file is known for {spec.display}; add one under 'checkpoints' in "
            f"catalog/models.yaml ({prec.key}: a local .gguf file or '<hub repo>:{ft}') or use weights: dummy"
        )
    # Its architecture config and tokenizer: those of the model's 16-bit checkpoint.
    config = weights_path or spec.hf_id
    if not config:
        raise UnsupportedVariant(f"{spec.display} has no hub id; give its checkpoint folder (config.json and "
                                 "tokenizer) in weights_paths")
    return ModelSource(ckpt, "gguf", "pretrained", f"pretrained GGUF {ft} file {ckpt}", hf_config_path=config)


def _dummy_folder(spec: catalog.ModelSpec, prec: catalog.PrecisionSpec) -> Path:
    config = spec.hf_config()
    if prec.quantization_config:
        config["quantization_config"] = prec.quantization_config
    blob = json.dumps(config, sort_keys=True).encode()
    digest = hashlib.sha256(blob).hexdigest()[:12]
    folder = paths.cache_dir() / "models" / f"{spec.key}__{prec.key}__{digest}"
    return build_folder(folder, "config.json",
                        lambda tmp: (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n"))
