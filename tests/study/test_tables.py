import math

from ltm_gym.metrics import TOP_K, SegmentMetrics
from ltm_gym.study.reports import ladder_summary, ladder_table


def row(answer_ce: float, docs: int = 4) -> SegmentMetrics:
    m = SegmentMetrics()
    for d in range(docs):
        m.add_info({"token_losses": [1.0, answer_ce], **{f"top{k}": 0.5 for k in TOP_K}, "answer_tokens": 1,
                    "answer_ce": answer_ce + 0.01 * d, "recall_acc": 0.0}, d)
    return m


def test_the_gap_is_n_a_when_the_oracle_does_not_beat_no_memory():
    good = ladder_summary({"lora_baseline": row(3.0), "oracle": row(1.0), "agent": row(2.0)})
    assert math.isclose(good["agent"]["gap"], 0.5)
    assert "gap_lo" in good["agent"]
    bad = ladder_summary({"lora_baseline": row(2.0), "oracle": row(2.5), "agent": row(1.0)})
    assert math.isnan(bad["agent"]["gap"]) and "gap_lo" not in bad["agent"]
    assert "| agent | 1.015 | 0.000 | n/a |" in ladder_table("t", bad)
