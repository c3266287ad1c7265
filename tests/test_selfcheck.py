"""l2t.teach.selfcheck: every chapter's questions are well formed; right answers pass, wrong ones fail with a reason."""

import json

import pytest

from l2t.teach.selfcheck import QUESTIONS, check, questions

CHAPTERS = sorted(p.stem for p in QUESTIONS.glob("*.json"))


def test_every_chapter_has_three_to_five_questions():
    assert CHAPTERS == [f"{k:02d}" for k in range(1, 12)]
    for chapter in CHAPTERS:
        assert 3 <= len(questions(chapter)) <= 5, chapter


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_question_accepts_its_answer_and_rejects_every_other_with_a_reason(chapter, capsys):
    for key, q in questions(chapter).items():
        assert key.startswith(chapter + ".") and q["question"].strip() and q["explain"].strip()
        if "choices" in q:
            assert q["answer"] in q["choices"] and len(q["choices"]) >= 3, key
            assert check(key, q["answer"]) is True and check(key, q["answer"].upper()) is True
            for wrong in set(q["choices"]) - {q["answer"]}:
                assert wrong in q.get("why", {}), f"{key}: no reason why ({wrong}) is wrong"
                assert check(key, wrong) is False
                assert q["why"][wrong] in capsys.readouterr().out
        else:
            assert q["tolerance"] >= 0 and set(q) >= {"number", "tolerance"}, key
            assert check(key, q["number"]) is True and check(key, q["number"] + q["tolerance"] / 2) is True
            assert check(key, q["number"] + 3 * q["tolerance"] + 1e-9 + abs(q["number"])) is False
        assert check(key, "not an answer") is False
        assert check(key) is None and q["question"] in capsys.readouterr().out


def test_the_checker_itself_on_a_made_up_chapter(tmp_path, monkeypatch):
    import l2t.teach.selfcheck as S

    (tmp_path / "99.json").write_text(
        json.dumps(
            {
                "99.1": {"question": "2 + 2?", "number": 4, "tolerance": 0.1, "explain": "four"},
                "99.2": {
                    "question": "pick b",
                    "choices": {"a": "no", "b": "yes", "c": "no"},
                    "answer": "b",
                    "why": {"a": "a is no", "c": "c is no"},
                    "explain": "b is yes",
                },
            }
        )
    )
    monkeypatch.setattr(S, "QUESTIONS", tmp_path)
    S.questions.cache_clear()
    try:
        assert check("99.1", 4.05) and not check("99.1", 4.2) and not check("99.1", float("nan"))
        assert check("99.2", "(b)") and not check("99.2", "a") and not check("99.2", "d")
        with pytest.raises(ValueError, match="no self-check question"):
            check("99.3", 1)
        with pytest.raises(ValueError, match="no self-check questions for chapter"):
            check("98.1", 1)
    finally:
        S.questions.cache_clear()
