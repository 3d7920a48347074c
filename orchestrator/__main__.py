"""`python -m orchestrator` is the `osless` command."""

from orchestrator.cli.main import main

raise SystemExit(main())
