"""`python -m vidprompter ...`: the same as the `vidprompter` console command."""

from app import console

raise SystemExit(console())
