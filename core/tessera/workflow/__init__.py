"""Workflow engine: process templates, instances, stage tasks, hand-offs, deviations."""
