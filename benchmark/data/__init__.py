"""The registry of dataset formats (one module per format) and the two entry points: check a task's dataset
options, and read its data. What the readers return is in base.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import ClipbenchError
from ..specs import HubSource, TaskSpec, describe_validation_error
from . import cnclip, folder, karpathy, pairs, pracegover, synthetic, wds, wds_json
from .base import ClassificationData, Format, ImageSource, InMemoryImages, PairData, RetrievalData, resolve_path

__all__ = ["ClassificationData", "Format", "ImageSource", "InMemoryImages", "PairData", "RetrievalData", "formats", "load", "resolve_path",
           "source", "validate_dataset"]


def formats() -> dict[str, Format]:
    return {"cnclip": cnclip.FORMAT, "folder": folder.FORMAT, "karpathy": karpathy.FORMAT, "pairs": pairs.FORMAT, "pracegover": pracegover.FORMAT,
            "shapes": synthetic.FORMAT, "wds": wds.FORMAT, "wds-json": wds_json.FORMAT}


def _options(spec: TaskSpec) -> tuple[Format, BaseModel]:
    known = formats()
    if spec.dataset.format not in known:
        raise ClipbenchError(
            f"{spec.source_file or spec.name}: field 'dataset.format': unknown format '{spec.dataset.format}' "
            f"(known: {', '.join(sorted(known))})"
        )
    fmt = known[spec.dataset.format]
    if spec.kind not in fmt.kinds:
        raise ClipbenchError(
            f"{spec.source_file or spec.name}: field 'dataset.format': the '{spec.dataset.format}' format holds "
            f"{' or '.join(fmt.kinds)} data, not {spec.kind}; use a format of that kind or change 'kind'"
        )
    try:
        return fmt, fmt.options.model_validate(spec.dataset.options)
    except ValidationError as exc:
        message = describe_validation_error(spec.source_file or spec.name, exc)
        raise ClipbenchError(message.replace("field '", "field 'dataset.")) from None


def validate_dataset(spec: TaskSpec) -> None:
    _options(spec)


def source(spec: TaskSpec) -> HubSource | None:
    """Where the task's files are and where to get them; None for data drawn at run time (`shapes`)."""
    _, options = _options(spec)
    return options if isinstance(options, HubSource) else None


def load(spec: TaskSpec, language: str, data_root: Path):
    """The task's data in `language`; relative dataset paths are read under `data_root`."""
    fmt, options = _options(spec)
    data = fmt.load(spec, options, language, data_root)
    if len(data.images) == 0:
        raise ClipbenchError(f"task '{spec.name}': {data.images.location} holds no images; check the dataset")
    return data
