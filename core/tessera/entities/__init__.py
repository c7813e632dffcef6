"""Kernel entities: parties, contacts, activities, tasks, users/teams/roles, notes, attachments."""
