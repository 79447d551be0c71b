"""Run records: the storage port (``port``), its records (``records``), the file store (embedded default),
the MongoDB store, schema migrations, the file-to-Mongo importer, and ``factory.open_store``."""
