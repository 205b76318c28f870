"""Faithfulness of a detailed prompt to its short prompt's tagged elements (torch-free).

- vocab: the named vocabularies (COCO objects, colours, counts, relations, scenes, styles, actions) that
  scripts/make_prompt_corpus.py draws from and the matcher reads synonyms from;
- tags: the tag format (`Element`, `parse_elements`);
- match: does a text keep each element (kept / dropped / moved / contradicted);
- autotag: tags read off an untagged short prompt (for samples imported without tags, the demo);
- score: per text (`score_text`, `rank_key`) and per set (`summarize`, bootstrap intervals).
"""

from __future__ import annotations

from engine.faithfulness.score import FaithScore, Summary, paired_diff_ci, rank_key, score_text, summarize
from engine.faithfulness.tags import KINDS, Element, dump_elements, parse_elements

__all__ = [
    "KINDS",
    "Element",
    "FaithScore",
    "Summary",
    "dump_elements",
    "paired_diff_ci",
    "parse_elements",
    "rank_key",
    "score_text",
    "summarize",
]
