"""Each chapter's self-check questions, checked on the spot: a choice, or a number within a tolerance.

The questions live in ``l2t/teach/questions/<chapter>.json``, keyed ``"<chapter>.<k>"`` (e.g. ``"06.2"``)::

    {"06.2": {"question": "...", "choices": {"a": "...", "b": "..."}, "answer": "b",
              "why": {"a": "why a is wrong", ...}, "explain": "why b is right"},
     "06.3": {"question": "...", "number": 0.25, "tolerance": 0.01, "explain": "how to get it"}}

In a chapter, ``check("06.2", answer=None)`` prints the question; with an answer it says whether it is
right and why, so that a wrong answer teaches something too.
"""

import json
import math
from functools import cache
from pathlib import Path

QUESTIONS = Path(__file__).parent / "questions"


@cache
def questions(chapter):
    """Chapter ``chapter``'s questions (``"06"``), key -> question dict."""
    path = QUESTIONS / f"{chapter}.json"
    if not path.is_file():
        raise ValueError(f"no self-check questions for chapter {chapter!r} ({path} is missing)")
    return json.loads(path.read_text())


def check(key, answer=None):
    """Print question ``key`` (``answer=None``), or whether ``answer`` is right and why; returns True/False/None."""
    q = questions(key.split(".")[0]).get(key)
    if q is None:
        raise ValueError(f"no self-check question {key!r}")
    if answer is None:
        print(f"{key}: {q['question']}")
        for letter, text in q.get("choices", {}).items():
            print(f"  ({letter}) {text}")
        print(
            "Your answer: set answer="
            + ("one of " + ", ".join(f'"{c}"' for c in q["choices"]) if "choices" in q else "a number")
            + " and run this cell again."
        )
        return None
    right, why = _judge(q, answer)
    print(f"{key}: {'right' if right else 'not quite'}. {why}")
    return right


def _judge(q, answer):
    """(whether ``answer`` is right, the reason to print)."""
    if "choices" in q:
        given = str(answer).strip().lower().strip("()")
        if given not in q["choices"]:
            return False, f"Answer with one of {', '.join(q['choices'])}, not {answer!r}."
        if given == q["answer"]:
            return True, q["explain"]
        return False, q.get("why", {}).get(given, "Read the question again.") + " Try again."
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return False, f"Answer with a number, not {answer!r}."
    if math.isfinite(value) and abs(value - q["number"]) <= q["tolerance"]:
        return True, q["explain"]
    hint = q.get("hint", "Check your arithmetic against the chapter's numbers.")
    return False, f"{value:g} is not it. {hint}"
