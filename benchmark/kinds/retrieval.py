"""Text-image retrieval. Queries are the captions (text->image) and the images (image->text), each
resampled on its own with the gallery held fixed.

- t2i R@K: fraction of captions whose image is among the K most similar images.
- i2t R@K: fraction of images with at least one of their captions among the K most similar captions.
- mean recalls: the mean of R@1, R@5, R@10 of one direction, or of both directions.
Many-to-many captions (Chinese-CLIP's protocol) are described in metrics.retrieval_ranks_multi.
"""

from __future__ import annotations

from .. import metrics
from ..specs import TaskSpec
from .base import Column, Kind, Metric, Outcome, center_crop, no_check

# scores: {"t2i": (texts,) and "i2t": (images,) zero-based rank of the first correct item, capped at max(KS)}
T2I = Column("t2i_rank", "texts", lambda s: s["t2i"].numpy())
I2T = Column("i2t_rank", "images", lambda s: s["i2t"].numpy())
KS = metrics.RECALL_KS


def _recall(k: int):
    return lambda ranks: metrics.recall_at(ranks, k)


METRICS = (
    *(Metric(f"t2i_recall@{k}", (T2I,), _recall(k)) for k in KS),
    *(Metric(f"i2t_recall@{k}", (I2T,), _recall(k)) for k in KS),
    Metric("t2i_mean_recall", (T2I,), metrics.mean_recall),
    Metric("i2t_mean_recall", (I2T,), metrics.mean_recall),
    Metric("mean_recall", (T2I, I2T), metrics.mean_recall),
)


def score(spec: TaskSpec, data, encoder, cache, language: str, batch_size: int, num_workers: int,
          settings: dict) -> tuple[dict, Outcome]:
    import torch

    embedded_texts = cache.texts(encoder, data.texts, batch_size)
    embedded_images = cache.images(encoder, data.images, batch_size, num_workers, center_crop(spec, settings))
    images, texts = embedded_images.embeddings, embedded_texts.embeddings
    if data.positives is not None:  # many-to-many captions (Chinese-CLIP's protocol)
        t2i, i2t = metrics.retrieval_ranks_multi(images, texts, torch.as_tensor(data.positives))
    else:
        t2i, i2t = metrics.retrieval_ranks(images, texts, torch.as_tensor(data.text_to_image))
    # the embeddings stay for the prediction lines; the image queries are the images some caption names
    queried = torch.unique(torch.as_tensor(data.positives).view(-1, 2)[:, 1]) if data.positives is not None else None
    scores = {"t2i": t2i, "i2t": i2t, "images": images, "texts": texts, "image_queries": queried}
    return scores, Outcome(len(data.images), len(data.texts), embedded_images.seconds,
                           embedded_images.reused).embedded_with(embedded_images, embedded_texts)


def predictions(scores: dict, k: int = max(KS)):
    """Text->image lines (query: caption index, top10: image indices), then image->text lines (query: image
    index, top10: caption indices), gallery items best first, equal scores in increasing index as the ranks
    count them. Image queries are all images, or with many-to-many captions the images some caption names."""
    images, texts, queried = scores["images"], scores["texts"], scores["image_queries"]
    query = 0
    for top in metrics.retrieval_top(texts, images, k):
        for row in top.tolist():
            yield {"query": query, "direction": "t2i", "top10": row}
            query += 1
    numbers = range(images.shape[0]) if queried is None else queried.tolist()
    rows = (row for top in metrics.retrieval_top(images if queried is None else images[queried.to(images.device)], texts, k)
            for row in top.tolist())
    for number, row in zip(numbers, rows):
        yield {"query": number, "direction": "i2t", "top10": row}


KIND = Kind("retrieval", METRICS, {"texts": lambda s: len(s["t2i"]), "images": lambda s: len(s["i2t"])}, no_check, score,
            predictions=predictions)
