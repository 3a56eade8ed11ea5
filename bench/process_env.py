"""Importing this keeps glibc malloc from page-faulting on every video frame.

Every bench process that handles video imports it (through bench.figures,
bench.servers, bench.receiver or bench.relay), and the children it starts inherit
the setting (see DESIGN.md). The republish hop and CPU benches set malloc on purpose
per configuration, and do not import it.
"""

from __future__ import annotations

import os

os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "16777216")
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", "67108864")
