"""Shop data: the snapshot importer, the SQLite store, promotions, logistics and the knowledge base."""
