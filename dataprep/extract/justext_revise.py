"""jusText's context-sensitive paragraph revision, in linear time.

`justext.core.revise_paragraph_classification` finds, for every short or near-good paragraph, its
nearest good or bad neighbours by walking the list, so a run of n short paragraphs costs n^2 steps: a
page of 24,000 short table cells takes minutes. This module gives the same classes (tests compare it
with jusText's on real pages and on random sequences) with the neighbours precomputed in two sweeps.

jusText's steps, in its order:
1. copy the context-free class; a short heading followed within `max_heading_distance` characters by a
   good paragraph becomes near-good. jusText's loop compares with classes not yet copied (a new
   paragraph's is ""), so on fresh paragraphs this never fires; it is reproduced as such (a no-op).
2. short paragraphs, all judged on the same snapshot: good between good neighbours, bad between bad
   ones; between a bad and a good one, good when the bad side has a near-good paragraph nearer than
   it, else bad.
3. near-good paragraphs, left to right: bad between bad neighbours, else good (the left neighbour is
   the paragraph just before, already revised; the right one is the next good or bad).
4. a heading that is bad only by context becomes good when a good paragraph follows within
   `max_heading_distance` characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GOOD, BAD, NEARGOOD, SHORT = "good", "bad", "neargood", "short"
_GOOD_OR_BAD = frozenset({GOOD, BAD})
_NOT_SHORT = frozenset({GOOD, BAD, NEARGOOD})


def _nearest(classes: Sequence[str], wanted: frozenset[str], from_left: bool) -> list[str]:
    """For each position, the class of the nearest paragraph on that side whose class is in `wanted`;
    "bad" past the page's edge, as in jusText."""
    nearest = [BAD] * len(classes)
    last = BAD
    positions = range(len(classes)) if from_left else range(len(classes) - 1, -1, -1)
    for i in positions:
        nearest[i] = last
        if classes[i] in wanted:
            last = classes[i]
    return nearest


def revise_paragraph_classification(paragraphs: Sequence[Any], max_heading_distance: int) -> None:
    """Set `class_type` of each paragraph (with `cf_class`, `heading` and `text` set) as jusText does."""
    classes = [p.cf_class for p in paragraphs]  # step 1 (its heading rule is a no-op, see above)

    # step 2
    prev_good_bad = _nearest(classes, _GOOD_OR_BAD, from_left=True)
    next_good_bad = _nearest(classes, _GOOD_OR_BAD, from_left=False)
    prev_any = _nearest(classes, _NOT_SHORT, from_left=True)
    next_any = _nearest(classes, _NOT_SHORT, from_left=False)
    revised = list(classes)
    for i, cls in enumerate(classes):
        if cls != SHORT:
            continue
        before, after = prev_good_bad[i], next_good_bad[i]
        if before == GOOD and after == GOOD:
            revised[i] = GOOD
        elif before == BAD and after == BAD:
            revised[i] = BAD
        elif (before == BAD and prev_any[i] == NEARGOOD) or (after == BAD and next_any[i] == NEARGOOD):
            revised[i] = GOOD
        else:
            revised[i] = BAD
    classes = revised

    # step 3: no short paragraph is left, and every near-good one before i is already revised
    next_good_bad = _nearest(classes, _GOOD_OR_BAD, from_left=False)
    for i, cls in enumerate(classes):
        if cls != NEARGOOD:
            continue
        before = classes[i - 1] if i > 0 else BAD
        classes[i] = BAD if before == BAD and next_good_bad[i] == BAD else GOOD

    # step 4: a look-ahead bounded by max_heading_distance characters
    for i, paragraph in enumerate(paragraphs):
        if not (paragraph.heading and classes[i] == BAD and paragraph.cf_class != BAD):
            continue
        j, distance = i + 1, 0
        while j < len(paragraphs) and distance <= max_heading_distance:
            if classes[j] == GOOD:
                classes[i] = GOOD
                break
            distance += len(paragraphs[j].text)
            j += 1

    for paragraph, cls in zip(paragraphs, classes, strict=True):
        paragraph.class_type = cls
