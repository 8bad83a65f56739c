"""Zero-shot prompts: class names and templates per language, read from prompts/<language>/<name>.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ClipbenchError
from .paths import data_dir
from .specs import describe_validation_error


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    language: str
    source: str
    licence: str
    classnames: list[str] = Field(min_length=2)
    templates: list[str] = Field(min_length=1)
    notes: Optional[str] = None


@dataclass(frozen=True)
class Prompts:
    classnames: list[str]
    templates: list[str]
    origin: str

    def texts(self) -> list[str]:
        """Every template filled with every class name, class-major: [c0t0, c0t1, ..., c1t0, ...]."""
        return [fill(t, c) for c in self.classnames for t in self.templates]

    @property
    def sha256(self) -> str:
        blob = json.dumps({"classnames": self.classnames, "templates": self.templates}, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def fill(template: str, classname: str) -> str:
    """Templates use `{c}` (CLIP_benchmark) or a bare `{}` (ELEVATER, CAPIVARA) for the class name."""
    if "{c}" in template:
        return template.replace("{c}", classname)
    if "{}" in template:
        return template.replace("{}", classname)
    raise ClipbenchError(f"template '{template}' has no '{{c}}' placeholder for the class name; add one")


def check(prompts: Prompts, num_classes: int | None, where: str) -> Prompts:
    if num_classes is not None and len(prompts.classnames) != num_classes:
        raise ClipbenchError(
            f"{prompts.origin}: {len(prompts.classnames)} class names but {where} has {num_classes} classes; "
            "fix the class-name list so there is one name per class, in class-index order"
        )
    for template in prompts.templates:
        fill(template, "x")
    # Repeated class names are kept: the published ImageNet lists have some ("missile", "sunglasses"),
    # and the papers' numbers were measured with them.
    return prompts


def load(name: str, language: str, num_classes: int | None = None, root: Path | None = None) -> Prompts:
    from .prompts_builtin import builtin_prompts

    if (found := builtin_prompts(name, language)) is not None:
        return check(found, num_classes, f"task '{name}'")
    path = (root or data_dir("prompts")) / language / f"{name}.json"
    if not path.is_file():
        raise ClipbenchError(f"no {language} prompts for '{name}': expected {path}; add that file or choose another --language")
    from .data.text import read_text

    try:
        raw = PromptFile.model_validate_json(read_text(path))
    except ValidationError as exc:
        raise ClipbenchError(describe_validation_error(path, exc)) from None
    if raw.language != language:
        raise ClipbenchError(f"{path}: field 'language' is '{raw.language}' but the file is under {language}/; make them equal")
    return check(Prompts([c.strip() for c in raw.classnames], [t.strip() for t in raw.templates], str(path)), num_classes, f"task '{name}'")
