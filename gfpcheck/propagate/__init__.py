"""Propagation: summaries, flow-sensitive states and context reachability."""
