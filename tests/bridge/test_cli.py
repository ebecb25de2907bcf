"""The README's first command: the demo plays the whole story and exits 0."""

from click.testing import CliRunner

from bridge.cli import main


def test_demo_plays_the_story_and_exits_zero():
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert "template cart_reminder" in result.output
    assert "1 minute passes" in result.output and "1 minutes" not in result.output
    assert "owned by: agent" in result.output
    assert "cart recovered (112.00 USD)" in result.output
    assert "112.00 USD" in result.output.split("metrics")[-1]


def test_the_demo_says_how_much_time_passes_in_good_english():
    from bridge.demo import time_passes

    assert [time_passes(m) for m in (1, 1.4, 2, 119, 120, 25 * 60)] == [
        "1 minute passes", "1 minute passes", "2 minutes pass", "119 minutes pass", "2 hours pass", "25 hours pass"]
