"""`python -m bench.cli ...` is the `bench` command."""

from bench.cli import main

raise SystemExit(main())
