"""Prompts that ship inside a library instead of as a file under prompts/<language>/.

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

from typing import Callable, Optional

from .errors import ClipbenchError
from .prompts import Prompts

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
