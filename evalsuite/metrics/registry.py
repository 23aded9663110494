"""The one definition of every metric: direction, scale, family, trivial baseline, reference.

Scoring, aggregation, the leaderboard, the series statistics and ``docs/metrics.md`` all
read this table; nothing else branches on metric names to learn a metric's facts.

Normalization (``aggregate.normalize``) maps a metric's trivial baseline *b* to 0 and its
best value to 100: ``100·(s − b)/(best − b)``, unclipped. The baseline family decides *b*:

- ``classification`` (accuracy, F1, Jaccard): the best of uniform-random guessing, guessing
  with the gold label prior, and every constant prediction — so neither always-"no" nor a
  prior-matching guesser scores above 0 on an imbalanced task;
- ``correlation`` (MCC, Pearson, Spearman, ×100): b = 0;
- ``text`` (BLEU, chrF, chrF++, ROUGE, TER, exact match): the score of a seeded derangement
  of the references (every output is a real reference of another example);
- ``lm`` (bits per byte, perplexity): not normalized and not in suite scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalsuite.core.errors import SpecError
from evalsuite.core.records import OutputType

Family = Literal["classification", "correlation", "text", "lm"]
Scale = Literal["0-100", "-100-100", "unbounded"]

_MC = frozenset({OutputType.MULTIPLE_CHOICE})
_GEN = frozenset({OutputType.GENERATE})
_LL = frozenset({OutputType.TARGET_LOGLIKELIHOOD, OutputType.ROLLING_LOGLIKELIHOOD})


@dataclass(frozen=True)
class MetricDef:
    """Every fact about one metric."""

    name: str
    """Name used in task YAML, results files and the site."""
    title: str
    """Human-readable name."""
    higher_is_better: bool
    """Direction: False for perplexity, bits per byte/char and TER."""
    scale: Scale
    """Range of the reported value: 0–100, −100…100 (correlations ×100), or unbounded."""
    family: Family
    """Which trivial baseline normalizes it (see the module docstring)."""
    output_types: frozenset[OutputType]
    """Output types the metric applies to."""
    formula: str
    """What is computed, in one line."""
    reference: str
    """The independent implementation the tests compare with."""
    corpus_level: bool = False
    """A corpus statistic (F1, MCC, correlations, BLEU/chrF/TER), not a mean of per-example values."""

    @property
    def best(self) -> float:
        """The metric's best value on its reported scale (the 100 of normalization)."""
        return 100.0 if self.higher_is_better else 0.0

    @property
    def normalizable(self) -> bool:
        """Has a trivial baseline and a best value, so it is normalized and enters suite scores."""
        return self.family != "lm"


def _m(name: str, title: str, family: Family, types: frozenset[OutputType], formula: str, reference: str,
       higher: bool = True, scale: Scale = "0-100", corpus: bool = False) -> MetricDef:
    return MetricDef(name, title, higher, scale, family, types, formula, reference, corpus)


