"""The tool plane: what agents call to act on the world.

``ToolExecutor`` is the one interface agents use; ``FunctionTools`` runs plain Python
callables in-process (a test double and a quick start).
"""

from __future__ import annotations

from tools.base import ToolCallRequest, ToolDefinition, ToolExecutor, ToolResult
from tools.testing import FunctionTools

__all__ = ["FunctionTools", "ToolCallRequest", "ToolDefinition", "ToolExecutor", "ToolResult"]
