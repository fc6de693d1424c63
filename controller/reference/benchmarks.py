"""What each MLPerf Inference benchmark is scored on: the dataset and its full size.

A published closed-division number covers the whole dataset; a local run usually scores a
subset (or feeds synthetic inputs for timing). Saying both sizes beside each other is how the
comparison stays honest. Sizes are MLPerf Inference's own (the submission checker's
performance-sample counts, the accuracy scripts' totals); a benchmark not listed here is shown
without a size rather than with a guess.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchmarkFacts:
    dataset: str
    samples: int
    noun: str  # what one sample is: images, questions, cases, utterances


# results-tree benchmark name prefix -> facts (the first prefix that matches wins)
FACTS = {
    "resnet": BenchmarkFacts("ImageNet 2012 validation", 50_000, "images"),
    "mobilenet": BenchmarkFacts("ImageNet 2012 validation", 50_000, "images"),
    "retinanet": BenchmarkFacts("OpenImages (MLPerf validation subset)", 24_781, "images"),
    "ssd-mobilenet": BenchmarkFacts("COCO 2017 validation", 5_000, "images"),
    "ssd-resnet34": BenchmarkFacts("COCO 2017 validation", 5_000, "images"),
    "bert": BenchmarkFacts("SQuAD v1.1 dev (384-token windows)", 10_833, "samples"),
    "3d-unet": BenchmarkFacts("KiTS 2019 (MLPerf inference set)", 43, "cases"),
    "rnnt": BenchmarkFacts("LibriSpeech dev-clean", 2_513, "utterances"),
    "gptj": BenchmarkFacts("CNN/DailyMail validation", 13_368, "articles"),
    "stable-diffusion-xl": BenchmarkFacts("COCO 2014 captions (MLPerf subset)", 5_000, "prompts"),
}


def facts(benchmark: str) -> BenchmarkFacts | None:
    """The dataset facts of a benchmark named as results trees spell it (``bert-99.9``), or None."""
    name = benchmark.lower()
    return next((f for prefix, f in FACTS.items() if name.startswith(prefix)), None)
