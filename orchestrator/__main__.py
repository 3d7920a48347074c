"""`python -m orchestrator` is the `osless` command."""

from orchestrator.cli import main

raise SystemExit(main())
