"""Imports every domain's tables so that ``Base.metadata`` is complete (migrations, tests)."""

from __future__ import annotations

import llmops.blobs.tables
import llmops.datasets.tables
import llmops.monitoring.tables
import llmops.registry.tables
import llmops.security.tables
import llmops.serving.deployments.tables
import llmops.tracking.tables  # noqa: F401
from llmops.db.base import Base

metadata = Base.metadata
