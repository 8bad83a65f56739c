"""SigLIP and SigLIP 2 through transformers: how their texts must be tokenised, and which of them we refuse.

Padding. SigLIP's text tower pools the hidden state of the *last position* (SiglipTextModel: "the model uses
the last token's hidden state, which may be padding"), and it was trained with every text padded to its full
length, so a text padded only to the longest in its batch (`padding=True`, what CLIP-style models get) embeds
differently, and depends on its batch. Every model card says so ("important: we pass `padding=max_length`
since the model was trained with this"; transformers v5.24 models/siglip/modeling_siglip.py, SiglipModel.forward).
Left out, it costs a lot: MTEB's fix, embeddings-benchmark/mteb pull request #1424 ("`padding=True` ->
`padding="max_length"`", MNIST zero-shot ~10 -> 80+ accuracy), and big_vision issue #186 (SigLIP 2 retrieval
repaired by `padding="max_length", max_length=64, truncation=True`). CLIP_benchmark issue #135 (SigLIP 2 at 74%
on ImageNet through transformers; no resolution in the thread as we read it) pads to max_length but passes
input_ids only and does not lowercase. So texts are padded to the text tower's max_position_embeddings (64 for the
released checkpoints) and truncated, as MTEB does (embeddings-benchmark/mteb @
0eb0ea026c672fb61ad64506571aaccdb033c37f, mteb/models/model_implementations/siglip_models.py,
SiglipModelWrapper.get_text_embeddings: padding="max_length", truncation=True).

No attention mask. big_vision's text encoder attends to the padding too (no mask; open_clip's SigLIP likewise,
mlfoundations/open_clip issue #984). transformers' conversion script saved the hub's tokenizers with
`model_input_names=["input_ids"]` ("important: make tokenizer not return attention_mask since original one
doesn't require it") and checked the converted logits against big_vision's with `model(input_ids=...)` alone
(huggingface/transformers @ 283d692a8db02072c2a4ce2ebaa844c6701f03ec,
src/transformers/models/siglip/convert_siglip_to_hf.py, convert_siglip_checkpoint; the SigLIP 2 tokenizer the
same way, get_tokenizer). So the model card's `model(**processor(...))` feeds input_ids alone on the hub's files,
and so do we, always: a tokenizer re-saved without that setting returns an attention_mask, which would change
the last position's embedding.

Text preprocessing. SigLIP's own SiglipTokenizer canonicalises every text itself (lowercase when its config's
do_lower_case, punctuation stripped, whitespace collapsed: big_vision's prompt_engineering.canonicalize_text,
cited in transformers' tokenization_siglip.py), so its texts are passed as they are. SigLIP 2's fixed-resolution
checkpoints (google/siglip2-*-patch*-NNN) are SiglipModel (config model_type "siglip") with a Gemma tokenizer
that does not lowercase (their tokenizer_config says GemmaTokenizer; transformers docs model_doc/siglip2.md:
"FixRes ... backwards compatible with SigLIP"); SigLIP 2 was trained on lowercased text (big_vision issues #186
and #187, the authors: "lowercasing the captions"; transformers pull request #43101 added Siglip2Tokenizer =
Gemma + lowercasing, but maps it to model_type "siglip2" only; the conversion script above asks its Gemma
tokenizer for do_lower_case=True, which GemmaTokenizer ignores). So for a SigLIP model whose tokenizer is not
SiglipTokenizer, texts are lowercased here before tokenising.

NaFlex. model_type "siglip2" is SigLIP 2's NaFlex variant (Siglip2Model): its image tower takes patch
sequences with pixel_attention_mask and spatial_shapes at each image's own aspect ratio, which our one-tensor-
per-image contract cannot carry. It is refused at load rather than evaluated wrongly.

Images need nothing here: SiglipImageProcessor resizes to its square size without a crop (bicubic; SigLIP 2's
conversion sets bilinear) and normalises with mean = std = 0.5, as big_vision's evaluations resize; HFEncoder
applies the processor itself, so a task's centre crop and its squash are both that one transform
(see hf.HFEncoder._own_transform).
"""

from __future__ import annotations

from ..errors import ClipbenchError

SIGLIP_TYPES = ("siglip",)
NAFLEX_TYPES = ("siglip2",)


def refuse_naflex(model_id: str, config) -> None:
    """One line, before any weights load, for a SigLIP 2 NaFlex model."""
    if getattr(config, "model_type", None) in NAFLEX_TYPES:
        raise ClipbenchError(
            f"{model_id} is a SigLIP 2 NaFlex model (Siglip2Model), whose images need pixel_attention_mask and "
            "spatial_shapes, which clipbench cannot feed; use a fixed-resolution SigLIP 2 checkpoint "
            "(e.g. google/siglip2-base-patch16-224)", exit_code=2)


def is_siglip(config) -> bool:
    return getattr(config, "model_type", None) in SIGLIP_TYPES


def text_length(name: str, config, context_length: int | None) -> int:
    """The length every text is padded (and truncated) to: the text tower's positions. A spec that asks for
    another length is refused, since the model pools its last position."""
    positions = config.text_config.max_position_embeddings
    if context_length is not None and context_length != positions:
        raise ClipbenchError(f"{name}: context_length {context_length} differs from the model's {positions} text "
                             f"positions; SigLIP pads every text to exactly {positions}, so set context_length = "
                             f"{positions} or leave it out", exit_code=2)
    return positions


def preprocesses_itself(tokenizer) -> bool:
    """SiglipTokenizer canonicalises (lowercase per its config, punctuation stripped); other tokenizers of
    SigLIP models (SigLIP 2's Gemma tokenizer) do not."""
    return type(tokenizer).__name__ == "SiglipTokenizer"
