"""``ltm-gym report``: every table written with its provenance, on one page, oldest first."""

import json

import pytest
import yaml

from ltm_gym.cli.report import main
from ltm_gym.core.provenance import read_provenance, write_provenance
from ltm_gym.study.reports import write_ladder


def test_tables_carry_their_provenance_and_the_report_dates_and_places_them(tmp_path, capsys):
    runs = tmp_path / "runs"
    ladder = write_ladder(runs / "a" / "eval", "recall-d4", {
        "lora_baseline": {"answer_ce": 3.9, "recall_acc": 0.02, "gap": 0.0},
        "agent:x": {"answer_ce": 2.1, "recall_acc": 0.77, "gap": 0.9, "gap_lo": 0.85, "gap_hi": 0.95, "held": 0.8}})
    meta = read_provenance(ladder)
    assert set(meta) == {"date", "machine", "command", "version"} and "cores" in meta["machine"]
    lm = runs / "b" / "lm_table.json"
    lm.parent.mkdir()
    lm.write_text(json.dumps({"lora_baseline": {"ce": 3.0185, "answer_ce": 3.916, "position_curve": [1.0, 2.0]}}))
    write_provenance(lm)
    for table, date in ((ladder, "2026-12-06 10:00 UTC"), (lm, "2026-12-01 09:00 UTC")):  # the LM table first
        path = table.with_name(table.stem + ".provenance.yaml")
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "date": date}))
    out = tmp_path / "results.md"
    main([str(runs), "--out", str(out)])
    page = out.read_text()
    assert page.index("## b/lm_table.json") < page.index("## a/eval/recall-d4.json")
    assert "2026-12-01 09:00 UTC" in page and "| lora_baseline | 3.0185 |" in page
    assert "| agent:x | 2.100 | 0.770 | +0.900 (+0.850 .. +0.950) | 0.800 |" in page
    assert "position_curve" not in page
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no result tables"):
        main([str(tmp_path / "empty")])
