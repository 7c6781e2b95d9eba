"""bench.profile's summary of py-spy's raw samples."""

from __future__ import annotations

from pathlib import Path

from bench.profile import summarise


def test_own_time_and_time_under_the_projects_functions(tmp_path: Path) -> None:
    raw = tmp_path / "samples.txt"
    raw.write_text(
        "main (gateway/cli.py:10);execute (schema/execution.py:80);isoformat (<built-in>) 30\n"
        "main (gateway/cli.py:10);execute (schema/execution.py:95) 10\n"
        "main (gateway/cli.py:12);select (selectors.py:469) 60\n"
    )
    report = summarise(raw, top=5)
    assert report.startswith("100 samples")
    own, under = report.split("time under the project's functions:")
    assert "60.0%  select (selectors.py)" in own
    assert "30.0%  isoformat (<built-in>)" in own
    assert "10.0%  execute (schema/execution.py)" in own  # line numbers merged
    assert "100.0%  main (gateway/cli.py)" in under
    assert "40.0%  execute (schema/execution.py)" in under
    assert "selectors" not in under
