"""Train the bundled tiny CLIP-style model ``tiny-shapes`` on procedural shapes (CPU, a few minutes).

    python -m benchmark.dev.train_tiny [--out DIR] [--steps N]
    python -m benchmark.dev.train_tiny --eval-only [--out DIR]

The output directory is a regular open_clip ``local-dir`` model::

    open_clip_config.json          {"model_cfg": ..., "preprocess_cfg": ...}
    open_clip_model.safetensors    CLIP state dict (fp32)
    tokenizer.json, tokenizer_config.json   word-level HF tokenizer (en, pt, zh)

so ``open_clip.create_model_and_transforms('local-dir:DIR')`` and
``open_clip.get_tokenizer('local-dir:DIR')`` load it offline.

The text tower is open_clip's own ``TextTransformer`` (EOS pooling); the tokenizer is a
``tokenizers`` WordLevel model (BERT normaliser: lower case, CJK characters split into single
tokens, accents kept) over every word of the training captions and zero-shot prompts.

Training images pass through the same eval transform that open_clip builds from the config
(the model is created through the ``local-dir`` loader on a staging copy of the directory), so
training and evaluation see identical preprocessing.  Everything is seeded; the training data
seed differs from the evaluation seeds (1234 for classification, 4321 for retrieval).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark.data import shapes

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PACKAGE_DIR / "weights" / "tiny-shapes"
PROMPTS_DIR = PACKAGE_DIR.parent / "prompts"

MODEL_NAME = "tiny-shapes"
CONTEXT_LENGTH = 32
SPECIAL_TOKENS = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, "[BOS]": 3}
OUTPUT_FILES = ("open_clip_config.json", "open_clip_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json")

TRAIN_SEED = 20250607  # model init / caption sampling
TRAIN_DATA_SEED = 777_001  # image pool; evaluation uses 1234 (classification) and 4321 (retrieval)
EVAL_CLS_SEED, EVAL_CLS_N = 1234, 400
EVAL_RET_SEED, EVAL_RET_N = 4321, 250
VAL_SEED, VAL_N = 555, 160  # small validation set for progress reports during training

# OpenAI CLIP normalisation (same values as open_clip.OPENAI_DATASET_MEAN / _STD).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------
# Prompts, texts, tokenizer, config
# ---------------------------------------------------------------------------------------------

def load_prompts(lang: str, prompts_dir: Path = PROMPTS_DIR) -> dict:
    with open(prompts_dir / lang / "shapes.json", encoding="utf-8") as f:
        return json.load(f)


def prompt_texts(lang: str, prompts: dict | None = None) -> list[list[str]]:
    """Per class (CLASS_KEYS order): every template filled with that class's name."""
    prompts = prompts or load_prompts(lang)
    return [[t.replace("{c}", name) for t in prompts["templates"]] for name in prompts["classnames"]]


def all_texts() -> list[str]:
    """Every text the model is trained on or evaluated with: prompts and captions, all languages."""
    texts: list[str] = []
    for lang in shapes.LANGUAGES:
        for per_class in prompt_texts(lang):
            texts.extend(per_class)
    for attrs in shapes.all_attribute_combinations():
        for caps in shapes.captions(attrs).values():
            texts.extend(caps)
    return texts


