"""The one table renderer: Markdown and aligned text, on known answers."""
from compgen import tables


def test_markdown_and_aligned_tables():
  assert tables.markdown(["a", "bb"], [["1", "2"], ["333", "4"]]) == (
      "| a | bb |\n|---|---|\n| 1 | 2 |\n| 333 | 4 |")
  assert tables.aligned(["a", "bb"], [["1", "2"], ["333", "4"]]) == (
      "a    bb\n---  --\n1    2\n333  4")
  assert tables.markdown(["only"], []) == "| only |\n|---|"
