import numpy as np
import pytest

from prefrl.ratings import bradley_terry_scores, elo, intransitive_triples, labeler_agreement


def _simulated(true_scores, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(len(true_scores), 2, replace=False)
        p = 1.0 / (1.0 + np.exp(-(true_scores[a] - true_scores[b])))
        out.append((int(a), int(b), float(rng.random() < p)))
    return out


def test_bradley_terry_recovers_a_known_ranking_and_scale():
    true = np.array([-2.0, -1.0, 0.0, 0.5, 2.5])
    scores = bradley_terry_scores(_simulated(true), l2=1e-6)
    fitted = np.array([scores[i] for i in range(len(true))])
    assert list(np.argsort(fitted)) == list(np.argsort(true))
    np.testing.assert_allclose(fitted, true - true.mean(), atol=0.25)  # MLE is consistent: the scale comes back
    assert abs(fitted.mean()) < 1e-9


def test_bradley_terry_keeps_an_undefeated_clip_finite_and_treats_ties_as_half():
    scores = bradley_terry_scores([(1, 2, 1.0), (1, 3, 1.0), (2, 3, 0.5)])
    assert np.isfinite(list(scores.values())).all()
    assert scores[1] > scores[2] == pytest.approx(scores[3])


def test_elo_moves_the_winner_up_and_depends_on_order():
    once = elo([(1, 2, 1.0)])
    assert once[1] == pytest.approx(1016.0) and once[2] == pytest.approx(984.0)  # k/2 each from equal ratings
    games = [(1, 2, 1.0), (2, 3, 1.0), (3, 1, 1.0), (1, 2, 0.0)]
    forward, backward = elo(games), elo(games[::-1])
    assert forward != backward
    assert sum(forward.values()) == pytest.approx(3000.0)  # zero-sum
    assert elo([(1, 2, 0.5)])[1] == pytest.approx(1000.0)  # a tie between equals changes nothing


def test_intransitive_triples_finds_each_cycle_once():
    comparisons = [(1, 2, 1.0), (2, 3, 1.0), (3, 1, 1.0),  # 1 > 2 > 3 > 1
                   (1, 4, 1.0), (2, 4, 1.0), (3, 4, 0.5)]
    assert intransitive_triples(comparisons) == [(1, 2, 3)]
    assert intransitive_triples([(1, 2, 1.0), (2, 3, 1.0), (1, 3, 1.0)]) == []
    # the same pair asked twice counts by its mean: 2 > 1 on average breaks the cycle
    assert intransitive_triples(comparisons + [(2, 1, 1.0), (2, 1, 1.0)]) == []


def test_labeler_agreement_between_labelers_and_with_the_oracle():
    labels = [("ann", 1, 2, 1.0), ("bob", 2, 1, 0.0),  # same answer, pair given in the other order
              ("ann", 3, 4, 0.5), ("bob", 3, 4, 1.0),  # disagree
              ("ann", 5, 6, 0.0)]                       # only ann
    oracle = {(1, 2): 1.0, (3, 4): 1.0, (6, 5): 1.0}
    result = labeler_agreement(labels, oracle)
    assert result["between_labelers"] == {"ann vs bob": {"agreement": 0.5, "pairs": 2}}
    assert result["with_oracle"]["ann"] == {"agreement": 2 / 3, "pairs": 3}
    assert result["with_oracle"]["bob"] == {"agreement": 1.0, "pairs": 2}


def test_ratings_and_export_commands_on_a_run(tmp_path, capsys):
    import json

    from prefrl.cli import main
    from prefrl.clips import Clip
    from prefrl.store import PreferenceStore

    run = tmp_path / "run"
    run.mkdir()
    with PreferenceStore(run / "store.sqlite", env="cartpole") as store:
        clips = [Clip(np.zeros((2, 4), np.float32), np.zeros(2, np.int64), np.full(2, r, np.float32)) for r in (0, 1, 2)]
        a, b, c = store.add_clips(clips)  # true returns 0, 2, 4
        q = store.add_queries([(b, a), (c, b), (a, c), (a, b)], source="human")
        store.record_labels([(q[0], 1.0), (q[1], 1.0), (q[2], 1.0)], labeler="ann")  # the last answer is wrong
        store.record_labels([(q[3], None)], labeler="ann")  # a skip: neither rated nor exported as a label
    assert main(["ratings", str(run)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["labels"] == 3 and summary["intransitive_triples"] == 1  # a < b < c, but a > c
    assert summary["agreement"]["with_oracle"]["ann"] == {"agreement": 2 / 3, "pairs": 3}
    assert json.loads((run / "ratings.json").read_text())["clips"][0]["elo"] > 1000
    assert main(["export", str(run), "--out", str(tmp_path / "x")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "x" / "comparisons.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines] == ["labeled", "labeled", "labeled", "skipped"]
    assert lines[0]["labeler"] == "ann" and lines[0]["preference"] == 1.0 and lines[0]["labeled_at"] > 0
    assert len((tmp_path / "x" / "clips.jsonl").read_text().splitlines()) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    PreferenceStore(empty / "store.sqlite", env="cartpole").close()
    assert main(["ratings", str(empty)]) == 2
    assert "no labeled comparisons" in capsys.readouterr().err