_DEFS = [
    _m("acc", "accuracy", "classification", _MC | {OutputType.TARGET_LOGLIKELIHOOD}, "share of examples whose highest-log-likelihood choice is gold "
       "(target tasks: the target is the greedy continuation)", "scikit-learn accuracy_score"),
    _m("acc_norm", "accuracy, length-normalized by characters", "classification", _MC,
       "argmax of log-likelihood / characters of the choice (as lm-eval)", "hand-computed cases"),
    _m("acc_bytes", "accuracy, length-normalized by UTF-8 bytes", "classification", _MC,
       "argmax of log-likelihood / UTF-8 bytes of the choice", "hand-computed cases"),
    _m("acc_pmi", "accuracy, PMI-normalized", "classification", _MC,
       "argmax of log P(choice | context) − log P(choice | prefix token)", "hand-computed cases"),
    _m("f1_macro", "macro F1", "classification", _MC | {OutputType.MULTI_LABEL}, "unweighted mean of per-class F1 over labels present in gold or "
       "predictions", "scikit-learn f1_score(average='macro')", corpus=True),
    _m("f1_binary", "F1 of the positive class", "classification", _MC, "F1 of the task's `positive` label",
       "scikit-learn f1_score(average='binary')", corpus=True),
    _m("mcc", "Matthews correlation ×100", "correlation", _MC, "multi-class R_K (Gorodkin 2004) ×100",
       "scikit-learn matthews_corrcoef", scale="-100-100", corpus=True),
    _m("pearson", "Pearson r ×100", "correlation", frozenset({OutputType.REGRESSION}),
       "Pearson correlation of expected-value predictions with gold ×100", "scipy.stats.pearsonr", scale="-100-100",
       corpus=True),
    _m("spearman", "Spearman ρ ×100", "correlation", frozenset({OutputType.REGRESSION}),
       "Pearson correlation of average ranks ×100", "scipy.stats.spearmanr", scale="-100-100", corpus=True),
    _m("jaccard", "samples Jaccard", "classification", frozenset({OutputType.MULTI_LABEL}),
       "mean over examples of |G∩P|/|G∪P| (1 for two empty sets)", "scikit-learn jaccard_score(average='samples')"),
    _m("f1_micro", "micro F1 over labels", "classification", frozenset({OutputType.MULTI_LABEL}),
       "F1 of summed true/false positives and negatives over all labels",
       "scikit-learn f1_score(average='micro')", corpus=True),
    _m("exact_match", "exact match", "text", _GEN, "share of predictions equal to the reference after the task's "
       "text normalization", "hand-computed cases"),
    _m("bleu", "BLEU", "text", _GEN, "sacrebleu corpus BLEU (13a tokenizer)", "sacrebleu corpus_bleu", corpus=True),
    _m("spbleu", "spBLEU", "text", _GEN, "sacrebleu corpus BLEU with the flores200 SentencePiece tokenizer",
       "sacrebleu corpus_bleu(tokenize='flores200')", corpus=True),
    _m("chrf", "chrF", "text", _GEN, "sacrebleu corpus chrF (β=2, character 6-grams)", "sacrebleu corpus_chrf",
       corpus=True),
    _m("chrfpp", "chrF++", "text", _GEN, "sacrebleu corpus chrF with word bigrams", "sacrebleu corpus_chrf(word_order=2)",
       corpus=True),
    _m("ter", "TER", "text", _GEN, "sacrebleu corpus translation edit rate", "sacrebleu corpus_ter", higher=False,
       scale="unbounded", corpus=True),
    _m("rouge1", "ROUGE-1 F", "text", _GEN, "unigram overlap F-measure, tokens kept in every script", "brute-force counts"),
    _m("rouge2", "ROUGE-2 F", "text", _GEN, "bigram overlap F-measure, tokens kept in every script", "brute-force counts"),
    _m("rougeL", "ROUGE-L F", "text", _GEN, "longest-common-subsequence F-measure", "brute-force LCS"),
    _m("bits_per_byte", "bits per byte", "lm", _LL, "−Σ log-likelihood / (ln 2 · UTF-8 bytes)", "hand computation",
       higher=False, scale="unbounded", corpus=True),
    _m("bits_per_char", "bits per character", "lm", _LL, "−Σ log-likelihood / (ln 2 · characters)",
       "hand computation", higher=False, scale="unbounded", corpus=True),
    _m("perplexity", "token perplexity", "lm", _LL, "exp(−Σ log-likelihood / tokens)", "hand computation",
       higher=False, scale="unbounded", corpus=True),
    _m("word_perplexity", "word perplexity", "lm", frozenset({OutputType.ROLLING_LOGLIKELIHOOD}), "exp(−Σ log-likelihood / whitespace words)",
       "hand computation", higher=False, scale="unbounded", corpus=True),
]

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}
NAMES: tuple[str, ...] = tuple(METRICS)


def get(name: str) -> MetricDef:
    """The definition of ``name``; an unknown name suggests the closest ones."""
    try:
        return METRICS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, NAMES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(NAMES)}"
        raise SpecError(f"unknown metric '{name}'{hint}") from None


def find(name: str) -> MetricDef | None:
    """The definition of ``name``, or None (e.g. an imported lm-eval metric we do not define)."""
    return METRICS.get(name)


def for_output_type(output_type: OutputType) -> list[str]:
    """Metrics that apply to an output type, in table order."""
    return [d.name for d in _DEFS if output_type in d.output_types]


def docs_markdown() -> str:
    """The metric table of ``docs/metrics.md`` (generated; a test keeps the file in sync)."""
    rows = ["| metric | title | direction | scale | baseline family | applies to | formula | checked against |",
            "|---|---|---|---|---|---|---|---|"]
    for d in _DEFS:
        types = ", ".join(sorted(t.value for t in d.output_types))
        cells = [f"`{d.name}`", d.title, f"{'higher' if d.higher_is_better else 'lower'} is better", d.scale, d.family, types,
                 d.formula, d.reference]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


