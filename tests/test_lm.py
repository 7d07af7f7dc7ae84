"""The language-model path: tokenizer, tiny LM, data files, the stages, and `prefrl lm` end to end."""

import json

import numpy as np
import pytest
import torch

import prefrl.losses
import prefrl.lm.methods
import prefrl.reward_training
from prefrl.cli import main
from prefrl.lm import LMRun, run_lm
from prefrl.lm.data import TopicTask, read_jsonl, write_jsonl
from prefrl.lm.methods import _gae
from prefrl.lm.model import LMConfig, TinyLM, Tokenizer, sequence_logprobs

TINY = dict(sft_rows=200, sft_steps=20, labels=24, epochs=1, ppo_iterations=2)


def test_tokenizer_round_trip_masks_and_bad_characters():
    tok = Tokenizer()
    assert tok.decode(tok.encode("abc xyz~") + [tok.eos, 5]) == "abc xyz~"
    ids, mask = tok.batch(["ab", "a"], ["c", "cd"])
    assert ids[0].tolist() == [tok.bos, *tok.encode("ab"), tok.sep, *tok.encode("c"), tok.eos, tok.pad][:6]
    assert mask[0].tolist() == [0, 0, 0, 0, 1, 1] and mask[1].tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="not printable ASCII"):
        tok.encode("héllo")


def test_the_lm_is_causal_and_reads_a_left_padded_prompt_as_unpadded(tmp_path):
    torch.manual_seed(0)
    model = TinyLM(LMConfig(d_model=32, n_layers=1, n_heads=2)).eval()
    tok = Tokenizer()
    ids, _ = tok.batch(["abcd"], ["efgh"])
    changed = ids.clone()
    changed[0, -2] = tok.encode("z")[0]
    with torch.no_grad():
        a, b = model(ids)[0], model(changed)[0]
        assert torch.allclose(a[0, :-2], b[0, :-2]) and not torch.allclose(a[0, -2], b[0, -2])
        padded = tok.prompts(["ab", "abcdef"])  # "ab" gets four PADs on its left
        alone = tok.prompts(["ab"])
        assert torch.allclose(model(padded)[0][0, 4:], model(alone)[0][0], atol=1e-5)
    model.save(tmp_path / "m")
    loaded = TinyLM.load(tmp_path / "m").eval()
    with torch.no_grad():
        assert torch.equal(loaded(ids)[0], model(ids)[0])


def test_sequence_logprobs_sum_to_the_completions_log_probability():
    torch.manual_seed(1)
    model = TinyLM(LMConfig(d_model=32, n_layers=1, n_heads=2)).eval()
    ids, mask = Tokenizer().batch(["ab"], ["cd"])
    with torch.no_grad():
        total = sequence_logprobs(model, ids, mask).sum().item()
        logits = model(ids)[0][0]
    # BOS a b SEP c d EOS: the completion tokens c, d and EOS sit at positions 4, 5, 6, each predicted from the one before
    expected = sum(torch.log_softmax(logits[t - 1], -1)[ids[0, t]].item() for t in (4, 5, 6))
    assert total == pytest.approx(expected, abs=1e-5)


def test_topic_rule_and_jsonl_errors(tmp_path):
    task = TopicTask()
    assert task.score("abcd", "aaxxbbxx") == 0.5 and task.score("abcd", "ab") == 0.25
    rows = task.sft_data(400, np.random.default_rng(0))
    mean = np.mean([task.score(r["prompt"], r["completion"]) for r in rows])
    assert abs(mean - (0.25 + 0.75 * 4 / 16)) < 0.03
    good = tmp_path / "pairs.jsonl"
    write_jsonl(good, [{"prompt": "ab", "chosen": "a", "rejected": "z"}])
    assert read_jsonl(good, "pairs")[0]["chosen"] == "a"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ab", "chosen": "a"}\n')
    with pytest.raises(ValueError, match="line 1 lacks 'rejected'"):
        read_jsonl(bad, "pairs")
    bad.write_text('{"prompt": "ab", "completion": "a", "label": "yes"}\n')
    with pytest.raises(ValueError, match="'label' must be true"):
        read_jsonl(bad, "kto")
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        read_jsonl(bad, "sft")