def build_tokenizer(texts: list[str]):
    """WordLevel tokenizer over the words of ``texts``, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = set()
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            words.add(word)
    vocab = dict(SPECIAL_TOKENS)
    for word in sorted(words):  # sorted: the vocabulary does not depend on set order
        vocab.setdefault(word, len(vocab))

    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", SPECIAL_TOKENS["[BOS]"]), ("[EOS]", SPECIAL_TOKENS["[EOS]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]",
                                   unk_token="[UNK]", model_max_length=CONTEXT_LENGTH)


def model_config(vocab_size: int) -> dict:
    return {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 96, "layers": 4, "head_width": 32,
                       "mlp_ratio": 2.0},
        "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": vocab_size, "hf_tokenizer_name": MODEL_NAME,
                     "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0, "pool_type": "eos",
                     "eos_id": SPECIAL_TOKENS["[EOS]"], "pad_id": SPECIAL_TOKENS["[PAD]"]},
    }


def preprocess_config() -> dict:
    return {"size": 64, "mode": "RGB", "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD),
            "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}


def write_model_dir(directory: Path, tokenizer, vocab_size: int) -> None:
    """Write config and tokenizer files (not the weights) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": model_config(vocab_size), "preprocess_cfg": preprocess_config()}
    (directory / "open_clip_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(directory))
    # transformers 5 writes tokenizer_class "TokenizersBackend", unknown to transformers 4;
    # "PreTrainedTokenizerFast" loads tokenizer.json with both.
    tc_path = directory / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text(encoding="utf-8"))
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc.pop("backend", None)
    tc_path.write_text(json.dumps(tc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def _setup_torch(seed: int):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    return torch


def _load(model_dir: Path):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    return model, preprocess, tokenizer


def _caption_bank(tokenizer):
    """Token ids of every candidate caption per attribute combination.

    Returns (tokens [n_combos, n_candidates, L], weights [n_candidates], combo index by key).
    Candidates per combination: in each language, every zero-shot prompt of its class (together
    half of the weight) and the two descriptive captions (the other half).
    """
    import torch

    combos = shapes.all_attribute_combinations()
    prompts = {lang: prompt_texts(lang) for lang in shapes.LANGUAGES}
    texts, weights = [], None
    for attrs in combos:
        row, w = [], []
        caps = shapes.captions(attrs)
        for lang in shapes.LANGUAGES:
            ps = prompts[lang][attrs["label"]]
            row += ps
            w += [0.5 / len(ps)] * len(ps)
            row += caps[lang]
            w += [0.5 / len(caps[lang])] * len(caps[lang])
        texts.append(row)
        weights = w
    flat = [t for row in texts for t in row]
    ids = tokenizer(flat).view(len(combos), len(texts[0]), -1)
    index = {(a["shape"], a["colour"], a["size"], a["position"]): i for i, a in enumerate(combos)}
    return ids, torch.tensor(weights) / sum(weights), index


def _image_pool(n: int, seed: int, preprocess):
    """``n`` training images, preprocessed with the eval transform (stored fp16), and their combo keys."""
    import torch

    rng = np.random.default_rng(seed)
    images, keys = None, []
    for i in range(n):
        img, attrs = shapes.draw(rng)
        x = preprocess(img)
        if images is None:
            images = torch.empty((n, *x.shape), dtype=torch.float16)
        images[i] = x.to(torch.float16)
        keys.append((attrs["shape"], attrs["colour"], attrs["size"], attrs["position"]))
    return images, keys


def train(out: Path = DEFAULT_OUT, steps: int = 2800, batch_size: int = 64, pool_size: int = 16000,
          lr: float = 2e-3, seed: int = TRAIN_SEED, log_every: int = 200, eval_every: int = 0) -> Path:
    torch = _setup_torch(seed)
    import open_clip
    from safetensors.torch import save_file

    t0 = time.time()
    texts = all_texts()
    hf_tok = build_tokenizer(texts)
    vocab_size = len(hf_tok.get_vocab())
    with tempfile.TemporaryDirectory(prefix="tiny-shapes-") as tmp:
        stage = Path(tmp)
        write_model_dir(stage, hf_tok, vocab_size)
        root_logger = logging.getLogger()
        old_level = root_logger.level
        root_logger.setLevel(logging.ERROR)  # "no CLIP weights found" is expected here
        try:
            torch.manual_seed(seed)
            model, preprocess, tokenizer = _load(stage)
        finally:
            root_logger.setLevel(old_level)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"vocab {vocab_size} tokens, model {n_params / 1e6:.3f} M parameters")

        caption_ids, caption_w, combo_index = _caption_bank(tokenizer)
        unk = SPECIAL_TOKENS["[UNK]"]
        assert not (caption_ids == unk).any(), "training caption with unknown token"
        images, keys = _image_pool(pool_size, TRAIN_DATA_SEED, preprocess)
        combo_of = torch.tensor([combo_index[k] for k in keys])
        print(f"image pool {pool_size} ready in {time.time() - t0:.1f}s")
        if eval_every:
            val = shapes.classification_samples(VAL_N, seed=VAL_SEED)
            val_x = torch.stack([preprocess(im) for im, _ in val])
            val_y = torch.tensor([y for _, y in val])

        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=lr, betas=(0.9, 0.98), eps=1e-6)
        warmup = max(1, steps // 20)

        def lr_at(step: int) -> float:
            if step < warmup:
                return lr * (step + 1) / warmup
            progress = (step - warmup) / max(1, steps - warmup)
            return lr * 0.5 * (1 + math.cos(math.pi * progress))

        loss_fn = open_clip.ClipLoss()
        gen = torch.Generator().manual_seed(seed)
        model.train()
        perm, pos = torch.randperm(pool_size, generator=gen), 0
        t_train = time.time()
        for step in range(steps):
            if pos + batch_size > pool_size:
                perm, pos = torch.randperm(pool_size, generator=gen), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            x = images[idx].float()
            choice = torch.multinomial(caption_w, batch_size, replacement=True, generator=gen)
            text = caption_ids[combo_of[idx], choice]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            img_f, txt_f, scale = model(x, text)[:3]
            loss = loss_fn(img_f, txt_f, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            if step % log_every == 0 or step == steps - 1:
                print(f"step {step:5d}/{steps}  loss {loss.item():.4f}  logit_scale {model.logit_scale.exp().item():.1f}"
                      f"  lr {lr_at(step):.2e}  {time.time() - t_train:.0f}s", flush=True)
            if eval_every and (step % eval_every == 0 or step == steps - 1) and step > 0:
                model.eval()
                with torch.no_grad():
                    f = model.encode_image(val_x, normalize=True)
                    accs = {lang: ((f @ zero_shot_classifier(model, tokenizer, lang).T).argmax(1) == val_y)
                            .float().mean().item() for lang in shapes.LANGUAGES}
                model.train()
                print(f"  validation acc1 (n={VAL_N}) " + "  ".join(f"{k} {v:.3f}" for k, v in accs.items()), flush=True)

        model.eval()
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(stage / "open_clip_model.safetensors"))

        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
            if (stage / name).exists():
                shutil.copyfile(stage / name, out / name)
    print(f"training done in {time.time() - t0:.1f}s -> {out}")
    return out


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

def _encode_images(model, preprocess, images, batch_size: int = 200):
    import torch

    feats = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.stack([preprocess(im) for im in images[i:i + batch_size]])
            feats.append(model.encode_image(x, normalize=True))
    return torch.cat(feats)


def _encode_texts(model, tokenizer, texts):
    import torch

    with torch.no_grad():
        return model.encode_text(tokenizer(texts), normalize=True)


def zero_shot_classifier(model, tokenizer, lang: str):
    import torch

    rows = []
    for per_class in prompt_texts(lang):
        e = _encode_texts(model, tokenizer, per_class).mean(0)
        rows.append(e / e.norm())
    return torch.stack(rows)


def _bgr(img):
    from PIL import Image

    r, g, b = img.split()
    return Image.merge("RGB", (b, g, r))


def evaluate(model_dir: Path | str = DEFAULT_OUT, verbose: bool = True) -> dict:
    """Load ``model_dir`` through open_clip's local-dir loader and measure the quality bar.

    Returns {"acc1": {lang: ...}, "acc1_bgr": {...}, "acc1_no_norm": {...},
             "t2i_r5": {...}, "i2t_r5": {...}, "t2i_r1": {...}}.
    """
    import torch
    from torchvision.transforms import Compose, Normalize

    torch.set_num_threads(2)
    model_dir = Path(model_dir).resolve()
    model, preprocess, tokenizer = _load(model_dir)
    model.eval()
    no_norm = Compose([t for t in preprocess.transforms if not isinstance(t, Normalize)])

    cls = shapes.classification_samples(EVAL_CLS_N, seed=EVAL_CLS_SEED)
    images = [im for im, _ in cls]
    labels = torch.tensor([y for _, y in cls])
    feats = {
        "acc1": _encode_images(model, preprocess, images),
        "acc1_bgr": _encode_images(model, preprocess, [_bgr(im) for im in images]),
        "acc1_no_norm": _encode_images(model, no_norm, images),
    }
    res: dict = {k: {} for k in feats}
    for lang in shapes.LANGUAGES:
        clf = zero_shot_classifier(model, tokenizer, lang)
        for k, f in feats.items():
            res[k][lang] = ((f @ clf.T).argmax(1) == labels).float().mean().item()

    ret = shapes.caption_samples(EVAL_RET_N, seed=EVAL_RET_SEED)
    img_f = _encode_images(model, preprocess, [im for im, _ in ret])
    res.update({"t2i_r1": {}, "t2i_r5": {}, "i2t_r5": {}})
    for lang in shapes.LANGUAGES:
        texts, owner = [], []
        for i, (_, caps) in enumerate(ret):
            texts += caps[lang]
            owner += [i] * len(caps[lang])
        owner_t = torch.tensor(owner)
        txt_f = _encode_texts(model, tokenizer, texts)
        sim = txt_f @ img_f.T  # [captions, images]
        top = sim.topk(5, dim=1).indices
        res["t2i_r1"][lang] = (top[:, 0] == owner_t).float().mean().item()
        res["t2i_r5"][lang] = (top == owner_t[:, None]).any(1).float().mean().item()
        top_t = sim.T.topk(5, dim=1).indices  # [images, 5] caption indices
        res["i2t_r5"][lang] = (owner_t[top_t] == torch.arange(len(ret))[:, None]).any(1).float().mean().item()

    if verbose:
        chance = 5 / EVAL_RET_N
        print(f"evaluation of {model_dir}")
        for k, v in res.items():
            print(f"  {k:13s} " + "  ".join(f"{lang} {v[lang]:.3f}" for lang in shapes.LANGUAGES)
                  + (f"   (R@5 chance {chance:.3f})" if k.endswith("r5") else ""))
        for k in ("acc1_bgr", "acc1_no_norm"):
            print(f"  drop {k[5:]:8s} " + "  ".join(f"{lang} {res['acc1'][lang] - res[k][lang]:+.3f}"
                                                    for lang in shapes.LANGUAGES))
        size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
        print(f"  model dir size {size / 1e6:.2f} MB")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.dev.train_tiny", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--steps", type=int, default=2800)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--pool-size", type=int, default=16000, help="number of distinct training images")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=TRAIN_SEED)
    ap.add_argument("--eval-every", type=int, default=400, help="report validation accuracy every N steps")
    ap.add_argument("--eval-only", action="store_true", help="only evaluate an existing model directory")
    args = ap.parse_args(argv)
    if not args.eval_only:
        train(args.out, steps=args.steps, batch_size=args.batch_size, pool_size=args.pool_size, lr=args.lr,
              seed=args.seed, eval_every=args.eval_every)
    evaluate(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
