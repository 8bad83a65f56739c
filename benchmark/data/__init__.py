"""The registry of dataset formats (one module per format) and the two entry points: check a task's dataset
options, and read its data. What the readers return is in base.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import ClipbenchError
from ..sources import HubArchive, HubWebdataset
from ..specs import HubSource, Location, TaskSpec, describe_validation_error
from . import cnclip, folder, karpathy, mirror, pairs, pracegover, synthetic, wds, wds_json
from .base import ClassificationData, Format, ImageSource, InMemoryImages, PairData, RetrievalData, resolve_path

__all__ = ["ClassificationData", "Format", "ImageSource", "InMemoryImages", "PairData", "RetrievalData", "formats", "hub_sources", "hub_view", "load",
           "location", "mirror", "resolve_path", "source", "validate_dataset"]


def formats() -> dict[str, Format]:
    return {"cnclip": cnclip.FORMAT, "folder": folder.FORMAT, "karpathy": karpathy.FORMAT, "pairs": pairs.FORMAT, "pracegover": pracegover.FORMAT,
            "shapes": synthetic.FORMAT, "wds": wds.FORMAT, "wds-json": wds_json.FORMAT, "hub-webdataset": mirror.FORMAT}


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
    from ..sources import check_sources

    _options(spec)
    check_sources(spec.sources, spec.kind, bool(spec.prompts), spec.num_classes, spec.source_file, spec.languages)


def location(spec: TaskSpec) -> Location | None:
    """The task's folder (`[dataset].path`) and where a person gets it; None for data drawn at run time (`shapes`)."""
    _, options = _options(spec)
    return options if isinstance(options, Location) else None


def hub_view(spec: TaskSpec, hub: HubWebdataset | HubArchive) -> HubSource:
    """The task's folder with one of its hub sources, in the flat form download.py reads."""
    found = location(spec)
    return HubSource(path=found.path if found else hub.repository, download=found.download if found else "",
                     hub=hub.repository, revision=hub.revision, hub_files=list(hub.files),
                     hub_cache=hub.kind == "hub-webdataset")


def hub_sources(spec: TaskSpec, language: str | None = None) -> list:
    """The task's hub sources in order of preference; with `language`, those that serve it."""
    return [s for s in spec.hub_sources()
            if language is None or getattr(s, "languages", None) is None or language in s.languages]


def source(spec: TaskSpec) -> HubSource | None:
    """Where the task's files are and where to get them: its folder and its first hub source (`hub` None when it
    has none); None for data drawn at run time (`shapes`)."""
    found = location(spec)
    if found is None:
        return None
    hubs = hub_sources(spec)
    if not hubs:
        return HubSource(path=found.path, download=found.download)
    return hub_view(spec, hubs[0])


def load(spec: TaskSpec, language: str, data_root: Path):
    """The task's data in `language`; relative dataset paths are read under `data_root`."""
    fmt, options = _options(spec)
    data = fmt.load(spec, options, language, data_root)
    if len(data.images) == 0:
        raise ClipbenchError(f"task '{spec.name}': {data.images.location} holds no images; check the dataset")
    return data
