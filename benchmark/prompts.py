"""Zero-shot prompts: class names and templates per language, read from prompts/<language>/<name>.json,
or built in where a library ships them.

English ImageNet-1k names and CLIP's 80 templates are in open_clip (`IMAGENET_CLASSNAMES`,
`OPENAI_IMAGENET_TEMPLATES`); DESIGN.md section 5 says to import them, not copy them. A task names them as

    prompts = "open_clip:imagenet"      # English only
or, for a task that has files for its other languages, by its own prompt name (`imagenet1k`): the English
version of that name is served from open_clip and the pt/zh versions from prompts/<language>/imagenet1k.json.

open_clip 3.x stores each template as a one-argument function (`lambda c: f"a photo of a {c}."`). It is
turned into a `{c}` template by calling it with the literal text "{c}"; that is exact only when the function
inserts its argument unchanged once, which `_template_string` verifies with two probe names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ClipbenchError
from .paths import data_dir
from .specs import describe_validation_error
from .text import read_text


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    language: str
    source: str
    licence: str
    classnames: list[str] = Field(min_length=2)
    templates: list[str] = Field(min_length=1)
    notes: Optional[str] = None
    # true: names and templates are used exactly as written, leading and trailing spaces included, because the
    # upstream script encodes them so (CAPIVARA's 'coleonyx mitratus ', 'Arte do {} ')
    verbatim: bool = False
    # true: a published list with fewer names than the task has classes, kept as the upstream script used it
    # (one classifier column per listed name; a class beyond the list can never be predicted). Only a
    # protocol's file may say so (CAPIVARA's Portuguese Food-101); the check still refuses a longer list.
    short_list: bool = False


@dataclass(frozen=True)
class Prompts:
    classnames: list[str]
    templates: list[str]
    origin: str
    short_list: bool = False  # see PromptFile.short_list
    # per-class prompts (CuPL, from --templates): each class's own list, used as written; then `templates` is empty
    per_class: Optional[list[list[str]]] = None
    overrides: Optional[dict] = None  # the --templates/--classnames files these came from (custom_prompts.CustomPrompts.record)

    def texts(self) -> list[str]:
        """Every template filled with every class name, class-major: [c0t0, c0t1, ..., c1t0, ...]; with per-class
        prompts, each class's own, class after class."""
        if self.per_class is not None:
            return [prompt for prompts in self.per_class for prompt in prompts]
        return [fill(t, c) for c in self.classnames for t in self.templates]

    @property
    def n_texts(self) -> int:
        return sum(map(len, self.per_class)) if self.per_class is not None else len(self.classnames) * len(self.templates)

    @property
    def sha256(self) -> str:
        content = {"classnames": self.classnames, "templates": self.templates}
        if self.per_class is not None:
            content["per_class"] = self.per_class
        blob = json.dumps(content, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def info(self) -> dict:
        """What a result records of them (results.PromptsInfo): origin, sha256, number of templates; with per-class
        prompts, their count instead; the files of --templates/--classnames when these came from them."""
        out = {"origin": self.origin, "sha256": self.sha256, "n_templates": len(self.templates)}
        if self.per_class is not None:
            out.update(n_templates=None, per_class=True, n_texts=self.n_texts)
        if self.overrides:
            out["overrides"] = self.overrides
        return out


def fill(template: str, classname: str) -> str:
    """Templates use `{c}` (CLIP_benchmark) or a bare `{}` (ELEVATER, CAPIVARA) for the class name."""
    if "{c}" in template:
        return template.replace("{c}", classname)
    if "{}" in template:
        return template.replace("{}", classname)
    raise ClipbenchError(f"template '{template}' has no '{{c}}' placeholder for the class name; add one")


def check(prompts: Prompts, num_classes: int | None, where: str) -> Prompts:
    short_as_published = prompts.short_list and num_classes is not None and len(prompts.classnames) < num_classes
    if num_classes is not None and len(prompts.classnames) != num_classes and not short_as_published:
        raise ClipbenchError(
            f"{prompts.origin}: {len(prompts.classnames)} class names but {where} has {num_classes} classes; "
            "fix the class-name list so there is one name per class, in class-index order"
        )
    for template in prompts.templates:
        fill(template, "x")
    # Repeated class names are kept: the published ImageNet lists have some ("missile", "sunglasses"),
    # and the papers' numbers were measured with them.
    return prompts


# Built in: prompts a library ships (see the module note).
OPEN_CLIP_IMAGENET = "open_clip:imagenet"
PROBES = ("x", "Some Class-name (2)")


def _template_string(template) -> str:
    if isinstance(template, str):
        return template if "{c}" in template else template.replace("{}", "{c}")
    text = template("{c}")
    for probe in PROBES:
        if not isinstance(text, str) or text.count("{c}") != 1 or template(probe) != text.replace("{c}", probe):
            raise ClipbenchError(f"an open_clip template does not insert the class name verbatim ({text!r}); "
                                 "write its prompts to a file instead")
    return text


def _open_clip_imagenet() -> Prompts:
    import open_clip

    templates = [_template_string(t) for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    version = getattr(open_clip, "__version__", "?")
    origin = f"{OPEN_CLIP_IMAGENET} (open_clip {version}: IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES)"
    return Prompts(list(open_clip.IMAGENET_CLASSNAMES), templates, origin)


# (prompt name, language) -> provider
BUILTIN: dict[tuple[str, str], Callable[[], Prompts]] = {
    (OPEN_CLIP_IMAGENET, "en"): _open_clip_imagenet,
    ("imagenet1k", "en"): _open_clip_imagenet,
}


def builtin_prompts(name: str, language: str) -> Optional[Prompts]:
    """The built-in prompts for (name, language), or None when that pair is not built in (read the file)."""
    provider = BUILTIN.get((name, language))
    if provider is not None:
        return provider()
    if name == OPEN_CLIP_IMAGENET:
        raise ClipbenchError(f"'{OPEN_CLIP_IMAGENET}' prompts exist in English only, not '{language}'; "
                             "name a prompt file that has that language, or choose --language en")
    return None


def load(name: str, language: str, num_classes: int | None = None, root: Path | None = None) -> Prompts:
    if (found := builtin_prompts(name, language)) is not None:
        return check(found, num_classes, f"task '{name}'")
    path = (root or data_dir("prompts")) / language / f"{name}.json"
    if not path.is_file():
        raise ClipbenchError(f"no {language} prompts for '{name}': expected {path}; add that file or choose another --language")
    try:
        raw = PromptFile.model_validate_json(read_text(path))
    except ValidationError as exc:
        raise ClipbenchError(describe_validation_error(path, exc)) from None
    if raw.language != language:
        raise ClipbenchError(f"{path}: field 'language' is '{raw.language}' but the file is under {language}/; make them equal")
    if raw.verbatim:
        return check(Prompts(list(raw.classnames), list(raw.templates), str(path), raw.short_list), num_classes, f"task '{name}'")
    return check(Prompts([c.strip() for c in raw.classnames], [t.strip() for t in raw.templates], str(path), raw.short_list),
                 num_classes, f"task '{name}'")
