"""The README's first command: the demo plays the whole story and exits 0."""

from click.testing import CliRunner

from bridge.cli import main


def test_demo_plays_the_story_and_exits_zero():
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert "template cart_reminder" in result.output
    assert "owned by: agent" in result.output
    assert "cart recovered (112.00 USD)" in result.output
    assert "112.00 USD" in result.output.split("metrics")[-1]
