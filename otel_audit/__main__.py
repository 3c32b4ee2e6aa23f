"""``python -m otel_audit`` runs the ``otel-audit`` command."""

import sys

from otel_audit._cli import main

sys.exit(main())