def test_gae_by_hand():
    # one row of three tokens, the last one past the end (mask 0); γ = 1, λ = 0.5
    rewards = torch.tensor([[0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.25, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv = _gae(rewards, values, mask, gamma=1.0, lam=0.5)
    delta1 = 1.0 - 0.25  # last live token: no next value
    delta0 = 0.0 + 0.25 - 0.5
    assert adv[0].tolist() == pytest.approx([delta0 + 0.5 * delta1, delta1, 0.0])


def test_one_loss_core_serves_clips_and_language_models(monkeypatch):
    assert prefrl.reward_training.bradley_terry_loss is prefrl.losses.bradley_terry_loss
    assert prefrl.lm.methods.bradley_terry_loss is prefrl.losses.bradley_terry_loss
    assert prefrl.lm.methods.plackett_luce_loss is prefrl.reward_training.plackett_luce_loss
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return prefrl.losses.bradley_terry_loss(*args, **kwargs)

    monkeypatch.setattr(prefrl.lm.methods, "bradley_terry_loss", spy)
    rm = prefrl.lm.methods.RewardModel(TinyLM(LMConfig(d_model=16, n_layers=1, n_heads=2)))
    rows = [{"prompt": "ab", "chosen": "aa", "rejected": "zz"}] * 4
    prefrl.lm.methods.fit_reward_model(rm, rows, rows, epochs=1, rng=np.random.default_rng(0))
    assert calls


@pytest.mark.parametrize("method", ["ppo", "dpo", "ipo", "kto"])
@pytest.mark.slow
def test_each_method_runs_end_to_end_and_writes_its_data(tmp_path, method):
    summary = run_lm(LMRun(method=method, run_dir=str(tmp_path / method), **TINY))
    run = tmp_path / method
    assert json.loads((run / "summary.json").read_text())["method"] == method
    assert 0 <= summary["true_score_sft"] <= 1 and 0 <= summary["true_score_final"] <= 1
    assert np.isfinite(summary["kl_to_sft"])
    data = {"ppo": "pairs", "dpo": "pairs", "ipo": "pairs", "kto": "kto"}[method]
    assert len(read_jsonl(run / f"{data}.jsonl", data)) == summary["labels"] == TINY["labels"]
    # The saved policy loads from plain tensors (weights_only) and is the trained one, not the SFT model it started as.
    policy, sft_model = TinyLM.load(run / "policy").eval(), TinyLM.load(run / "sft").eval()
    ids, _ = Tokenizer().batch(["abcd", "wxyz"], ["efgh", "stuv"])
    with torch.no_grad():
        assert not torch.allclose(policy(ids)[0], sft_model(ids)[0])
    if method == "ppo":
        assert 0 <= summary["rm_accuracy"] <= 1


@pytest.mark.slow
def test_k_wise_rankings_train_the_lm_reward_model(tmp_path):
    summary = run_lm(LMRun(method="ppo", rank_size=3, run_dir=str(tmp_path / "k3"), **TINY))
    rows = read_jsonl(tmp_path / "k3" / "rankings.jsonl", "rankings")
    task = TopicTask()
    for row in rows:  # strictly ranked by the rule, best first
        scores = [task.score(row["prompt"], c) for c in row["completions"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and len(set(scores)) == 3
    assert summary["rank_size"] == 3


@pytest.mark.slow
def test_bring_your_own_pairs(tmp_path):
    sft = tmp_path / "sft.jsonl"
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(sft, [{"prompt": "Say hi.", "completion": "Hi!"}, {"prompt": "Say no.", "completion": "No."}] * 20)
    write_jsonl(pairs, [{"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Go away."}] * 20)
    summary = run_lm(LMRun(method="dpo", run_dir=str(tmp_path / "own"), sft_data=str(sft), pair_data=str(pairs),
                           **{**TINY, "labels": 20}))
    assert summary["true_score_final"] is None and summary["labels"] == 20


def test_cli_defaults_match_the_config_and_bad_input_is_one_line(capsys, tmp_path):
    from prefrl.cli import _parser

    args = vars(_parser().parse_args(["lm"]))
    defaults = LMRun()
    for key, value in args.items():
        if key != "command":
            assert getattr(defaults, key) == value, key
    for argv, message in [(["lm", "--method", "sgd"], "argument --method: invalid choice: 'sgd'"),
                          (["lm", "--method", "dpo", "--rank-size", "3"], "--rank-size 3: use 2"),
                          (["lm", "--pair-data", str(tmp_path / "none.jsonl")], "is not a file")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_log_probs_are_those_of_the_distribution_generation_samples_from():
    from prefrl.lm.methods import generated_logprobs

    torch.manual_seed(2)
    model = TinyLM(LMConfig(d_model=32, n_layers=1, n_heads=2)).eval()
    tok = Tokenizer()
    prompt = tok.prompts(["abcd"] * 4000)
    with torch.no_grad():
        probs = torch.softmax(model(prompt)[0][0, -1], -1)
        assert probs[[tok.pad, tok.bos, tok.sep]].sum() < 1e-30  # tokens the model never writes
        gen = model.generate(prompt, 1, torch.Generator().manual_seed(0), min_new=1)
        logp, _ = generated_logprobs(model, torch.cat([prompt, gen], 1), prompt.shape[1], min_new=1)
    assert (gen != tok.eos).all()
    # each sampled token's frequency matches exp(log-prob) under the same (EOS-masked) distribution
    token = gen[:, 0]
    for t in torch.unique(token)[:5]:
        freq = (token == t).float().mean().item()
        p = logp[token == t][0].exp().item()
        assert abs(freq - p) < 4 * (p * (1 - p) / len(token)) ** 0.5 + 1e-3
