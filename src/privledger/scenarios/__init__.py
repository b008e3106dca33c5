"""Worked scenarios on generated, documented data: what the demo and the CLI run end to end."""