_METRICS_PROSE = """# Metrics

Generated from `evalsuite/metrics/registry.py` by `evalsuite docs`; do not edit by hand.

Every metric value in a results file carries `signature` (metric, options, normalization, tokenizer,
prompt variant, backend, evalsuite version), `stderr` and `ci` (seeded bootstrap, 1,000 resamples, 200
for sacrebleu metrics without segment statistics; clusters resampled together when a task declares
`cluster`; the same resamples for every prompt of a task), `baseline` and `baseline_kind`.

## The metrics

{table}
## Normalization and the trivial baseline

One formula, applied once (`aggregate.normalize`): `normalized = 100 · (s − b) / (best − b)`, with
`best` = 100 for higher-is-better metrics and 0 for TER. The stored value is **unclipped**: a score
below the baseline is negative, a page shows it as "< 0", and spreads and suite means use the
unclipped value. The baseline `b` is computed from the evaluated data, per family:

- **classification** (`acc*`, `f1_macro`, `f1_binary`, `jaccard`, `f1_micro`): the best of
  uniform-random guessing (accuracy: the mean of 1/choices exactly; F1 and Jaccard: the mean of 1,000
  seeded draws), guessing with the gold label prior (accuracy: Σ p² exactly), and every constant
  prediction (each label; for multi-label the empty set, all labels and each single label). So always
  answering "no" on an imbalanced task (OHSD, OOLD) normalizes to 0, not to 19.
- **correlation** (`mcc`, `pearson`, `spearman`, ×100): b = 0.
- **text** (`exact_match`, BLEU, chrF, chrF++, ROUGE, TER): the mean score of 40 seeded derangements of
  the references (every output is a real reference of another example), so chrF's character overlap
  between unrelated sentences (10–14 points on ARGEN) is the baseline, not 0.
- **lm** (bits per byte/char, perplexities): not normalized, not in suite scores; shown raw with their
  direction (lower is better).

A task YAML may fix the baseline (`random_baseline: <number>`); `baseline_kind` then says `fixed`.

## Across prompts: headline, interval, chance

A task's headline is a statistic of its prompts' normalized scores: max (default), median or mean
(`aggregate.aggregate_task`; all three are stored).

- **Interval of the max.** The estimand is θ_max, the maximum over prompts of each prompt's population
  score. The interval is `[max_p L_p, max_p U_p]` where `[L_p, U_p]` is prompt p's bootstrap interval at
  level α/k (Bonferroni over k prompts): whenever every prompt's interval covers its θ_p, the interval
  covers θ_max, whatever the correlation between prompts. Simulated coverage is 96–99 % at nominal 95 %
  with about 1.25× the width of one prompt's interval (`benchmarks/max_interval_coverage.py`).
  The percentile interval of the resampled max does not keep that promise (the winner's curse stays in
  it: about 75 % coverage with four tied prompts).
- **Median and mean**: percentiles over the joint cluster resamples.
- **Chance** is on the same normalized scale: the statistic over k prompts of a chance-level predictor
  (uniform guessing; for correlations, predictions shuffled across examples; for text, derangements).
  For accuracy with a fixed number of choices the max is exact (binomial: k prompts at chance, n = 300,
  three choices → expected best 36.14 raw = 4.2 normalized); otherwise from ≥ 1,000 seeded draws per
  prompt (40 derangements for text). Shown as the mean and the central 95 % of that statistic.

## Suite scores, coverage, comparisons

Suite score = mean of task scores within each category, then mean of categories, over the
leaderboard's normalized columns only. A model missing tasks shows its coverage ("7/9") and ranks
after every complete model. When a model has several runs of a task, the leaderboard uses, among the
runs whose task spec, data digest and configuration match the newest run's, the one with the most
examples; the model page lists every run. `evalsuite compare A B` gives per-task paired differences
with a joint paired bootstrap that re-selects each model's best prompt in every replicate (and
McNemar's exact test when one prompt is shared and examples are not clustered).

## Text normalization (`evalsuite/metrics/normalize.py`)

- all scripts: Unicode NFKC; Arabic-Indic and Persian digits → ASCII; punctuation (Unicode P*) and
  math symbols removed; case-folded; whitespace collapsed.
- Arabic **strict**: also strips harakat U+064B–U+065F, U+0670, Quranic marks and tatweel;
  `ک`→`ك`, `ی`→`ي`, `ھ`→`ه`. **lenient**: strict + `أ إ آ ٱ`→`ا`, `ى`→`ي`, `ة`→`ه`, `ؤ ئ`→`ء`.
- `first_word` post-processing: the first whitespace-separated word that is not only punctuation,
  normalized (so `" ، القاهرة"` gives `القاهرة` and `guarda-chuva.` stays one word); never
  `\\b\\w+\\b`, which splits diacritized Arabic words.
- `gloria` post-processing (CALAME-PT's `official` prompt, as GlórIA's evaluation script): newlines
  deleted (the text after them kept), the first `\\b\\w+\\b` match, compared as lower-cased text with
  diacritics removed (NFKD without combining marks, ß→ss and a few ligatures: the transliteration
  unidecode gives Portuguese words; unidecode itself is GPL and is only a test reference).

## Multiple choice, regression, multi-label, language modeling

- Multiple choice: the prediction is the argmax of choice log-likelihoods (`acc_norm` divides by
  characters, `acc_bytes` by UTF-8 bytes, `acc_pmi` subtracts the log-likelihood after the prefix token
  alone). Per-class F1 is stored under `details.per_class_f1`.
- Regression: the prediction is Σ softmax(ll)_i · `label_values`_i over verbalized bins; a constant
  prediction makes a correlation undefined: 0 with a `flag`.
- Multi-label: one yes/no query per label; a label is predicted when ll(yes) > ll(no).
- Language modeling: `bits_per_byte` = −Σ ll / (ln 2 · Σ UTF-8 bytes); `perplexity` = exp(−Σ ll / Σ
  tokens); bits per byte compares models with different tokenizers.
"""


def metrics_markdown() -> str:
    """``docs/metrics.md``."""
    return _METRICS_PROSE.replace("{table}", docs_markdown())
