"""The flow language: YAML in, a validated, frozen ``Flow`` out.

A flow is a trigger plus an ordered list of steps. Each step does one thing and then goes to
``goto`` (default: the next step in the list; ``end`` finishes the run). Errors name the
source, the step and the field.

This module is the flow language's front door; its parts live in
core/flows/model.py (Flow, Step, Branch, TriggerSpec, Filter, parse_duration, END),
core/flows/reader.py and core/flows/step_parsers.py (the YAML reader and the per-step parsers),
core/flows/loader.py (load_flow) and core/flows/shipped_flows.py (shipped_flows).
"""

from __future__ import annotations

from core.flows.loader import load_flow
from core.flows.model import (END, FILTER_OPS, REENTRY, STEP_KINDS, Branch, Filter, Flow, Step, TriggerSpec,
                              parse_duration)  # STEP_KINDS, FILTER_OPS, REENTRY: still importable from here
from core.flows.shipped_flows import shipped_flows
from core.flows.template_steps import Fallback, Variant, WithoutConsent

__all__ = ["Branch", "Step", "Filter", "TriggerSpec", "Flow", "Fallback", "Variant", "WithoutConsent", "parse_duration",
           "load_flow", "shipped_flows", "END", "STEP_KINDS", "FILTER_OPS", "REENTRY"]
