"""Full-text search: the Searcher protocol with whoosh and PostgreSQL backends."""
