"""Server-rendered web UI shell: sign-in, dashboard, parties, client card. Plugins add
navigation entries and client-card tabs through hooks."""
